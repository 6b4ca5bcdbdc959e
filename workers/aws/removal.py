"""What removing a version left behind: what a person must do, and what AWS is still draining.

Real AWS lets some resources go only after others have emptied (a Cloud Map service while ECS
still deregisters its stopping tasks). A removal step says so instead of failing, and the engine
looks again later without counting it as a failed attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Removal:
    """The outcome of one pass at removing a version; both lists hold sentences for a person."""

    #: Things that could not be done and will not happen by themselves.
    problems: list[str] = field(default_factory=list)
    #: Things AWS is still emptying: look again later; each says what to do if it never ends.
    draining: list[str] = field(default_factory=list)

    def __add__(self, other: Removal) -> Removal:
        return Removal([*self.problems, *other.problems], [*self.draining, *other.draining])

    @property
    def finished(self) -> bool:
        """Nothing left to wait for (problems may remain)."""
        return not self.draining
