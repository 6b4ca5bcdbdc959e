"""End to end from a CI pipeline: `python -m bot.cli` against `python -m bot` over HTTP and
`python -m workers`, real processes (sandbox.world: real Redis, moto_server, the Slack emulator).

A pipeline's `deploy --wait` exits 0 when its healthy image is promoted (a person approving the
pipeline's gate under four-eyes, by a signed click in the thread), 1 when its bad image is rolled
back, and a bad token is refused with 401 before anything exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from sandbox.processes import ROOT, base_env
from sandbox.world import CHANNEL, IMAGE, LEE, SAM, World
from tests.test_e2e_slack import running_world
from workers.domain.events import Requested
from workers.slack.buttons import APPROVE

TOKEN = "ci-token-for-the-e2e-test-0123456789abcdef"
SHA = "5f1c2e9a0b7d4c3e8f6a1b2c3d4e5f6a7b8c9d0e"
COMMIT_URL = f"https://github.com/acme/payments/commit/{SHA}"
SERVICES: dict[str, dict[str, object]] = {
    # one gate, before 100 %: a person approves it
    "payments": {"channel": CHANNEL, "gates": "final", "approvers": [SAM, LEE]},
    # 20 % 5xx at v3 (sandbox.world.ERROR_RATES): rolled back by itself
    "search": {"channel": CHANNEL, "gates": "auto"},
}
PIPELINES = {"ci": {"token_env": "CANARY_PIPELINE_TOKEN_CI", "services": ["payments", "search"]}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(
        tmp_path_factory,
        "e2e-ci",
        SERVICES,
        pipelines=PIPELINES,
        extra_env={"CANARY_PIPELINE_TOKEN_CI": TOKEN},
    )


def cli(world: World, *argv: str, token: str = TOKEN, name: str = "cli") -> subprocess.Popen:
    """`python -m bot.cli …` as a pipeline runs it, its output in the world's directory."""
    env = base_env({"CANARY_API_URL": world.bot_url, "CANARY_API_TOKEN": token})
    log = open(world.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child writes to it
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *argv],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def output(world: World, name: str) -> str:
    return (world.workdir / f"{name}.log").read_text()


def recorded(world: World) -> list[str]:
    """Every deployment Redis holds for the world's services."""
    store = world.rt.store
    return sorted({*store.active_ids(), *(i for k in SERVICES for i in store.history_ids(k, 50))})


def holder(world: World, service: str, timeout: float = 30.0) -> str:
    """The id of the service's running deployment, once there is one."""

    def found() -> str | None:
        return world.rt.store.lock_holder(service)

    return world.slack.wait_for(found, timeout)


def said_so(world: World, name: str, text: str, timeout: float = 30.0) -> None:
    """Wait until the CLI run `name` has printed `text` (it looks every --interval)."""
    deadline = time.monotonic() + timeout
    while text not in output(world, name):
        assert time.monotonic() < deadline, output(world, name)
        time.sleep(0.1)


def test_a_bad_token_is_refused_with_401_and_nothing_is_created(world: World) -> None:
    before = list(world.slack.channel(CHANNEL))
    refused = cli(world, "deploy", "payments", IMAGE.format(key="payments", tag="v2"),
                  token="not-" + TOKEN, name="bad-token")  # fmt: skip
    assert refused.wait(timeout=60) == 2
    assert "refused (HTTP 401)" in output(world, "bad-token")

    request = urllib.request.Request(
        f"{world.bot_url}/api/deployments",
        data=json.dumps(
            {"service": "search", "image": IMAGE.format(key="search", tag="v2")}
        ).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    with caught.value as answer:
        assert answer.code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer ")

    time.sleep(1.0)  # long enough for a wrongly created deployment to have posted its card
    assert recorded(world) == []
    assert world.slack.channel(CHANNEL) == before
    assert TOKEN not in "".join(p.output() for p in world.processes)


def test_the_cli_waits_exits_0_when_promoted_and_1_when_rolled_back(world: World) -> None:
    healthy = cli(world, "deploy", "payments", IMAGE.format(key="payments", tag="v2"),
                  "--commit", SHA, "--url", COMMIT_URL, "--wait", "--interval", "0.5",
                  name="payments")  # fmt: skip
    bad = cli(world, "deploy", "search", IMAGE.format(key="search", tag="v3"), "--wait",
              "--interval", "0.5", name="search")  # fmt: skip
    try:
        dep_id = holder(world, "payments")
        card = world.wait_card(dep_id)
        shown = card.blocks[0]["text"]["text"]
        assert f"requested by pipeline ci · <{COMMIT_URL}|commit {SHA[:12]}>" in shown

        # The pipeline is the requester: any approver may approve its gate (four-eyes).
        gate = world.wait_gate(card, timeout=60)
        said_so(world, "payments", "Waiting for approval")
        assert world.person(SAM).click_and_hear(gate, APPROVE, timeout=0.3) is None

        assert healthy.wait(timeout=180) == 0, output(world, "payments")
        assert bad.wait(timeout=180) == 1, output(world, "search")
    finally:
        for proc in (healthy, bad):
            if proc.poll() is None:
                proc.kill()

    said = output(world, "payments")
    assert f"deployment {dep_id} of payments started" in said
    for stage in ("Baking 10 %", "Waiting for approval", "approve in Slack: https://", "Done ✅"):
        assert stage in said, said
    assert said.rstrip().endswith(f"promoted: deployment {dep_id} of payments")
    assert world.weights("payments") == {f"payments-{dep_id}": 100}
    first = world.rt.store.events(dep_id)[0]
    assert isinstance(first, Requested)
    assert (first.actor, first.pipeline, first.commit, first.url) == (
        "pipeline:ci",
        "ci",
        SHA,
        COMMIT_URL,
    )
    assert any(a.actor == SAM for a in world.dep(dep_id).approvals)

    said = output(world, "search")
    assert "rolled back: deployment" in said and "Rolled back ❌" in said
    assert world.weights("search") == {"search-v1": 100}
