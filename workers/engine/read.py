"""What a check read of AWS (made alone or for a whole slot: workers.engine.batch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.analysis.judge import Counts
from workers.analysis.latency import LatencySeries
from workers.analysis.window import MetricWindow


@dataclass(frozen=True)
class Read:
    """What a check read of AWS: its counts over `window`, its latency per period there (where
    its backend publishes it and the catalogue judges it), its alarms' states, and (when the
    batched existence lookups were made) what of the canary is gone."""

    window: MetricWindow
    canary: Counts
    stable: Counts
    alarm_states: dict[str, str] = field(default_factory=dict)
    #: The batched existence lookups (ECS service, target group) were made for this check.
    presence_looked: bool = False
    #: What they found gone, in a sentence; None when all is there (or not looked).
    gone: str | None = None
    #: Each whole period's requests and latency at the percentile, from the counts' own call.
    latency: LatencySeries | None = None
