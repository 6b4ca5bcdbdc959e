"""Simulated deployments: how often a healthy canary is rolled back, how often a bad one caught.

The model of issue 16: the stable at 0.5 % 5xx, max_error_rate 1 %, min_requests 100, steps
10/25/50/100 with 5-minute bakes checked every minute (holding, still checked every minute,
while a step lacks min_requests), Poisson traffic split by weight (the stable serves nothing at
100 %). "Caught" means rolled back before the canary passes 25 %: at the 10 % or 25 % step.

Latency (the product's default: p99, canary at most 25 % slower than the stable): each request
takes a log-normal time (median 50 ms, sigma 0.6: p99 about 203 ms), times a load factor shared
by both versions that changes every minute (log-normal, sigma 0.3: noisy latency), times 1.5 for
a canary "+50 % at p99"; the "noisy on each side" figures add each version's own factor, a new
one every minute (log-normal, sigma 0.2). Each minute's p99 per version is the nearest-rank
p99 of that minute's requests, drawn exactly as an order statistic (Beta(k, n + 1 - k) of a
uniform sample).
Each figure is measured for the old per-look rule and for the product's own
`workers.analysis.judge.judge`, called as the engine calls it (with the deployment's earlier
steps and the stable's baseline: its counts over BASELINE_WINDOW before the deployment, which
the engine reads at provisioning; in the model the stable serves the whole service's traffic
then, at its usual rate), and without the baseline (a backend or a read that gave none).
The "outage" figures double both versions' 5xx rates during the deployment (not before it):
what the baseline must not blame on the canary.
`--rule latency` measures the product's latency rule alone (its 5xx failures ignored).

Run from the repository root:

    nice -n 10 .venv/bin/python -m bench.false_rollbacks [--trials N] [--jobs J] [--quick]
        [--seed S] [--only TEXT] [--rule before|after|no-baseline|latency|all]

Each figure is simulated in batches until its 95 % Wilson interval is within ±0.3 points
(at least MIN_TRIALS deployments), or from exactly --trials deployments (for ±0.3 points:
about 4,300 at 99 %, 2,200 at 0.5 %); each figure is printed with its half-width. --jobs
measures figures in that many processes (same figures: each has its own seed); --quick runs
QUICK_TRIALS per figure, for a smoke test.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from workers.analysis.judge import (
    Counts,
    Outcome,
    StepCounts,
    judge,
    wilson_lower_bound,
    worse_than_stable_p,
)
from workers.analysis.latency import LatencyLimits, LatencyPeriod, LatencySeries, judge_latency
from workers.engine.steps import BASELINE_WINDOW

STABLE_RATE = 0.005  # the stable's true 5xx rate
THRESHOLD_PCT = 1.0  # max_error_rate
MIN_REQUESTS = 100
STEPS = (10, 25, 50, 100)
BAKE_LOOKS = 5  # analysis_interval 1m over a 5m bake
MAX_HOLD_LOOKS = 24 * 60  # gate_timeout 24h: a hold that long rolls back (never reached here)
CAUGHT_BEFORE = 2  # steps 10 and 25: rolled back before the canary passes 25 %
HALF_WIDTH = 0.003  # wanted 95 % interval half-width of each figure
MIN_TRIALS, MAX_TRIALS, BATCH, QUICK_TRIALS = 2000, 50_000, 1000, 200
#: The old rule, each look on its own: Fisher's p below this, or the 99 % Wilson bound above.
OLD_WORSE_P = 0.001
#: The latency model (module docstring) and the product's default latency limits.
LATENCY_MEDIAN_MS, LATENCY_SIGMA, LOAD_SIGMA = 50.0, 0.6, 0.3
LATENCY_LIMITS = LatencyLimits(percentile=99.0, max_ms=None, max_increase_pct=25.0)
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Look:
    """One check: the step (0-based), the step's cumulative counts, where it sits in the bake."""

    step: int
    canary: Counts
    stable: Counts
    bake_complete: bool
    end_of_bake: bool
    earlier: tuple[StepCounts, ...]
    latency: LatencySeries | None = None
    #: The stable's counts over BASELINE_WINDOW before the deployment.
    baseline: Counts | None = None


