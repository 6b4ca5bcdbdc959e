"""The catalogue is the law: what a command may change, and where images may come from.

Pure rules, no I/O. A command's `steps=`, `bake=` and `gates=` may only add caution to the plan
the catalogue sets (more or smaller steps, a longer bake, stricter gates); an image must come from
one of the service's repository patterns, or from its stable image's repository.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from workers.domain.durations import format_duration
from workers.domain.images import REFERENCE, repository

#: Gate modes from the least to the most watched.
GATE_STRICTNESS = {"auto": 0, "final": 1, "manual": 2}
#: The keys `allow_overrides` may list: exactly those a command can set.
OVERRIDE_KEYS = ("steps", "bake", "gates")
#: The end of every refusal of an override: what a command may do instead.
ALLOWED_CHANGES = "Allowed: more steps, a longer bake, stricter gates."


def gate_follows(steps: Sequence[int], gates: str, index: int) -> bool:
    """True when an approval gate follows the step at `index` (0-based) of `steps`."""
    if steps[index] >= 100:
        return False
    if gates == "manual":
        return True
    if gates == "final":
        return index == len(steps) - 2
    return False


@dataclass(frozen=True)
class Plan:
    """What a rollout does: its steps (percent), the bake at each step (seconds), its gates."""

    steps: tuple[int, ...]
    bake: int
    gates: str

    def gated(self) -> tuple[int, ...]:
        """The weights after which a person must approve the next step."""
        return tuple(w for i, w in enumerate(self.steps) if gate_follows(self.steps, self.gates, i))

    def describe(self) -> str:
        """ "steps 10, 25, 50, 100 · bake 5m · gates manual", as the card and the gate read."""
        return (
            f"steps {', '.join(map(str, self.steps))} · bake {format_duration(self.bake)} · "
            f"gates {self.gates}"
        )


@dataclass(frozen=True)
class Breach:
    """An override that makes the rollout less cautious than the catalogue's plan."""

    #: The overrides that cause it (all must be in `allow_overrides` for it to be accepted).
    keys: tuple[str, ...]
    #: "steps=100 would skip the gates payments requires (manual after 10, 25, 50)".
    text: str


def _typed(given: Mapping[str, str], keys: Sequence[str]) -> str:
    return " ".join(f"{k}={given[k]}" for k in keys)


def _weights(weights: Sequence[int]) -> str:
    return ", ".join(map(str, weights))


def breaches(service: str, catalogue: Plan, plan: Plan, given: Mapping[str, str]) -> list[Breach]:
    """Every way `plan` (the catalogue's plan with the overrides `given`) is less cautious.

    Caution is judged against the catalogue, never against another override: each step the
    catalogue gates must still be a step followed by a gate; no step of the catalogue may be left
    out (a bigger first step or a jump over a step shortens observation); the bake may not be
    shorter. Gates are compared by where they stand, so `gates=final` is refused whenever it
    would drop one of the catalogue's gates, and accepted when it drops none.
    """
    found: list[Breach] = []
    required = catalogue.gated()
    kept = set(plan.gated())
    if any(w not in kept for w in required):
        keys = tuple(k for k in ("steps", "gates") if k in given)
        found.append(
            Breach(
                keys,
                f"{_typed(given, keys)} would skip the gates {service} requires "
                f"({catalogue.gates} after {_weights(required)})",
            )
        )
    # A step the catalogue gates is reported by the gate rule above; these are the others.
    dropped = [w for w in catalogue.steps if w not in plan.steps and w not in required]
    if dropped and "steps" in given:
        found.append(
            Breach(
                ("steps",),
                f"{_typed(given, ['steps'])} would leave out steps {service} takes "
                f"({_weights(dropped)} %)",
            )
        )
    if plan.bake < catalogue.bake and "bake" in given:
        found.append(
            Breach(
                ("bake",),
                f"{_typed(given, ['bake'])} would shorten the bake {service} requires "
                f"({format_duration(catalogue.bake)})",
            )
        )
    return found


def refusal(found: Sequence[Breach], allowed: Sequence[str]) -> str | None:
    """The answer to a command whose overrides break the rule, or None when `allowed` (the
    service's `allow_overrides`) covers every breach."""
    refused = [b for b in found if not set(b.keys) <= set(allowed)]
    if not refused:
        return None
    return "; ".join(b.text for b in refused) + f". {ALLOWED_CHANGES}"


def to_accept(found: Sequence[Breach]) -> list[str]:
    """The overrides an approver must accept before the first shift (allowed breaches)."""
    return [k for k in OVERRIDE_KEYS if any(k in b.keys for b in found)]


# images ----------------------------------------------------------------------------------------
class PatternError(ValueError):
    """An `images` entry that is not a repository pattern."""


def check_pattern(pattern: str) -> str:
    """Return `pattern` if it is a repository (no tag or digest) where `*` may stand for any
    characters of one path component, else raise PatternError."""
    match = REFERENCE.match(pattern.replace("*", "x")) if pattern else None
    if not match or match.group("tag") or match.group("digest"):
        raise PatternError(
            f'"{pattern}" is not a repository pattern: name a repository without tag or digest, '
            "e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/payments (`*` within one part)"
        )
    return pattern


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    # Not fnmatch: its `*` crosses "/" (so "registry/*" would admit "registry/a/b") and it gives
    # meaning to `?` and `[...]`; here `*` is the only wildcard and stays within one component.
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.split("*")))


def image_allowed(image: str, patterns: Sequence[str]) -> bool:
    """True when the repository of `image` (its tag or digest aside) matches one pattern."""
    repo = repository(image)
    return any(_compiled(p).fullmatch(repo) for p in patterns)


def allowed_images(patterns: Sequence[str], stable_image: str | None) -> list[str]:
    """The service's `images`, or else the repository of its stable image (none if unknown)."""
    if patterns:
        return list(patterns)
    return [repository(stable_image)] if stable_image else []


def image_refusal(service: str, image: str, patterns: Sequence[str]) -> str | None:
    """None when `image` may be deployed, else the answer naming the allowed repositories."""
    if patterns and image_allowed(image, patterns):
        return None
    if not patterns:
        return (
            f"{image} cannot be checked: the stable image of {service} is unknown. "
            f"List the repositories it deploys from in the catalogue's `images`."
        )
    return (
        f"{image} is not an image {service} deploys. "
        f"Allowed: {', '.join(patterns)} (tag or digest)."
    )
