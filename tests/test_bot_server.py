"""The HTTP transport: /slack/events and /healthz, in-process and as `python -m bot`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App

from bot.commands import help_text
from sandbox.slack_user import block_actions_body
from tests.bot_harness import (
    DANA,
    IMAGE,
    LEE,
    PAYMENTS_CHANNEL,
    SAM,
    SECRET,
    TOKEN,
    Slack,
    no_aws,
    serving,
    signed_headers,
    to_gate,
)
from tests.conftest import REAL_REDIS_URL
from tests.fakes import RecordingScheduler
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.state import State
from workers.engine.store import Store
from workers.runtime.catalogue_file import CatalogueFile
from workers.runtime.context import Runtime

ROOT = Path(__file__).resolve().parent.parent


def post(url: str, body: str, headers: dict[str, list[str]]) -> tuple[int, str]:
    flat = {k: v[0] for k, v in headers.items()}
    request = urllib.request.Request(url, data=body.encode(), headers=flat, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def server(app: App) -> Iterator[str]:
    with serving(app) as url:
        yield url


def test_healthz_and_unknown_paths(server: str) -> None:
    assert get(f"{server}/healthz") == (200, "ok")
    assert get(f"{server}/nope")[0] == 404
    assert post(f"{server}/elsewhere", "x", {})[0] == 404


def test_a_signed_command_over_http(
    server: str, slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    body = slack.command_body(f"deploy search {IMAGE}", "U0ANY", "C0ANY")
    status, text = post(f"{server}/slack/events", body, signed_headers(body))
    assert (status, text) == (200, "")
    answer = mock.wait_for(lambda: mock.responses)[0]
    assert answer["text"].startswith("Starting deployment")
    assert api.active_deployment("search", rt=rt) is not None


def test_forged_and_stale_requests_get_401_over_http(
    server: str, slack: Slack, rt: Runtime
) -> None:
    body = slack.command_body(f"deploy search {IMAGE}", "U0ANY", "C0ANY")
    assert post(f"{server}/slack/events", body, signed_headers(body, secret="nope"))[0] == 401
    stale = signed_headers(body, timestamp=int(time.time()) - 3600)
    assert post(f"{server}/slack/events", body, stale)[0] == 401
    assert post(f"{server}/slack/events", body, {})[0] == 401
    assert api.active_deployments(rt=rt) == []


def start_bot(
    mock: MockSlack, seen: list[str] | None = None, **env: str
) -> tuple[subprocess.Popen[str], str]:
    """`python -m bot` on a free port, talking to `mock`; the process and its base URL (the
    log lines up to the one saying where it listens are added to `seen`)."""
    full = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": mock.base_url.rstrip("/"),  # without the slash on purpose
        "PORT": "0",
        **env,
    }
    full.pop("SLACK_APP_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=full,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = None
    deadline = time.monotonic() + 20
    seen = [] if seen is None else seen
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        found = re.search(r"listening on port (\d+)", line)
        port = int(found.group(1)) if found else None
    if port is None:
        proc.kill()
        raise AssertionError("".join(seen))
    return proc, f"http://127.0.0.1:{port}"


CATALOGUE_YAML = """
services:
  search: {cluster: prod, mesh: prod-mesh, virtual_router: search-vr, route: search-route}
"""


def test_python_m_bot_serves_http(
    mock: MockSlack, tmp_path: Path, real_redis: tuple[Any, str]
) -> None:
    config = tmp_path / "canary.yaml"
    config.write_text(CATALOGUE_YAML)
    proc, base = start_bot(
        mock,
        REDIS_URL=REAL_REDIS_URL,
        CANARY_REDIS_PREFIX=real_redis[1],
        CANARY_CONFIG=str(config),
    )
    try:
        assert get(f"{base}/healthz") == (200, "ok")
        body = Slack.command_body(Slack(None, mock), "help", "U0ANY", "C0ANY")  # type: ignore[arg-type]
        status, text = post(f"{base}/slack/events", body, signed_headers(body))
        assert status == 200 and json.loads(text)["text"] == help_text()
        # A broken edit: the previous catalogue stays in force, and /healthz says so.
        config.write_text("services: [not, a, mapping]\n")
        status, reason = get(f"{base}/healthz")
        assert status == 200 and "not in force" in reason, reason
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log = proc.stderr.read()  # type: ignore[union-attr]
    assert TOKEN not in log and SECRET not in log


def test_healthz_is_503_without_redis_or_without_a_valid_catalogue(
    mock: MockSlack, tmp_path: Path, real_redis: tuple[Any, str]
) -> None:
    config = tmp_path / "canary.yaml"
    config.write_text(CATALOGUE_YAML)
    no_redis, base = start_bot(mock, REDIS_URL="redis://127.0.0.1:1/0", CANARY_CONFIG=str(config))
    try:
        status, reason = get(f"{base}/healthz")
        assert status == 503 and reason.startswith("redis:"), reason
    finally:
        no_redis.terminate()
        no_redis.wait(timeout=10)
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  search: {cluster: prod, router: nowhere}\n")
    for path in (bad, tmp_path / "missing.yaml"):
        proc, base = start_bot(
            mock,
            REDIS_URL=REAL_REDIS_URL,
            CANARY_REDIS_PREFIX=real_redis[1],
            CANARY_CONFIG=str(path),
        )
        try:
            status, reason = get(f"{base}/healthz")
            assert status == 503 and reason.startswith("catalogue:"), reason
            assert str(path) in reason
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_http_mode_refuses_to_start_without_a_signing_secret(mock: MockSlack) -> None:
    env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": mock.base_url, "PORT": "0"}
    env.pop("SLACK_SIGNING_SECRET", None)
    env.pop("SLACK_APP_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "SLACK_SIGNING_SECRET is not set" in done.stderr
    assert "listening" not in done.stderr


def test_sigterm_still_answers_the_commands_already_acknowledged(
    mock: MockSlack, tmp_path: Path, real_redis: tuple[Any, str]
) -> None:
    proc, base = start_bot(
        mock,
        REDIS_URL=REAL_REDIS_URL,
        CANARY_REDIS_PREFIX=real_redis[1],
        CANARY_CONFIG=str(tmp_path / "missing.yaml"),
    )
    try:
        mock.delay = 1.0  # Slack is slow: the answer is still on its way when the stop comes
        body = Slack.command_body(Slack(None, mock), "status", "U0ANY", "C0ANY")  # type: ignore[arg-type]
        assert post(f"{base}/slack/events", body, signed_headers(body))[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log = proc.stderr.read()  # type: ignore[union-attr]
    assert len(mock.responses) == 1, log
    assert "stopped" in log


PAYMENTS_YAML = """
services:
  payments:
    cluster: prod
    mesh: prod-mesh
    virtual_router: payments-vr
    route: payments-route
    channel: {channel}
    deployers: [{dana}]
    approvers: [{approvers}]
  search: {{cluster: prod, mesh: prod-mesh, virtual_router: search-vr, route: search-route}}