#: A rule answers one look: FAIL, PASS, or anything else to keep looking.
Rule = Callable[[Look], Outcome]


def old_rule(look: Look) -> Outcome:
    """The rule before issue 16 (this step's counts only, every look on its own)."""
    lower = wilson_lower_bound(look.canary.errors, look.canary.requests)
    p = worse_than_stable_p(look.canary, look.stable)
    if (lower is not None and lower * 100 > THRESHOLD_PCT) or (p is not None and p < OLD_WORSE_P):
        return Outcome.FAIL
    if look.bake_complete and look.canary.requests >= MIN_REQUESTS:
        return Outcome.PASS
    return Outcome.BAKING


def new_rule(look: Look) -> Outcome:
    """The product's decision, called as the engine calls it (docs/ANALYSIS.md)."""
    return _judge(look, look.baseline)


def no_baseline_rule(look: Look) -> Outcome:
    """The product's decision when the engine has no baseline (none read, or an old record)."""
    return _judge(look, None)


def _judge(look: Look, baseline: Counts | None) -> Outcome:
    return judge(
        look.canary,
        look.stable,
        max_error_rate_pct=THRESHOLD_PCT,
        min_requests=MIN_REQUESTS,
        bake_complete=look.bake_complete,
        earlier=look.earlier,
        end_of_bake=look.end_of_bake,
        latency=look.latency,
        latency_limits=LATENCY_LIMITS,
        baseline=baseline,
    ).outcome


def latency_rule(look: Look) -> Outcome:
    """The product's latency rule alone (its 5xx failures ignored): its own false alarms."""
    found = judge_latency(look.latency, LATENCY_LIMITS, deciding=look.end_of_bake)
    if found is not None and found.breached:
        return Outcome.FAIL
    if look.bake_complete and look.canary.requests >= MIN_REQUESTS:
        return Outcome.PASS
    return Outcome.BAKING


RULES: dict[str, Rule] = {
    "before (per look)": old_rule,
    "after (error budget, baseline)": new_rule,
    "after, no baseline": no_baseline_rule,
    "latency rule alone": latency_rule,
}
#: --rule choices: the short name of each column ("all": the three 5xx columns).
RULE_KEYS = {
    "before": "before (per look)",
    "after": "after (error budget, baseline)",
    "no-baseline": "after, no baseline",
    "latency": "latency rule alone",
}


def p99_ms(rng: np.random.Generator, requests: int, factor: float) -> float | None:
    """The nearest-rank p99 of `requests` log-normal times, drawn as an order statistic."""
    if requests <= 0:
        return None
    k = math.ceil(0.99 * requests)
    u = min(max(float(rng.beta(k, requests + 1 - k)), 1e-12), 1 - 1e-12)
    return LATENCY_MEDIAN_MS * factor * math.exp(LATENCY_SIGMA * _NORMAL.inv_cdf(u))


