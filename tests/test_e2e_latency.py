"""End to end, latency behind an ALB: the real processes of tests/test_e2e_slack.py.

The simulated users send 20,000 req/s to each service, so a 1-second period of the sandbox
holds about 2,000 canary requests at 10 %, enough for a p99 (at least 500: docs/ANALYSIS.md,
"Latency"). The load balancer's TargetResponseTime reaches the strict moto as raw values, and
it answers `p99` per period as CloudWatch does. `search:v5` answers every request twice as
slowly (+100 % at p99) with the stable's 0.2 % 5xx; `profile:v2` is as fast as its stable, but
everyone's latency is noisy: a shared load factor each tick (log-normal, sigma 0.5) and one
tick in ten three times slower.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sandbox.world import DANA, IMAGE, World
from tests.test_e2e_slack import STARTED, assert_reads, running_world

SERVICES: dict[str, dict[str, object]] = {
    "search": {"router": "alb", "gates": "auto"},  # +100 % p99, normal errors: rolled back
    "profile": {"router": "alb", "gates": "auto"},  # noisy latency, healthy: promoted
}
TAGS = {"search": "v5", "profile": "v2"}
RPS = {"search": 20_000.0, "profile": 20_000.0}
RULE = r"\(listener rule canary-sandbox/[0-9a-f]+\)"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(
        tmp_path_factory, "e2e-latency", SERVICES, rps=RPS, latency_noise={"profile": 0.5}
    )


@pytest.fixture(scope="module")
def ids(world: World) -> dict[str, str]:
    dana = world.person(DANA)
    started: dict[str, str] = {}
    for key, tag in TAGS.items():
        answer = dana.ask(f"deploy {key} {IMAGE.format(key=key, tag=tag)}")
        found = STARTED.match(answer)
        assert found, answer
        started[key] = found.group(1)
    return started


def test_a_canary_twice_as_slow_with_normal_errors_is_rolled_back_for_its_latency(
    world: World, ids: dict[str, str]
) -> None:
    dep_id = ids["search"]
    card = world.wait_over(dep_id, timeout=120)

    assert "Rolled back ❌" in card.text, world.logs()
    assert_reads(
        world.thread(card),
        [
            r"Canary provisioned: task definition search:\d+, ",
            r"Canary ready: 2/2 tasks running\.",
            rf"Traffic 10 % → canary {RULE}\.",
            # The verdict's own sentence, checkable by hand: the medians, the limit, how many
            # periods were over it; and the errors were normal.
            r"❌ Step 1 failed at 10 % · canary [\d,]+ req, [\d,]+ × 5xx \(0\.\d+ %\).*\n"
            r"p99 latency \d+ ms on the canary vs \d+ ms on the stable \(medians over \d+ "
            r"periods of at least 500 req\): more than \+25 % slower in (\d+) of the \d+ periods "
            r"\(median \+\d+ %\), beyond their spread \(t=(∞|[\d.]+) > [\d.]+\); "
            r"canary so far 0\.\d+ % .*\n"
            r"↩️ Rolling back: restoring 100 % stable first\.$",
            r"Traffic 100 % → search-v1 in \d+\.\d s\.",
            r"Rolled back ❌ Canary scaled to 0 and removed\. Requested by <@U0DANA> · "
            r"stopped by the canary check at step 1 \(10 %\)",
        ],
    )
    failed = next(m.text for m in world.thread(card) if "❌ Step 1 failed" in m.text)
    found = re.search(r"median \+(\d+) %", failed)
    assert found and 60 <= int(found.group(1)) <= 150, failed  # about +100 %
    assert world.weights("search") == {"search-v1": 100}


def test_a_healthy_canary_with_noisy_latency_is_promoted(world: World, ids: dict[str, str]) -> None:
    dep_id = ids["profile"]
    card = world.wait_over(dep_id, timeout=120)

    assert "Done ✅" in card.text, world.logs()
    canary = f"profile-{dep_id}"
    assert world.weights("profile") == {canary: 100}
    # The steps that compared the two versions show the latency judged (medians of the
    # step's periods), and it was fine.
    passed = [m.text for m in world.thread(card) if "passed" in m.text]
    assert any(re.search(r" · p99 \d+ ms vs \d+ ms · ", t) for t in passed), "\n".join(passed)
