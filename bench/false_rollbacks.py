"""Simulated bakes: how often each rollback rule fails a healthy canary, and how fast a broken one.

Run from the repository root: .venv/bin/python -m bench.false_rollbacks [--bakes N] [--seed S]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from workers.analysis.judge import Counts, Outcome, judge

STABLE_RATE = 0.005  # the stable's true 5xx rate
THRESHOLD_PCT = 1.0  # max_error_rate
MIN_REQUESTS = 100
CHECKS = 5  # analysis_interval 1m over a 5m bake
STABLE_SHARE = 9  # at the 10 % step the stable serves 9 requests for every canary request

# A rule sees (check number, cumulative canary n/errors, cumulative stable n/errors,
# this minute's canary n/errors) and answers "roll back now".
Rule = Callable[[int, int, int, int, int, int, int], bool]


def statistical(check: int, n: int, e: int, sn: int, se: int, wn: int, we: int) -> bool:
    verdict = judge(
        Counts(n, e),
        Counts(sn, se),
        max_error_rate_pct=THRESHOLD_PCT,
        min_requests=MIN_REQUESTS,
        bake_complete=check == CHECKS,
    )
    return verdict.outcome is Outcome.FAIL


def naive_cumulative(check: int, n: int, e: int, sn: int, se: int, wn: int, we: int) -> bool:
    return e / n * 100 > THRESHOLD_PCT


def naive_window(check: int, n: int, e: int, sn: int, se: int, wn: int, we: int) -> bool:
    return we / wn * 100 > THRESHOLD_PCT


def any_5xx(check: int, n: int, e: int, sn: int, se: int, wn: int, we: int) -> bool:
    return e > 0


RULES: dict[str, Rule] = {
    "statistical (this bot)": statistical,
    "rate > 1 % (cumulative)": naive_cumulative,
    "rate > 1 % (last minute)": naive_window,
    "any 5xx": any_5xx,
}


def simulate(
    rule: Rule, canary_rps: float, canary_rate: float, *, bakes: int, seed: int
) -> tuple[float, float | None]:
    """(fraction of bakes rolled back, mean check of the rollback among those rolled back)."""
    rng = np.random.default_rng(seed)
    per_minute = round(canary_rps * 60)
    window_errors = rng.binomial(per_minute, canary_rate, size=(bakes, CHECKS))
    canary_errors = window_errors.cumsum(axis=1)
    stable_errors = rng.binomial(
        per_minute * STABLE_SHARE, STABLE_RATE, size=(bakes, CHECKS)
    ).cumsum(axis=1)
    first: list[int] = []
    for bake in range(bakes):
        for check in range(1, CHECKS + 1):
            i = check - 1
            if rule(
                check,
                per_minute * check,
                int(canary_errors[bake, i]),
                per_minute * STABLE_SHARE * check,
                int(stable_errors[bake, i]),
                per_minute,
                int(window_errors[bake, i]),
            ):
                first.append(check)
                break
    return len(first) / bakes, (sum(first) / len(first) if first else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bakes", type=int, default=2000, help="simulated bakes per cell")
    parser.add_argument("--seed", type=int, default=20260302)
    args = parser.parse_args()
    started = time.perf_counter()

    print(
        f"Stable at {STABLE_RATE:.1%} 5xx serving {STABLE_SHARE}x the canary's traffic; "
        f"checks every minute over a {CHECKS}-minute bake; {args.bakes} bakes per cell.\n"
    )
    print("Healthy canary (same 0.5 % as the stable): share of bakes rolled back")
    rates = (1, 10, 100)
    print(f"{'rule':<26}" + "".join(f"{f'{r} req/s':>12}" for r in rates))
    for name, rule in RULES.items():
        cells = [
            simulate(rule, rps, STABLE_RATE, bakes=args.bakes, seed=args.seed + rps)[0]
            for rps in rates
        ]
        print(f"{name:<26}" + "".join(f"{c:>12.2%}" for c in cells))

    print("\nBroken canary at 10 req/s: share rolled back within the bake (mean check of rollback)")
    broken = (0.015, 0.02, 0.05, 0.20)
    print(f"{'rule':<26}" + "".join(f"{f'{b:.1%} 5xx':>16}" for b in broken))
    for name, rule in RULES.items():
        cells = []
        for rate in broken:
            share, mean_check = simulate(rule, 10, rate, bakes=args.bakes // 4, seed=args.seed)
            check_text = f"({mean_check:.1f})" if mean_check is not None else "(-)"
            cells.append(f"{share:.0%} {check_text}")
        print(f"{name:<26}" + "".join(f"{c:>16}" for c in cells))
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
