"""Durations as users write them in the catalogue and in commands: 90s, 5m, 1h30m, 2d."""

from __future__ import annotations

import re

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([dhms])")
_WHOLE = re.compile(r"(?:\d+[dhms])+")
#: The longest duration a person may write (catalogue or command): long enough for any real bake
#: or gate, short enough that every date computed from it stays a date (`bake=3000000d` would
#: put the card's "until" past the year 9999). Checked where a person writes it (`bounded`), not
#: when a stored deployment is read back.
MAX_SECONDS = 30 * 86400


class DurationError(ValueError):
    """A duration that cannot be read."""


#: Latency limits only (`max_latency`): whole milliseconds or seconds, e.g. 500ms or 2s. The
#: other durations keep s/m/h/d (design.md); "m" here would read as minutes, never as milli.
_LATENCY = re.compile(r"(\d{1,7})(ms|s)")
#: The longest latency limit a person may write: ten minutes.
MAX_LATENCY_MS = 600_000


def parse_milliseconds(text: str | int | float) -> int:
    """Return the milliseconds of a latency limit (e.g. "500ms" -> 500, "2s" -> 2000)."""
    if isinstance(text, int | float):  # bool is an int too
        raise DurationError(f"{text!r} is ambiguous: give a unit, e.g. {text}ms or {text}s")
    value = str(text).strip().lower()
    found = _LATENCY.fullmatch(value)
    if not found:
        if value.isdigit():
            raise DurationError(f"{value!r} is ambiguous: give a unit, e.g. {value}ms or {value}s")
        raise DurationError(f"{text!r} is not a latency: use whole ms or s, e.g. 500ms or 2s")
    ms = int(found.group(1)) * (1 if found.group(2) == "ms" else 1000)
    if ms <= 0:
        raise DurationError(f"{text!r} must be longer than zero")
    if ms > MAX_LATENCY_MS:
        raise DurationError(f"{text!r} is too long: at most {MAX_LATENCY_MS // 1000}s")
    return ms


def format_milliseconds(ms: float) -> str:
    """A latency limit the way users write it: 500 -> "500ms", 2000 -> "2s"."""
    whole = int(round(ms))
    return f"{whole // 1000}s" if whole and whole % 1000 == 0 else f"{whole}ms"


def parse_duration(text: str | int | float) -> int:
    """Return the number of seconds written in `text` (e.g. "1h30m" -> 5400)."""
    if isinstance(text, int | float):  # bool is an int too
        raise DurationError(
            f"{text!r} is ambiguous: give a unit (s, m, h or d), e.g. {text}s or {text}m"
        )
    value = str(text).strip().lower()
    if not _WHOLE.fullmatch(value):
        if value.isdigit():
            raise DurationError(
                f"{value!r} is ambiguous: give a unit (s, m, h or d), e.g. {value}s or {value}m"
            )
        raise DurationError(f"{text!r} is not a duration: use e.g. 90s, 5m, 1h30m or 2d")
    parts = _PART.findall(value)
    # Numbers of thousands of digits are not even converted (int() refuses past 4300 digits).
    if any(len(n.lstrip("0")) > 12 for n, _ in parts):
        raise DurationError(f"{text!r} is too long: at most {format_duration(MAX_SECONDS)}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in parts)
    if seconds <= 0:
        raise DurationError(f"{text!r} must be longer than zero")
    return seconds


def bounded(seconds: int) -> int:
    """`seconds` if a person may write it (at most MAX_SECONDS), else DurationError."""
    if seconds > MAX_SECONDS:
        raise DurationError(
            f"{format_duration(seconds)} is too long: at most {format_duration(MAX_SECONDS)}"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """Write a number of seconds the way users write durations (5400 -> "1h30m")."""
    remaining = int(round(seconds))
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
