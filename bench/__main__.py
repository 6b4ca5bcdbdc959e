"""`python -m bench` (`make bench`): every benchmark of docs/BENCHMARKS.md in one run, one table.

Each benchmark starts and stops its own processes (moto_server, `python -m workers`,
`python -m bot`) and uses the real Redis under a key prefix of its own, removed afterwards.

    .venv/bin/python -m bench [--quick]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from bench import (
    ack_latency,
    breach,
    calls_per_step,
    chart_render,
    clicks,
    in_flight,
    slow_clients,
)
from bench.common import Row, print_table


def suite(quick: bool) -> list[tuple[str, Callable[[], list[Row]]]]:
    """(name, run) of each benchmark; `quick` scales the samples down for a smoke run."""

    def ack() -> list[Row]:
        figures, answered = ack_latency.measure(rounds=2 if quick else 5, concurrency=50)
        print(f"  all ephemeral answers delivered {answered:.2f} s after the first command")
        return ack_latency.rows(figures, 50)

    def click() -> list[Row]:
        return clicks.rows(clicks.measure(3 if quick else 10, 4 if quick else 20))

    def breached() -> list[Row]:
        result, _ = breach.measure(4 if quick else 12, interval=2)
        breach.report(result)
        return breach.rows(result, 2)

    def calls() -> list[Row]:
        return calls_per_step.measure()

    def flight() -> list[Row]:
        result = in_flight.measure(
            deployments=50 if quick else 500, interval=10, window=20 if quick else 60
        )
        in_flight.report(result)
        return in_flight.rows(result)

    def slow() -> list[Row]:
        result = slow_clients.measure(slow=500, commands=10 if quick else 40)
        slow_clients.report(result, "500 slow connections")
        return slow_clients.rows(result)

    def chart() -> list[Row]:
        renders = 10 if quick else 30
        plain = chart_render.measure(renders, latency=False)
        both = chart_render.measure(renders, latency=True)
        return chart_render.rows(plain, both)

    return [
        ("ack_latency", ack),
        ("slow_clients", slow),
        ("clicks", click),
        ("breach", breached),
        ("calls_per_step", calls),
        ("in_flight", flight),
        ("chart_render", chart),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    started = time.perf_counter()
    rows: list[Row] = []
    for name, run in suite(args.quick):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        rows += run()
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(
        f"{platform.node()}: {platform.python_implementation()} {platform.python_version()}, "
        f"{__import__('os').cpu_count()} CPUs (shared with other work: figures are noisy)"
    )
    print_table(rows)
    print(f"\nwhole suite: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
