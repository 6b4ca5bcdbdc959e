"""Pure checks of the backend-neutral traffic interface: weight validation and canary splits."""

from __future__ import annotations

import pytest

from workers.domain.traffic import WeightsError, canary_weights, format_weights, validate_weights


@pytest.mark.parametrize(
    "weights",
    [
        {"a": 100},
        {"a": 90, "b": 10},
        {"a": 0, "b": 100},
        {f"n{i}": 10 for i in range(10)},
    ],
)
def test_valid_weights_pass(weights: dict[str, int]) -> None:
    validate_weights(weights)


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ({}, "at least one target"),
        ({"a": 99}, "add up to 99 %"),
        ({"a": 50, "b": 51}, "add up to 101 %"),
        ({"a": 101}, "between 0 and 100"),
        ({"a": 110, "b": -10}, "between 0 and 100"),
        ({"a": 50.0, "b": 50}, "whole number"),
        ({"a": True, "b": 99}, "whole number"),
        ({"": 100}, "non-empty"),
        ({f"n{i}": 9 for i in range(11)}, "at most 10"),
        ([("a", 100)], "mapping"),
    ],
)
def test_invalid_weights_are_refused_with_a_sentence(weights: object, fragment: str) -> None:
    with pytest.raises(WeightsError, match=fragment) as info:
        validate_weights(weights)  # type: ignore[arg-type]
    assert str(info.value)[0].isupper() and str(info.value).endswith(".")


def test_weights_error_is_a_value_error() -> None:
    assert issubclass(WeightsError, ValueError)


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (0, {"stable": 100}),
        (10, {"stable": 90, "canary": 10}),
        (25, {"stable": 75, "canary": 25}),
        (50, {"stable": 50, "canary": 50}),
        (100, {"stable": 0, "canary": 100}),
    ],
)
def test_canary_weights(percent: int, expected: dict[str, int]) -> None:
    weights = canary_weights("stable", "canary", percent)
    assert weights == expected
    validate_weights(weights)


@pytest.mark.parametrize("percent", [-1, 101, 12.5, True])
def test_canary_weights_refuses_bad_percent(percent: object) -> None:
    with pytest.raises(WeightsError):
        canary_weights("stable", "canary", percent)  # type: ignore[arg-type]


def test_canary_weights_refuses_same_target() -> None:
    with pytest.raises(WeightsError, match="different"):
        canary_weights("a", "a", 10)


def test_format_weights() -> None:
    assert format_weights({"a": 90, "b": 10}) == "a 90 %, b 10 %"
