"""Security over the real `python -m bot` and `python -m workers`, on a Redis with a password.

No secret reaches a log line, even at DEBUG (Slack's tokens, the signing secret, the Redis
password in REDIS_URL); and retention keeps CANARY_HISTORY_KEEP deployments per service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sandbox.world import DANA, IMAGE, SECRET, TOKEN, World
from tests.test_e2e_slack import STARTED

#: Letters and digits, as the README asks (no percent-encoding in the URL).
PASSWORD = "r3dispassw0rdTESTSECRET"
SERVICES: dict[str, dict[str, object]] = {"quiet": {"gates": "auto"}, "kept": {"gates": "auto"}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own that requires PASSWORD; its URL carries the password."""
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs redis-server installed")
        pytest.skip("no redis-server on this machine")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis-pw")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(workdir), "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, protected_redis: str) -> Iterator[World]:
    w = World(
        Path(tmp_path_factory.mktemp("secret-logs")),
        SERVICES,
        redis_url=protected_redis,
        extra_env={"LOG_LEVEL": "DEBUG", "CANARY_HISTORY_KEEP": "1", "CANARY_EVENTS_TTL": "3600"},
    )
    w.start()
    try:
        yield w
    finally:
        w.stop()


def deploy(world: World, key: str, tag: str) -> str:
    """Deploy `key` at `tag` and wait until it is over; its id."""
    answer = world.person(DANA).ask(f"deploy {key} {IMAGE.format(key=key, tag=tag)}")
    found = STARTED.match(answer)
    assert found, answer
    world.wait_over(found.group(1), timeout=90)
    return found.group(1)


def test_no_secret_in_any_log_line_at_debug(world: World) -> None:
    deploy(world, "quiet", "v2")  # a whole deployment, promoted
    logs = "".join(p.output() for p in world.processes)
    assert "DEBUG" in logs, "not at DEBUG: the test would prove little"
    for secret in (TOKEN, SECRET, PASSWORD):
        leaked = [line for line in logs.splitlines() if secret in line]
        assert not leaked, leaked[:3]
    posted = " ".join(str(c.params) for c in world.slack.calls)
    assert PASSWORD not in posted and SECRET not in posted


def test_a_finished_deployment_past_the_history_is_deleted_by_the_worker(world: World) -> None:
    client = world.rt.redis
    first = deploy(world, "kept", "v2")
    log = f"{world.prefix}:dep:{first}:events"
    assert 3500 < client.ttl(log) <= 3600  # the worker set the finished log's expiry
    second = deploy(world, "kept", "v4")
    # CANARY_HISTORY_KEEP=1: the end of the second deleted the first, its log and its notes.
    assert world.rt.store.history_ids("kept", 10) == [second]
    assert list(client.scan_iter(f"{world.prefix}:dep:{first}*")) == []
    assert world.deployment(second) is not None
