"""Redis restarted (append-only file on) in the middle of rollouts: they carry on."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.processes import Process, base_env, free_port, wait_for_port
from tests.stack import IMAGE, World, start_stack
from workers import api
from workers.domain.state import State


def start_redis(port: int, workdir: Path) -> Process:
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs redis-server installed")
        pytest.skip("redis-server is not installed")
    proc = Process(
        "redis",
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        base_env(),
        workdir / "redis.log",
    ).start()
    wait_for_port(port, proc=proc.proc)
    return proc


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[World, int]]:
    port = free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = start_redis(port, redis_dir)
    stack = start_stack(
        tmp_path / "stack",
        f"redis://127.0.0.1:{port}/0",
        {"payments": {"gates": "auto"}, "search": {"gates": "auto"}},
    )
    stack.redis_proc = redis  # type: ignore[attr-defined]
    yield stack, port
    stack.stop()
    stack.redis_proc.stop()  # type: ignore[attr-defined]


def test_rollouts_carry_on_across_a_redis_restart(
    restartable: tuple[World, int], tmp_path: Path
) -> None:
    stack, port = restartable
    ids = {}
    for key in ("payments", "search"):
        answer = api.start_deployment(
            key, IMAGE.format(key=key, tag="v2"), requester="U1", rt=stack.rt
        )
        assert answer.ok and answer.deployment is not None, answer.refusal
        ids[key] = answer.deployment.id
    for dep_id in ids.values():
        stack.wait(dep_id, lambda d: d.step_index >= 1)
    stack.redis_proc.stop()  # type: ignore[attr-defined]  # SIGTERM: Redis syncs its AOF
    time.sleep(1.0)  # rollouts are without Redis for a second
    stack.redis_proc = start_redis(port, tmp_path / "redis")  # type: ignore[attr-defined]
    for key, dep_id in ids.items():
        dep = stack.wait(dep_id, lambda d: not d.active, timeout=120)
        assert dep.state == State.PROMOTED, (key, dep.reason, stack.logs())
        assert stack.weights(key) == {
            stack.canary_target(key, dep)
            if hasattr(stack, "canary_target")
            else f"{key}-{dep_id}": 100
        }