"""


def test_rights_are_live_and_local_over_the_real_bot(
    mock: MockSlack, tmp_path: Path, real_redis: tuple[Any, str]
) -> None:
    """Over `python -m bot` and the real Redis: the catalogue is edited while a gate is open (a
    removed approver is refused), a click from another channel and a Slack Connect guest's
    click where anyone may act are refused."""
    client, prefix = real_redis
    config = tmp_path / "canary.yaml"

    def catalogue(*approvers: str) -> None:
        config.write_text(
            PAYMENTS_YAML.format(
                channel=PAYMENTS_CHANNEL, dana=DANA, approvers=", ".join(approvers)
            )
        )

    catalogue(SAM, LEE)
    here = Runtime(
        redis=client,
        store=Store(client, prefix),
        scheduler=RecordingScheduler(),
        aws=no_aws,
        catalogue_loader=CatalogueFile(config),
    )
    proc, base = start_bot(
        mock, REDIS_URL=REAL_REDIS_URL, CANARY_REDIS_PREFIX=prefix, CANARY_CONFIG=str(config)
    )
    user = Slack(None, mock)  # type: ignore[arg-type]

    def click(
        who: str,
        dep_id: str,
        channel: str = PAYMENTS_CHANNEL,
        action_id: str = "canary_approve",
        **where: str,
    ) -> str | None:
        before = len(mock.ephemeral_texts())
        body = block_actions_body(
            action_id,
            f"{dep_id}:2",
            user=who,
            channel=channel,
            message_ts="1700000000.000009",
            thread_ts="1700000000.000001",
            response_url=mock.response_url(),
            **where,
        )
        assert post(f"{base}/slack/events", body, signed_headers(body))[0] == 200
        try:
            return mock.wait_for(lambda: mock.ephemeral_texts()[before:], 2)[0]
        except AssertionError:
            return None

    try:
        body = user.command_body(f"deploy payments {IMAGE}", DANA, PAYMENTS_CHANNEL)
        assert post(f"{base}/slack/events", body, signed_headers(body))[0] == 200
        assert mock.wait_for(lambda: mock.responses)[0]["text"].startswith("Starting")
        dep = api.active_deployment("payments", rt=here)
        assert dep is not None and dep.settings.approvers == [SAM, LEE]
        to_gate(here, dep.id)
        catalogue(LEE)  # Sam is no longer an approver
        told = click(SAM, dep.id)
        assert told == f"You are not an approver of payments. Ask one of: <@{LEE}>."
        assert api.get_deployment(dep.id, rt=here).state == State.AWAITING_APPROVAL
        told = click(LEE, dep.id, channel="C0ELSEWHERE")
        assert told == (
            f"payments can only be approved from <#{PAYMENTS_CHANNEL}> "
            "or the deployment's thread there."
        )
        assert click(LEE, dep.id) is None
        moved = mock.wait_for(
            lambda: (d := api.get_deployment(dep.id, rt=here)).state == State.SHIFTING and d
        )
        assert moved.approvals[-1].actor == LEE

        # search: no deployers, no approvers, no channel; anyone of the workspace may abort it.
        answered = len(mock.responses)
        body = user.command_body(f"deploy search {IMAGE}", DANA, "C0ANY")
        assert post(f"{base}/slack/events", body, signed_headers(body))[0] == 200
        mock.wait_for(lambda: mock.responses[answered:])
        search = api.active_deployment("search", rt=here)
        assert search is not None
        to_gate(here, search.id)
        told = click("U0GUEST", search.id, "C0ANY", "canary_abort", user_team="T0OTHER")
        assert told is not None and told.startswith("Only members of the workspace")
        assert api.get_deployment(search.id, rt=here).state == State.AWAITING_APPROVAL
    finally:
        proc.terminate()
        proc.wait(timeout=10)