def deployment(
    rng: np.random.Generator,
    rps: float,
    canary_rate: float,
    steps: int,
    rules: Sequence[Rule],
    latency_factor: float = 1.0,
    own_noise: float = 0.0,
    during: float = 1.0,
) -> list[int | None]:
    """For each rule, the step (0-based) at which it rolled the deployment back, or None.

    The rules see the same traffic; a rule that has failed or passed a step stops looking at it
    (the benchmark passes one rule at a time). `during` multiplies both versions' 5xx rates
    during the deployment (an outage), not before it.
    """
    window = BASELINE_WINDOW.total_seconds()
    before = int(rng.poisson(rps * window))
    baseline = Counts(before, int(rng.binomial(before, STABLE_RATE)))
    failed: list[int | None] = [None] * len(rules)
    earlier: list[list[StepCounts]] = [[] for _ in rules]
    alive = list(range(len(rules)))
    for step in range(steps):
        weight = STEPS[step] / 100
        cn = ce = sn = se = 0
        periods: list[LatencyPeriod] = []
        looking = list(alive)
        look_number = 0
        while looking and look_number < BAKE_LOOKS + MAX_HOLD_LOOKS:
            look_number += 1
            n = int(rng.poisson(rps * 60 * weight))
            cn, ce = cn + n, ce + int(rng.binomial(n, min(1.0, canary_rate * during)))
            m = int(rng.poisson(rps * 60 * (1 - weight))) if weight < 1 else 0
            sn, se = sn + m, se + int(rng.binomial(m, min(1.0, STABLE_RATE * during)))
            load = math.exp(float(rng.normal(0.0, LOAD_SIGMA)))
            # Noise of each version's own (its hosts, its pauses), on top of the shared load.
            own_c, own_s = (math.exp(float(x)) for x in rng.normal(0.0, own_noise, 2))
            periods.append(
                LatencyPeriod(
                    60.0 * look_number,
                    n,
                    m,
                    p99_ms(rng, n, load * own_c * latency_factor),
                    p99_ms(rng, m, load * own_s),
                )
            )
            for i in list(looking):
                look = Look(
                    step,
                    Counts(cn, ce),
                    Counts(sn, se),
                    bake_complete=look_number >= BAKE_LOOKS,
                    end_of_bake=look_number == BAKE_LOOKS,
                    earlier=tuple(earlier[i]),
                    latency=LatencySeries(99.0, tuple(periods)),
                    baseline=baseline,
                )
                outcome = rules[i](look)
                if outcome is Outcome.FAIL:
                    failed[i] = step
                    looking.remove(i)
                    alive.remove(i)
                elif outcome is Outcome.PASS:
                    earlier[i].append(StepCounts(look.canary, look.stable))
                    looking.remove(i)
        for i in looking:  # held for a whole gate_timeout: rolled back for lack of traffic
            failed[i] = step
            alive.remove(i)
        if not alive:
            break
    return failed


@dataclass(frozen=True)
class Figure:
    """A simulated share with its 95 % Wilson interval."""

    hits: int
    trials: int

    @property
    def share(self) -> float:
        return self.hits / self.trials

    @property
    def half_width(self) -> float:
        z, n, p = 1.96, self.trials, self.share
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(centre + half - p, p - (centre - half))

    def text(self) -> str:
        return f"{self.share:.2%} ±{self.half_width:.2%} (n={self.trials:,})"


@dataclass(frozen=True)
class Scenario:
    name: str
    rps: float
    canary_rate: float
    steps: int  # how many steps to simulate
    goal: str
    latency_factor: float = 1.0  # the canary's response times against the stable's
    own_noise: float = 0.0  # sigma of each version's own log-normal noise, a minute
    during: float = 1.0  # both versions' 5xx rates times this during the deployment (an outage)

    def counts(self, failed_at: int | None) -> bool:
        """Whether a deployment counts towards this figure."""
        if self.canary_rate == STABLE_RATE and self.latency_factor == 1.0:
            return failed_at is not None  # any rollback of a healthy canary is a false one
        return failed_at is not None and failed_at < CAUGHT_BEFORE


