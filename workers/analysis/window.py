"""Which CloudWatch periods a check may read: whole periods, from the first one after the weight
was applied to the last one CloudWatch has had time to publish.

Pure arithmetic on epoch seconds. CloudWatch data arrives late (`metric_lag`: an ALB sends its
metrics in 60-second intervals; the CloudWatch agent scrapes, flushes and CloudWatch Logs then
extracts the metrics), and GetMetricData rounds `StartTime` down to the minute (or to the
5/10/20/30-second division for shorter periods) and treats `EndTime` as exclusive (CloudWatch API
reference, GetMetricData). So a window that starts at the shift would count the previous step's
traffic in its first period, and one that ends at "now" would miss the last periods of the bake.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricWindow:
    """The periods a check reads: [start, end), both on period boundaries (epoch seconds)."""

    start: int
    end: int

    @property
    def covered(self) -> int:
        """Seconds of the step whose data is published and read (0 when none is yet)."""
        return max(0, self.end - self.start)

    @property
    def empty(self) -> bool:
        return self.end <= self.start


def _ceil_to(t: float, period: int) -> int:
    return int(-(-t // period)) * period


def _floor_to(t: float, period: int) -> int:
    return int(t // period) * period


def metric_window(step_started_at: float, now: float, period: int, lag: int) -> MetricWindow:
    """The whole periods from the first one that starts at or after `step_started_at` to the last
    one that ended at least `lag` seconds before `now` (an empty window while there is none)."""
    if period < 1:
        raise ValueError(f"period must be at least 1 second, got {period!r}")
    if lag < 0:
        raise ValueError(f"lag cannot be negative, got {lag!r}")
    start = _ceil_to(step_started_at, period)
    end = max(start, _floor_to(now - lag, period))
    return MetricWindow(start, end)


def covered_at(step_started_at: float, bake: float, period: int, lag: int) -> int:
    """The first moment at which `metric_window` covers `bake` seconds of the step: the bake
    rounded up to whole periods from the first whole period, plus the lag."""
    start = _ceil_to(step_started_at, period)
    return start + _ceil_to(bake, period) + lag
