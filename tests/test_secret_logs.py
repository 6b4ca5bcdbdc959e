"""No secret reaches a log line, even at DEBUG: Slack's tokens, the signing secret and the Redis
password in REDIS_URL, over the real `python -m bot` and `python -m workers` during a deployment.
"""

from __future__ import annotations

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
SERVICES: dict[str, dict[str, object]] = {"quiet": {"gates": "auto"}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own that requires PASSWORD; its URL carries the password."""
    server = shutil.which("redis-server")
    if server is None:
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
        log_level="DEBUG",
    )
    w.start()
    try:
        yield w
    finally:
        w.stop()


def test_no_secret_in_any_log_line_at_debug(world: World) -> None:
    answer = world.person(DANA).ask(f"deploy quiet {IMAGE.format(key='quiet', tag='v2')}")
    found = STARTED.match(answer)
    assert found, answer
    world.wait_over(found.group(1), timeout=90)  # a whole deployment, promoted
    logs = "".join(p.output() for p in world.processes)
    assert "DEBUG" in logs, "not at DEBUG: the test would prove little"
    for secret in (TOKEN, SECRET, PASSWORD):
        leaked = [line for line in logs.splitlines() if secret in line]
        assert not leaked, leaked[:3]
    posted = " ".join(str(c.params) for c in world.slack.calls)
    assert PASSWORD not in posted and SECRET not in posted
