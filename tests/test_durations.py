"""Durations as users write them."""

import pytest

from workers.domain.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("24h", 86400), ("2d", 172800), ("1m30s", 90)],
)
def test_parses_units_alone_or_combined(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5", 5, 1.5, "", "m", "5 minutes", "-5m", "0s", "5M5"])
def test_refuses_what_it_cannot_read(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_bare_number_is_called_ambiguous() -> None:
    with pytest.raises(DurationError, match="ambiguous"):
        parse_duration("300")


@pytest.mark.parametrize("seconds", [1, 59, 90, 300, 5400, 86400, 90061])
def test_format_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
