"""Benchmark: how fast `python -m bot` acknowledges bursts of concurrent signed slash commands.

Starts the bot over HTTP against the Slack emulator and the real Redis (a key prefix of its own,
removed afterwards), fires rounds of concurrent `/canary status` and `/canary deploy` commands
sent together, and reports the ack latency: from opening the connection to reading the whole
HTTP response. No worker runs: the deploy jobs are enqueued and removed afterwards.

The burst comes from a process of its own, one thread on non-blocking sockets (`bench.burst`),
so that the client's own threads and the emulator do not share an interpreter lock with the
timing. `--client threads` uses the older generator instead: 50 threads of urllib in this
process, released by a barrier, which adds the client's own queueing to every figure.

    .venv/bin/python -m bench.ack_latency [--rounds 5] [--concurrency 50] [--client threads]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import yaml
from redis import Redis

from bench import burst
from bench.common import (
    CHANNEL,
    REDIS_URL,
    SECRET,
    TOKEN,
    Figures,
    Row,
    clean_redis,
    figures,
    new_prefix,
    print_table,
    signed,
)
from sandbox.processes import start_bot
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_user import command_body


def catalogue(services: int) -> dict[str, object]:
    return {
        "defaults": {"gates": "manual"},
        "services": {
            f"svc{i:03d}": {
                "cluster": "prod",
                "mesh": "prod-mesh",
                "virtual_router": f"svc{i:03d}-vr",
                "route": f"svc{i:03d}-route",
            }
            for i in range(services)
        },
    }


def signed_post(url: str, body: str) -> float:
    """POST a signed body; return the seconds until the response (the ack) arrived."""
    import urllib.request

    request = urllib.request.Request(url, data=body.encode(), headers=signed(body), method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}")
    return time.perf_counter() - started


def fire_threads(url: str, bodies: list[str]) -> list[float]:
    """The older generator: one urllib thread per request, released together by a barrier."""
    barrier = threading.Barrier(len(bodies))

    def one(b: str) -> float:
        barrier.wait()
        return signed_post(url, b)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def measure(rounds: int = 5, concurrency: int = 50, client: str = "burst") -> tuple[Figures, float]:
    """(ack figures, seconds until every ephemeral answer reached its response_url)."""
    redis = Redis.from_url(REDIS_URL)
    redis.ping()
    prefix = new_prefix("ack")
    deploys_per_round = concurrency // 2
    with SlackEmulator(channels=[CHANNEL]) as slack, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "canary.yaml"
        config.write_text(yaml.safe_dump(catalogue(deploys_per_round * rounds)))
        env = {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "REDIS_URL": REDIS_URL,
            "CANARY_REDIS_PREFIX": prefix,
            "CANARY_CONFIG": str(config),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        }
        bot, base = start_bot(env, Path(tmp))
        url = f"{base}/slack/events"
        host, _, port_text = base.removeprefix("http://").partition(":")
        port = int(port_text)
        sender = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        sender.submit(time.sleep, 0).result()  # the sender process is up before the first burst

        def body(text: str, user: str) -> str:
            return command_body(text, user=user, channel=CHANNEL, response_url=slack.response_url())

        try:
            for _ in range(3):  # warm-up: auth.test, the catalogue, Redis connections
                signed_post(url, body("status", "U0WARM"))
            acks: list[float] = []
            answered_before = len(slack.responses)
            answer_started = time.perf_counter()
            for r in range(rounds):
                bodies = []
                for i in range(concurrency):
                    if i % 2 == 0 and i // 2 < deploys_per_round:
                        service = f"svc{r * deploys_per_round + i // 2:03d}"
                        text = f"deploy {service} registry.example/{service}:v2"
                    else:
                        text = "status"
                    bodies.append(body(text, f"U{i:04d}"))
                if client == "threads":
                    acks += fire_threads(url, bodies)
                else:
                    raw = [
                        burst.http_post(host, port, "/slack/events", b, signed(b)) for b in bodies
                    ]
                    acks += sender.submit(burst.fire, host, port, raw).result()
            expected = answered_before + rounds * concurrency
            slack.wait_for(lambda: len(slack.responses) >= expected, timeout=60)
            all_answered = time.perf_counter() - answer_started
        finally:
            sender.shutdown()
            bot.stop()
            clean_redis(redis, prefix)
    return figures(acks), all_answered


def rows(acks: Figures, concurrency: int) -> list[Row]:
    return [
        Row(
            f"slash-command ack, {concurrency} concurrent, HTTP",
            "Slack's limit 3,000 ms",
            "p99 ≤ 100 ms",
            acks.text(),
            acks.p99 <= 0.1,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--client", choices=["burst", "threads"], default="burst")
    args = parser.parse_args()
    acks, answered = measure(args.rounds, args.concurrency, args.client)
    print_table(rows(acks, args.concurrency))
    print(f"all ephemeral answers delivered {answered:.2f} s after the first command")


if __name__ == "__main__":
    main()