SCENARIOS = (
    Scenario("healthy canary rolled back, 1 req/s", 1, STABLE_RATE, len(STEPS), "≤ 0.5 %"),
    Scenario("healthy canary rolled back, 10 req/s", 10, STABLE_RATE, len(STEPS), "≤ 0.5 %"),
    Scenario("healthy canary rolled back, 100 req/s", 100, STABLE_RATE, len(STEPS), "≤ 0.5 %"),
    Scenario("2× 5xx (1 %) caught before 25 %, 100 req/s", 100, 0.01, CAUGHT_BEFORE, "≥ 99 %"),
    Scenario("5× 5xx (2.5 %) caught before 25 %, 10 req/s", 10, 0.025, CAUGHT_BEFORE, "≥ 99 %"),
    Scenario(
        "healthy canary, both versions' 5xx doubled during the deployment (outage), 10 req/s",
        10,
        STABLE_RATE,
        len(STEPS),
        "(bound 2 %)",
        during=2.0,
    ),
    Scenario(
        "healthy canary, both versions' 5xx doubled during the deployment (outage), 100 req/s",
        100,
        STABLE_RATE,
        len(STEPS),
        "(bound 2 %)",
        during=2.0,
    ),
    Scenario(
        "p99 latency +50 % caught before 25 %, 100 req/s",
        100,
        STABLE_RATE,
        CAUGHT_BEFORE,
        "≥ 95 %",
        latency_factor=1.5,
    ),
    Scenario(
        "healthy, latency noisy on each side (σ 0.2), rolled back, 100 req/s",
        100,
        STABLE_RATE,
        len(STEPS),
        "≤ 0.5 %",
        own_noise=0.2,
    ),
    Scenario(
        "p99 +50 %, latency noisy on each side (σ 0.2), caught before 25 %, 100 req/s",
        100,
        STABLE_RATE,
        CAUGHT_BEFORE,
        "(none)",
        latency_factor=1.5,
        own_noise=0.2,
    ),
)


def measure(scenario: Scenario, rule: Rule, *, seed: int, trials: int | None = None) -> Figure:
    """One figure from `trials` deployments, or, without it, precise to HALF_WIDTH."""
    rng = np.random.default_rng(seed)
    hits = done = 0
    while True:
        for _ in range(min(BATCH, trials - done) if trials else BATCH):
            (failed_at,) = deployment(
                rng,
                *_model(scenario),
                [rule],
                latency_factor=scenario.latency_factor,
                own_noise=scenario.own_noise,
                during=scenario.during,
            )
            hits += scenario.counts(failed_at)
            done += 1
        figure = Figure(hits, done)
        if trials:
            if done >= trials:
                return figure
        elif done >= MAX_TRIALS or (done >= MIN_TRIALS and figure.half_width <= HALF_WIDTH):
            return figure


def _measure_task(task: tuple[int, str, int, int | None]) -> Figure:
    """One figure in a worker process: (scenario index, rule name, seed, trials)."""
    k, rule_name, seed, trials = task
    return measure(SCENARIOS[k], RULES[rule_name], seed=seed, trials=trials)


def _model(s: Scenario) -> tuple[float, float, int]:
    return s.rps, s.canary_rate, s.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TRIALS} per figure")
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help="deployments per figure (default: until the 95 %% interval is within ±0.3 points)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one figure each)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument(
        "--only", default="", help="run only the figures whose name contains this text"
    )
    parser.add_argument(
        "--rule",
        choices=("all", *RULE_KEYS),
        default="all",
        help="which rule's column (after: the product as the engine calls it, with the baseline)",
    )
    args = parser.parse_args()
    if args.trials is not None and args.trials < 1:
        parser.error("--trials must be at least 1")
    trials = QUICK_TRIALS if args.quick else args.trials
    started = time.perf_counter()
    print(
        f"Stable at {STABLE_RATE:.1%} 5xx; max_error_rate {THRESHOLD_PCT:g} %, min_requests "
        f"{MIN_REQUESTS}; steps {'/'.join(map(str, STEPS))}, {BAKE_LOOKS}-minute bakes checked "
        "every minute; Poisson traffic (req/s of the whole service) split by weight.\n"
        "Each figure: share of simulated deployments, ± its 95 % Wilson interval, n deployments.\n"
    )
    every = [RULE_KEYS[k] for k in ("before", "after", "no-baseline")]
    names = [RULE_KEYS[args.rule]] if args.rule != "all" else every
    rows = [k for k, s in enumerate(SCENARIOS) if args.only in s.name]
    tasks = [(k, name, args.seed + k, trials) for k in rows for name in names]
    print(f"| measure | goal | {' | '.join(names)} |")
    print("|---|---|" + "---|" * len(names))
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        figures = pool.imap(_measure_task, tasks)  # in order: each row prints once it is done
        for k in rows:
            cells = " | ".join(next(figures).text() for _ in names)
            print(f"| {SCENARIOS[k].name} | {SCENARIOS[k].goal} | {cells} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
