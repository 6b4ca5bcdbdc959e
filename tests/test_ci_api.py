"""The door for CI (bot.ci_api, bot.pipeline_tokens, bot.cli): tokens, requests, the catalogue's
`pipelines:`, answers and their status codes, over the bot's real HTTP transport on fakeredis.

The same door end to end, over real processes, is tests/test_e2e_ci.py.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from slack_bolt import App

from bot import cli
from bot.ci_api import MAX_API_BODY, CiApi
from bot.ci_records import parse_deploy_request
from bot.pipeline_tokens import MIN_TOKEN_LENGTH, bearer, pipeline_for, token_problems
from sandbox.processes import ROOT
from tests.bot_harness import (
    CATALOGUE,
    IMAGE,
    PAYMENTS_CHANNEL,
    SAM,
    make_runtime,
    serving,
    to_gate,
)
from tests.conftest import REAL_REDIS_URL
from tests.slack_mock import MockSlack
from tests.test_bot_server import get, start_bot
from workers import api
from workers.domain.catalogue import ConfigError, PipelineConfig, parse_catalogue
from workers.domain.events import Requested
from workers.domain.pipelines import as_actor
from workers.runtime.context import Runtime
from workers.slack.card import render_card
from workers.slack.client import make_client

GITHUB_TOKEN = "g" * 40
OTHER_TOKEN = "o" * 40
SHA = "0123456789abcdef0123456789abcdef01234567"
COMMIT_URL = "https://github.com/acme/payments/commit/" + SHA + "?a=1&b=2"
ENV = {
    "CANARY_PIPELINE_TOKEN_GITHUB": GITHUB_TOKEN,
    "CANARY_PIPELINE_TOKEN_OTHER": OTHER_TOKEN,
}
PIPELINES = {
    "github": {"token_env": "CANARY_PIPELINE_TOKEN_GITHUB", "services": ["payments"]},
    "other": {"token_env": "CANARY_PIPELINE_TOKEN_OTHER", "services": ["web"]},
}
WITH_PIPELINES: dict[str, Any] = {
    **CATALOGUE,
    "services": {
        **CATALOGUE["services"],
        "web": {**CATALOGUE["services"]["web"], "channel": "C0WEB"},
    },
    "pipelines": PIPELINES,
}


def secrets(name: str) -> SecretStr | None:
    return SecretStr(ENV[name]) if name in ENV else None


# tokens ----------------------------------------------------------------------------------------
def test_a_bearer_header_gives_its_token() -> None:
    assert bearer(f"Bearer {GITHUB_TOKEN}").token == GITHUB_TOKEN
    assert bearer(f"bearer  {GITHUB_TOKEN} ").token == GITHUB_TOKEN
    assert bearer(None).token is None and "Authorization" in (bearer(None).problem or "")
    assert bearer(f"Basic {GITHUB_TOKEN}").token is None
    assert bearer("Bearer ").token is None


def test_a_token_names_its_pipeline_and_nothing_else_does() -> None:
    pipelines = parse_catalogue(WITH_PIPELINES).pipelines
    assert pipeline_for(GITHUB_TOKEN, pipelines, secrets) == "github"
    assert pipeline_for(OTHER_TOKEN, pipelines, secrets) == "other"
    assert pipeline_for(GITHUB_TOKEN[:-1], pipelines, secrets) is None
    assert pipeline_for(GITHUB_TOKEN + "x", pipelines, secrets) is None
    assert pipeline_for("", pipelines, secrets) is None


def test_an_unset_short_or_shared_token_lets_nobody_in_and_is_reported() -> None:
    pipelines = {
        "unset": PipelineConfig(token_env="CANARY_PIPELINE_UNSET", services=["payments"]),
        "short": PipelineConfig(token_env="CANARY_PIPELINE_SHORT", services=["payments"]),
        "a": PipelineConfig(token_env="CANARY_PIPELINE_A", services=["payments"]),
        "b": PipelineConfig(token_env="CANARY_PIPELINE_B", services=["payments"]),
    }
    short, shared = "s" * (MIN_TOKEN_LENGTH - 1), "x" * MIN_TOKEN_LENGTH
    values = {
        "CANARY_PIPELINE_SHORT": short,
        "CANARY_PIPELINE_A": shared,
        "CANARY_PIPELINE_B": shared,
    }

    def source(name: str) -> SecretStr | None:
        return SecretStr(values[name]) if name in values else None

    assert pipeline_for(short, pipelines, source) is None
    assert pipeline_for(shared, pipelines, source) is None  # it would identify two pipelines
    problems = token_problems(pipelines, source)
    assert problems == [
        "pipeline unset: CANARY_PIPELINE_UNSET is not set; its requests are refused",
        f"pipeline short: CANARY_PIPELINE_SHORT is shorter than {MIN_TOKEN_LENGTH} characters; "
        "its requests are refused (make one with `openssl rand -hex 32`)",
        "pipelines a and b have the same token; requests with it are refused",
    ]
    assert not any(short in p or shared in p for p in problems)


# the catalogue's pipelines ---------------------------------------------------------------------
def test_the_catalogue_names_pipelines_their_token_variable_and_services() -> None:
    catalogue = parse_catalogue(WITH_PIPELINES)
    assert catalogue.pipelines["github"].services == ["payments"]
    assert catalogue.pipelines["github"].token_env == "CANARY_PIPELINE_TOKEN_GITHUB"
    assert parse_catalogue(CATALOGUE).pipelines == {}


@pytest.mark.parametrize(
    ("pipelines", "message"),
    [
        (
            {"gh": {"token_env": "CANARY_PIPELINE_GH", "services": ["search"]}},
            "pipelines.gh.services: search has no channel: a service a pipeline deploys must "
            "name the channel its card is posted in",
        ),
        (
            {"gh": {"token_env": "CANARY_PIPELINE_GH", "services": ["paymnts"]}},
            'pipelines.gh.services: No service called "paymnts". Did you mean payments?',
        ),
        (
            {"gh": {"token_env": "SLACK_BOT_TOKEN", "services": ["payments"]}},
            "pipelines.gh.token_env: must name an environment variable starting with "
            "CANARY_PIPELINE_",
        ),
        (
            {"gh": {"token": "abc", "token_env": "CANARY_PIPELINE_GH", "services": ["payments"]}},
            "pipelines.gh.token: unknown key",
        ),
        ({"gh": {"token_env": "CANARY_PIPELINE_GH"}}, "pipelines.gh.services: required key"),
        (
            {"gh": {"token_env": "CANARY_PIPELINE_GH", "services": []}},
            "pipelines.gh.services: List should have at least 1 item",
        ),
        (
            {
                "a": {"token_env": "CANARY_PIPELINE_GH", "services": ["payments"]},
                "b": {"token_env": "CANARY_PIPELINE_GH", "services": ["payments"]},
            },
            "pipelines.b.token_env: CANARY_PIPELINE_GH is already the token of pipeline a",
        ),
        ({"GitHub Actions": {}}, "pipelines.GitHub Actions: a pipeline's name is lower-case"),
        (["gh"], "`pipelines:` must be a mapping"),
    ],
)
def test_a_bad_pipeline_entry_is_refused_naming_it(pipelines: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalogue({**CATALOGUE, "pipelines": pipelines})
    assert message in str(caught.value)


# requests --------------------------------------------------------------------------------------
def test_a_deploy_request_takes_the_commands_options() -> None:
    body = {"service": "payments", "image": IMAGE, "commit": SHA.upper(), "url": COMMIT_URL}
    request = parse_deploy_request(json.dumps({**body, "steps": [5, 25, 50, 100]}).encode())
    assert request.commit == SHA and request.url == COMMIT_URL
    assert request.overrides() == {"steps": "5,25,50,100"}
    request = parse_deploy_request(json.dumps({**body, "bake": "10m", "gates": "manual"}).encode())
    assert request.overrides() == {"bake": "10m", "gates": "manual"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body must be a JSON object"),
        (b"{not json", "the body must be a JSON object"),
        (b"[1]", "the body must be a JSON object"),
        (b'{"image": "x"}', "service: required"),
        (b'{"service": "payments", "image": "x", "force": true}', "force: unknown field"),
        (b'{"service": "payments", "image": "x", "commit": "main"}', "commit: must be a git"),
        (
            b'{"service": "payments", "image": "x", "url": "javascript:alert(1)"}',
            "url: must be an http:// or https:// URL",
        ),
        (
            b'{"service": "payments", "image": "x", "url": "https://x.io/a|b"}',
            "url: must not contain",
        ),
        (b'{"service": "payments", "image": "x", "steps": [true, 100]}', "steps"),
        (b'{"service": 7, "image": "x"}', "service: Input should be a valid string"),
    ],
)
def test_a_bad_request_is_refused_saying_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_deploy_request(body)
    assert message.replace("Value error", "") in str(caught.value)


# the API over the bot's HTTP transport ---------------------------------------------------------
@pytest.fixture
def ci_rt() -> Runtime:
    return make_runtime(WITH_PIPELINES)


@pytest.fixture
def ci_mock() -> Iterator[MockSlack]:
    server = MockSlack()
    with server:
        yield server


@pytest.fixture
def base(ci_rt: Runtime, ci_mock: MockSlack) -> Iterator[str]:
    client = make_client("xoxb-test", ci_mock.base_url, retry_interval=0.01)
    door = CiApi(lambda: ci_rt, client, secrets)
    with serving(App(token="xoxb-test", token_verification_enabled=False), api=door) as url:
        yield url


def call(
    base: str, method: str, path: str, body: object = None, token: str | None = GITHUB_TOKEN
) -> tuple[int, dict[str, Any], Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body else None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), answer.headers
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw.startswith(b"{") else {}, exc.headers


def deploy_body(**more: object) -> dict[str, object]:
    return {"service": "payments", "image": IMAGE, "commit": SHA, "url": COMMIT_URL, **more}


def nothing_created(rt: Runtime) -> bool:
    return rt.store.active_ids() == [] and rt.store.history_ids("payments", 10) == []


def test_a_pipeline_starts_a_deployment_that_runs_as_from_slack(
    base: str, ci_rt: Runtime, ci_mock: MockSlack
) -> None:
    status, view, headers = call(base, "POST", "/api/deployments", deploy_body())

    assert status == 201
    dep_id = view["id"]
    assert headers["Location"] == f"/api/deployments/{dep_id}"
    assert view["state"] == "provisioning" and view["outcome"] is None
    assert view["pipeline"] == "github" and view["commit"] == SHA
    dep = ci_rt.store.get(dep_id)
    assert dep is not None
    assert dep.requester == as_actor("github") and dep.channel == PAYMENTS_CHANNEL
    first = ci_rt.store.events(dep_id)[0]
    assert isinstance(first, Requested)
    assert (first.pipeline, first.commit, first.url) == ("github", SHA, COMMIT_URL)
    assert [j.kind for j in ci_rt.scheduler.jobs][:1] == ["run"]  # type: ignore[attr-defined]
    # The card says who asked and links the commit.
    card = render_card(dep).blocks[0]["text"]["text"]
    assert "requested by pipeline github · " in card
    assert f"<{COMMIT_URL.replace('&', '&amp;')}|commit {SHA[:12]}>" in card

    status, again, _ = call(base, "GET", f"/api/deployments/{dep_id}")
    assert status == 200 and again["id"] == dep_id and again["weight"] == 0


def test_a_missing_or_wrong_token_gets_401_and_creates_nothing(base: str, ci_rt: Runtime) -> None:
    for token in (None, "wrong-" + GITHUB_TOKEN):
        status, body, headers = call(base, "POST", "/api/deployments", deploy_body(), token=token)
        assert status == 401, body
        assert headers["WWW-Authenticate"].startswith('Bearer realm="canary-bot"')
        assert GITHUB_TOKEN not in json.dumps(body)
    assert nothing_created(ci_rt)


def test_a_token_reaches_only_its_pipelines_services(base: str, ci_rt: Runtime) -> None:
    status, body, _ = call(
        base, "POST", "/api/deployments", deploy_body(service="web"), token=GITHUB_TOKEN
    )
    assert status == 403
    assert body["error"].startswith("pipeline github may not deploy web; it may: payments")
    _, view, _ = call(base, "POST", "/api/deployments", deploy_body())
    for method, path in (("GET", ""), ("POST", "/abort")):
        status, _, _ = call(base, method, f"/api/deployments/{view['id']}{path}", token=OTHER_TOKEN)
        assert status == 403
    assert ci_rt.store.get(view["id"]).state.value == "provisioning"  # type: ignore[union-attr]


def test_bad_input_gets_400_and_creates_nothing(base: str, ci_rt: Runtime) -> None:
    cases = [
        (deploy_body(commit="HEAD"), "commit"),
        (deploy_body(image="not an image"), "image"),
        (deploy_body(steps=[50, 100]), "steps"),  # fewer steps: less caution
        (deploy_body(gates="auto"), "gates"),
        (b"{", "JSON object"),
    ]
    for body, word in cases:
        status, answer, _ = call(base, "POST", "/api/deployments", body)
        assert status == 400, answer
        assert word in answer["error"]
    assert nothing_created(ci_rt)


def test_a_body_too_large_gets_413(base: str, ci_rt: Runtime) -> None:
    big = json.dumps(deploy_body(pad="x" * MAX_API_BODY)).encode()
    status, answer, _ = call(base, "POST", "/api/deployments", big)
    assert status == 413 and str(MAX_API_BODY) in answer["error"]
    assert nothing_created(ci_rt)


def test_a_busy_service_gets_409_naming_the_running_one(base: str) -> None:
    _, first, _ = call(base, "POST", "/api/deployments", deploy_body())
    status, answer, _ = call(base, "POST", "/api/deployments", deploy_body())
    assert status == 409 and answer["running"] == first["id"]


def test_unknown_ids_paths_and_methods(base: str) -> None:
    assert call(base, "GET", "/api/deployments/zzzzzzzz")[0] == 404
    assert call(base, "POST", "/api/deployments/zzzzzzzz/abort")[0] == 404
    assert call(base, "GET", "/api/deployments/../../etc")[0] == 404
    assert call(base, "GET", "/api/nothing")[0] == 404
    status, _, headers = call(base, "GET", "/api/deployments")
    assert status == 405 and headers["Allow"] == "POST"


def test_a_channel_the_bot_is_not_in_refuses_before_anything_exists(
    base: str, ci_rt: Runtime
) -> None:
    # web's channel C0WEB is not one the bot was invited to (tests/slack_mock.py).
    body = deploy_body(service="web", image=IMAGE.replace("payments", "web"))
    status, answer, _ = call(base, "POST", "/api/deployments", body, token=OTHER_TOKEN)
    assert status == 409
    assert answer["error"] == "the bot cannot post in web's channel: invite @canary there"
    assert ci_rt.store.history_ids("web", 10) == []


def test_the_pipeline_aborts_and_any_approver_approves_its_gate(base: str, ci_rt: Runtime) -> None:
    _, view, _ = call(base, "POST", "/api/deployments", deploy_body())
    dep_id = view["id"]
    to_gate(ci_rt, dep_id)
    status, gated, _ = call(base, "GET", f"/api/deployments/{dep_id}")
    assert status == 200 and gated["waiting_for_approval"] is True
    assert gated["verdict"]["outcome"] == "pass" and gated["verdict"]["summary"]

    # Four-eyes: the pipeline is the requester, so a person may approve.
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=ci_rt).ok

    status, aborted, _ = call(base, "POST", f"/api/deployments/{dep_id}/abort")
    assert status == 202 and aborted["state"] == "rolling_back"
    dep = ci_rt.store.get(dep_id)
    assert dep is not None and dep.stopped_by == as_actor("github")
    status, again, _ = call(base, "POST", f"/api/deployments/{dep_id}/abort")
    assert status == 409 and "already rolling back" in again["error"]


def test_tokens_never_reach_the_log(
    base: str, ci_rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call(base, "POST", "/api/deployments", deploy_body(), token="nope-" + OTHER_TOKEN)
    call(base, "POST", "/api/deployments", deploy_body())
    assert "refused a request with a missing or unknown token" in caplog.text
    assert "started deployment" in caplog.text
    assert GITHUB_TOKEN not in caplog.text and OTHER_TOKEN not in caplog.text


# the CLI ---------------------------------------------------------------------------------------
def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def test_the_cli_starts_a_deployment_and_is_refused_with_2(base: str) -> None:
    code, said = run_cli(
        "--api-url", base, "--token", GITHUB_TOKEN, "deploy", "payments", IMAGE, "--commit", SHA
    )
    assert code == 0, said
    assert "started" in said
    dep_id = said.split("deployment ", 1)[1].split()[0]
    code, said = run_cli("--api-url", base, "--token", GITHUB_TOKEN, "status", dep_id)
    assert code == 0 and "Provisioning" in said
    code, said = run_cli("--api-url", base, "--token", "bad", "deploy", "payments", IMAGE)
    assert code == 2 and "HTTP 401" in said
    code, said = run_cli("--api-url", base, "--token", GITHUB_TOKEN, "abort", dep_id)
    assert code == 0 and "rolling back" in said
    code, said = run_cli("--api-url", base, "--token", GITHUB_TOKEN, "abort", dep_id)
    assert code == 2 and "HTTP 409" in said


def test_the_cli_without_an_api_says_so() -> None:
    code, said = run_cli("--api-url", "http://127.0.0.1:9", "--token", "t", "status", "abcdefgh")
    assert code == 3 and "cannot reach the API" in said
    code, said = run_cli("--api-url", "ftp://x", "--token", "t", "status", "abcdefgh")
    assert code == 2


class Scripted:
    """A Client answering GETs from a list of views."""

    def __init__(self, views: list[dict[str, Any]]) -> None:
        self.views = views

    def call(self, method: str, path: str, body: object = None) -> cli.Response:
        return cli.Response(200, self.views.pop(0))


@pytest.mark.parametrize(("outcome", "code"), [("promoted", 0), ("rolled_back", 1), ("failed", 1)])
def test_wait_prints_each_stage_once_and_exits_by_the_outcome(outcome: str, code: int) -> None:
    def view(state: str, step: int = 0, **more: object) -> dict[str, Any]:
        return {
            "id": "abcdefgh",
            "service": "payments",
            "state": state,
            "status": state,
            "step": step,
            "steps": 4,
            "weight": step * 10,
            **more,
        }

    views = [
        view("baking", 1),
        view("baking", 1),
        view(
            "awaiting_approval",
            1,
            waiting_for_approval=True,
            thread_url="https://t",
            verdict={"outcome": "pass", "summary": "canary 0 × 5xx of 300 req"},
        ),
        view(outcome, 1, outcome=outcome, reason="because"),
    ]
    out = io.StringIO()
    result = cli.wait(
        Scripted(views),  # type: ignore[arg-type]
        view("provisioning"),
        cli.Printer(out),
        sleep=lambda _: None,  # type: ignore[arg-type]
    )
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert result == code
    assert lines == [
        "provisioning",
        "baking · step 1 of 4",
        "awaiting_approval · step 1 of 4 · approve in Slack: https://t",
        "  verdict: canary 0 × 5xx of 300 req",
        "  thread: https://t",
        f"{outcome} · step 1 of 4 · because",
        f"{outcome.replace('_', ' ')}: deployment abcdefgh of payments",
    ]


def test_the_cli_needs_nothing_but_the_standard_library() -> None:
    code = (
        "import json, sys, bot.cli; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - "
        "set(sys.stdlib_module_names))))"
    )
    done = subprocess.run(
        # -S: without site-packages, as from a bare checkout
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert set(json.loads(done.stdout)) <= {"__main__", "bot"}, done.stdout


def test_a_failure_on_the_bots_side_is_a_json_500(ci_rt: Runtime) -> None:
    def broken() -> Runtime:
        raise ConnectionError("redis down")

    door = CiApi(broken, None, secrets)
    with serving(App(token="xoxb-test", token_verification_enabled=False), api=door) as url:
        status, body, _ = call(url, "POST", "/api/deployments", deploy_body())
    assert status == 500 and body == {
        "error": "the request failed on the bot's side; its log says why"
    }


def test_python_m_bot_says_when_a_pipelines_token_is_unset(
    tmp_path: Path, real_redis: tuple[Any, str]
) -> None:
    config = tmp_path / "canary.yaml"
    config.write_text(
        "services:\n"
        "  search: {cluster: prod, mesh: m, virtual_router: vr, route: r, channel: C0ANY}\n"
        "pipelines:\n"
        "  gh: {token_env: CANARY_PIPELINE_UNSET_IN_THIS_TEST, services: [search]}\n"
    )
    started: list[str] = []
    with MockSlack() as mock:
        proc, base = start_bot(
            mock,
            started,
            REDIS_URL=REAL_REDIS_URL,
            CANARY_REDIS_PREFIX=real_redis[1],
            CANARY_CONFIG=str(config),
        )
        try:
            status, reason = get(f"{base}/healthz")
            assert status == 200
            assert reason == (
                "ok, but pipeline gh: CANARY_PIPELINE_UNSET_IN_THIS_TEST is not set; its requests "
                "are refused"
            )
            status, body, _ = call(base, "POST", "/api/deployments", {"service": "search"})
            assert status == 401 and body == {"error": "the token is not any pipeline's"}
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log = "".join(started) + proc.stderr.read()  # type: ignore[union-attr]
    assert "CI API: pipeline gh: CANARY_PIPELINE_UNSET_IN_THIS_TEST is not set" in log
    assert GITHUB_TOKEN not in log
