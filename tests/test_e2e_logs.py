"""LOG_FORMAT=json over the real `python -m bot` and `python -m workers`, at DEBUG, on a Redis with
a password: every line is one JSON object, a deployment's lines carry its id, service and state,
and no secret appears (tests/test_logs.py holds the text format and exceptions to that too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.world import SECRET, TOKEN, World
from tests.test_e2e_security import PASSWORD, deploy, protected_redis  # noqa: F401 (a fixture)

SERVICES: dict[str, dict[str, object]] = {"logged": {"gates": "auto"}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, protected_redis: str) -> Iterator[World]:  # noqa: F811
    w = World(
        Path(tmp_path_factory.mktemp("json-logs")),
        SERVICES,
        redis_url=protected_redis,
        extra_env={"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"},
    )
    w.start()
    try:
        yield w
    finally:
        w.stop()


def test_a_deployment_logs_json_lines_naming_it_and_no_secret(world: World) -> None:
    dep_id = deploy(world, "logged", "v2")  # a whole deployment, promoted
    lines: dict[str, list[dict[str, str]]] = {}
    for proc in world.processes:
        if proc.name not in ("bot", "workers"):
            continue
        text = proc.output()
        for secret in (TOKEN, SECRET, PASSWORD):
            assert secret not in text, f"{proc.name} logged a secret"
        found = lines.setdefault(proc.name, [])
        for raw in text.splitlines():
            if raw.strip():
                found.append(json.loads(raw))  # one object per line, or this fails naming it
    assert set(lines) == {"bot", "workers"}
    everything = [line for found in lines.values() for line in found]
    assert any(line["level"] == "DEBUG" for line in everything), "not at DEBUG: proves little"
    ours = [line for line in lines["workers"] if line.get("deployment_id") == dep_id]
    # Known once the job has loaded the deployment (a line or two before that name the id alone).
    assert {line.get("service") for line in ours} == {"logged", None}
    # The engine's transitions each name the state the deployment moved to.
    moved = {
        line["message"].split(" -> ")[1].split(" ")[0]: line["state"]
        for line in ours
        if line["logger"] == "workers.engine.machine"
    }
    assert moved.get("promoted") == "promoted"
    assert all(after == state for after, state in moved.items()), moved
    # Any library's lines inside a job name it too: here slack-sdk's, in the notify job.
    assert any(line["logger"].startswith("slack_sdk") for line in ours)
