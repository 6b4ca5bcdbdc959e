"""Benchmark: signed slash commands acknowledged while hundreds of slow clients hold connections.

Starts `python -m bot` over HTTP (Slack emulator, the real Redis under a prefix of its own),
opens `--slow` connections on loopback that each send the headers of a POST to /slack/events
announcing a 10 kB body, then one byte of it every `--drip` seconds (a slowloris), and while
they are open sends `--commands` signed `/canary status` commands one after another, each on a
new connection, timing each from connect() to the last byte of its acknowledgement. Also
reports the bot's threads and memory under the flood, and how many slow connections the bot
still holds `--linger` seconds later (still dripping). Everything stops by itself after that
(the drip loop has a deadline too).

`--reference COMMIT` runs the bot of another commit instead (exported with `git archive` into a
temporary directory, never a checkout), for a before/after comparison:

    .venv/bin/python -m bench.slow_clients [--slow 500] [--commands 40] [--reference c0caf34]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import yaml
from redis import Redis

from bench.burst import http_post
from bench.common import (
    CHANNEL,
    REDIS_URL,
    SECRET,
    TOKEN,
    Figures,
    Row,
    clean_redis,
    figures,
    memory_kb,
    new_prefix,
    print_table,
    signed,
)
from sandbox.processes import ROOT, base_env, free_port, wait_for_http
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_user import command_body

#: Slack gives up on an acknowledgement after 3 s; the goal is well inside it.
GOAL = 1.0
#: A command with no acknowledgement after this long counts as lost.
GIVE_UP = 10.0


@dataclass(frozen=True)
class Result:
    """Ack latencies under the flood, how many were lost, the bot's threads and memory."""

    slow: int
    held: int
    #: Slow connections still open `linger` seconds after the flood began.
    held_later: int
    linger: float
    acks: Figures | None
    lost: int
    threads: int
    rss_kb: int


CATALOGUE = {
    "services": {
        "payments": {
            "cluster": "prod",
            "mesh": "prod-mesh",
            "virtual_router": "payments-vr",
            "route": "payments-route",
        }
    }
}


@contextlib.contextmanager
def exported(commit: str | None) -> Iterator[Path]:
    """This tree, or the tree of `commit` exported into a temporary directory (read only)."""
    if commit is None:
        yield ROOT
        return
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def start_bot(root: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    full = base_env({**env, "PORT": str(port), "PYTHONDONTWRITEBYTECODE": "1"})
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=root,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
    return proc, port


class Slowloris:
    """`count` connections dripping a body one byte per `drip` seconds until `stop` or `until`."""

    def __init__(self, port: int, count: int, drip: float, until: float) -> None:
        self.port, self.drip, self.until = port, drip, until
        self.socks: list[socket.socket] = []
        self.stop = threading.Event()
        head = (
            "POST /slack/events HTTP/1.1\r\nHost: bot\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Slack-Request-Timestamp: {int(time.time())}\r\nX-Slack-Signature: v0=00\r\n"
            "Content-Length: 10000\r\n\r\n"
        ).encode()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(head + b"x")
            self.socks.append(sock)
        self.thread = threading.Thread(target=self._drip, name="slowloris", daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        while not self.stop.wait(self.drip) and time.monotonic() < self.until:
            for sock in list(self.socks):
                try:
                    sock.send(b"x")
                except OSError:  # closed by the server: one connection fewer held
                    self.socks.remove(sock)

    def held(self) -> int:
        """Connections the server has not closed (a closed one reads EOF or fails)."""
        alive = 0
        for sock in self.socks:
            sock.setblocking(False)
            try:
                alive += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
            finally:
                sock.setblocking(True)
        return alive

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


def ack(port: int, body: str) -> float | None:
    """Seconds from connect() to the whole acknowledgement; None when it never came."""
    request = http_post("127.0.0.1", port, "/slack/events", body, signed(body))
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return None
    if not data.startswith(b"HTTP/1.1 200"):
        return None
    return time.perf_counter() - started


def threads_of(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/task"))
    return 0


def measure(
    slow: int = 500,
    commands: int = 40,
    drip: float = 5.0,
    reference: str | None = None,
    linger: float = 15.0,
) -> Result:
    redis = Redis.from_url(REDIS_URL)
    redis.ping()
    prefix = new_prefix("slow")
    with (
        SlackEmulator() as slack,
        tempfile.TemporaryDirectory() as tmp,
        exported(reference) as root,
    ):
        config = Path(tmp) / "canary.yaml"
        config.write_text(yaml.safe_dump(CATALOGUE))
        env = {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "REDIS_URL": REDIS_URL,
            "CANARY_REDIS_PREFIX": prefix,
            "CANARY_CONFIG": str(config),
            "LOG_LEVEL": "WARNING",
        }
        proc, port = start_bot(root, env, Path(tmp) / "bot.log")
        flood: Slowloris | None = None

        def body() -> str:
            return command_body(
                "status", user="U0BENCH", channel=CHANNEL, response_url=slack.response_url()
            )

        try:
            for _ in range(3):  # warm-up: the catalogue, Redis connections
                ack(port, body())
            began = time.monotonic()
            flood = Slowloris(port, slow, drip, until=began + linger + 60)
            time.sleep(1.0)  # every slow connection accepted and started
            samples = [ack(port, body()) for _ in range(commands)]
            threads, (rss, _) = threads_of(proc.pid), memory_kb(proc.pid)
            held = flood.held()
            time.sleep(max(0.0, began + linger - time.monotonic()))
            held_later = flood.held()
        finally:
            if flood is not None:
                flood.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            clean_redis(redis, prefix)
    acked = [s for s in samples if s is not None]
    return Result(
        slow=slow,
        held=held,
        held_later=held_later,
        linger=linger,
        acks=figures(acked) if acked else None,
        lost=len(samples) - len(acked),
        threads=threads,
        rss_kb=rss,
    )


def report(result: Result, label: str) -> None:
    figures_text = result.acks.text() if result.acks else "none acknowledged"
    print(
        f"  {label}: {result.slow} slow connections ({result.held} open after the commands, "
        f"{result.held_later} after {result.linger:g} s), "
        f"acks {figures_text}, lost {result.lost}, bot {result.threads} threads, "
        f"{result.rss_kb / 1024:.0f} MB RSS"
    )


def rows(result: Result) -> list[Row]:
    met = result.acks is not None and result.lost == 0 and result.acks.p99 < GOAL
    text = result.acks.text() if result.acks else "none"
    return [
        Row(
            f"slash-command ack with {result.slow} slow connections open, HTTP",
            "Slack's limit 3,000 ms",
            f"p99 < {GOAL * 1000:.0f} ms, none lost",
            f"{text}, lost {result.lost}",
            met,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=500)
    parser.add_argument("--commands", type=int, default=40)
    parser.add_argument("--drip", type=float, default=5.0, help="seconds between two bytes")
    parser.add_argument("--linger", type=float, default=15.0, help="seconds, then count again")
    parser.add_argument("--reference", help="also run the bot of this commit, for comparison")
    args = parser.parse_args()
    result = measure(args.slow, args.commands, args.drip, linger=args.linger)
    report(result, "this tree")
    table = rows(result)
    if args.reference:
        before = measure(args.slow, args.commands, args.drip, args.reference, args.linger)
        report(before, args.reference)
        table += [
            Row(f"{r.measure} ({args.reference})", r.reference, r.goal, r.result, r.met)
            for r in rows(before)
        ]
    print_table(table)


if __name__ == "__main__":
    main()
