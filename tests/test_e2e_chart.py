"""End to end, the chart in the thread: `python -m bot` and `python -m workers` as real
processes, the Slack emulator taking the uploads (sandbox.world).

A canary rolled back by its check gets the verdict's text and then a chart file in its thread;
`/canary status` posts a fresh one; and with the upload refused (the app installed without
`files:write`) the text still goes out and the outbox moves on to the end.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from sandbox.slack_emulator import Upload
from sandbox.slack_user import SlackUser
from sandbox.world import CHANNEL, DANA, IMAGE, World
from tests.test_e2e_slack import STARTED, running_world

SERVICES: dict[str, dict[str, object]] = {"search": {}, "web": {}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(tmp_path_factory, "e2e-chart", SERVICES)


@pytest.fixture(scope="module")
def dana(world: World) -> SlackUser:
    return world.person(DANA)


def deploy_bad_canary(dana: SlackUser, key: str) -> str:
    """Deploy image tag v3, which answers 20 % 5xx (sandbox.world.ERROR_RATES)."""
    answer = dana.ask(f"deploy {key} {IMAGE.format(key=key, tag='v3')}")
    found = STARTED.match(answer)
    assert found, answer
    return found.group(1)


def png_size(upload: Upload) -> tuple[int, int]:
    data = upload.data or b""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_a_rolled_back_thread_gets_the_verdict_and_a_chart(world: World, dana: SlackUser) -> None:
    dep_id = deploy_bad_canary(dana, "search")
    card = world.wait_over(dep_id)
    assert "Rolled back ❌" in card.text
    [chart] = world.slack.wait_for(lambda: world.charts(card), timeout=60)

    assert chart.filename.startswith(f"canary-search-{dep_id}-")
    assert png_size(chart) == (1000, 560)
    # Drawn once the failed check's message is out: the rollback may still be under way then.
    assert chart.title in (
        f"search {dep_id}: canary vs stable, rolled back",
        f"search {dep_id}: canary vs stable, rolling back",
    )
    # The verdict's text comes first, its chart under it, as people read the thread.
    thread = world.slack.thread(CHANNEL, card.ts, files=True)
    failed = next(i for i, m in enumerate(thread) if m.text.startswith("❌ Step 1 failed"))
    shared = next(i for i, m in enumerate(thread) if m.files)
    assert failed < shared
    assert thread[shared].files[0]["name"] == chart.filename
    # Drawn from what each check saw: the samples end with the failing one.
    samples = world.rt.store.samples(dep_id)
    assert samples and samples[-1].outcome == "fail" and samples[-1].weight == 10

    answer = dana.ask("status search")
    assert "A chart of it is being posted in its thread." in answer
    world.slack.wait_for(lambda: len(world.charts(card)) == 2, timeout=60)
    assert "-status-" in world.charts(card)[1].filename


def test_a_refused_upload_leaves_the_text_and_the_outbox_goes_on(
    world: World, dana: SlackUser
) -> None:
    world.slack.revoke_scope("files:write")  # installed before the chart's scope was added
    dep_id = deploy_bad_canary(dana, "web")

    # Over, and every event of its log delivered: nothing waits behind the refused upload.
    card = world.wait_over(dep_id)
    texts = [m.text for m in world.thread(card)]
    assert any(t.startswith("❌ Step 1 failed at 10 %") for t in texts)
    assert texts[-1].startswith("Rolled back ❌")
    notes = world.slack.wait_for(
        lambda: next(
            (v for k, v in world.rt.store.notes(dep_id).items() if k.startswith("chart:")), None
        ),
        timeout=60,
    )
    assert notes == "refused missing_scope"
    assert world.charts(card) == []
    asked = [c.params for c in world.slack.calls if c.method == "files.getUploadURLExternal"]
    assert any(dep_id in str(p.get("filename")) for p in asked)  # tried once, then dropped
