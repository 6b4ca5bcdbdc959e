"""The catalogue is the law: overrides only add caution, images from the service's repositories,
limits on what a user types. Pure rules, each case checkable by hand."""

from __future__ import annotations

import pytest

from bot.commands import UsageError, parse
from workers.domain.catalogue import (
    ConfigError,
    apply_overrides,
    overrides_to_accept,
    parse_catalogue,
)
from workers.domain.deployment import Deployment
from workers.domain.durations import DurationError, bounded, parse_duration
from workers.domain.policy import (
    Plan,
    allowed_images,
    breaches,
    check_pattern,
    image_allowed,
    image_refusal,
    refusal,
    to_accept,
)

SERVICE = {"cluster": "prod", "mesh": "m", "virtual_router": "vr", "route": "r"}
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments"
#: The default catalogue: 10, 25, 50, 100 %, a 5 min bake, a manual gate after 10, 25 and 50.
MANUAL = Plan((10, 25, 50, 100), 300, "manual")
FINAL = Plan((10, 25, 50, 100), 300, "final")  # one gate, after 50
AUTO = Plan((10, 25, 50, 100), 300, "auto")  # no gate
ALLOWED = "Allowed: more steps, a longer bake, stricter gates."


def answer(
    catalogue: Plan, plan: Plan, given: dict[str, str], allowed: tuple[str, ...] = ()
) -> str:
    return refusal(breaches("payments", catalogue, plan, given), allowed) or "accepted"


# overrides only add caution --------------------------------------------------------------------
def test_the_mockups_refusal_word_for_word() -> None:
    plan = Plan((100,), 300, "manual")
    assert answer(MANUAL, plan, {"steps": "100"}) == (
        "steps=100 would skip the gates payments requires (manual after 10, 25, 50). " + ALLOWED
    )


def test_gates_auto_and_a_short_bake_are_both_named() -> None:
    plan = Plan((10, 25, 50, 100), 1, "auto")
    assert answer(MANUAL, plan, {"gates": "auto", "bake": "1s"}) == (
        "gates=auto would skip the gates payments requires (manual after 10, 25, 50); "
        "bake=1s would shorten the bake payments requires (5m). " + ALLOWED
    )


@pytest.mark.parametrize(
    ("catalogue", "plan", "given"),
    [
        (MANUAL, MANUAL, {"steps": "10,25,50,100", "gates": "manual", "bake": "5m"}),  # the same
        (MANUAL, Plan((5, 10, 25, 50, 75, 100), 300, "manual"), {"steps": "5,10,25,50,75,100"}),
        (MANUAL, Plan((10, 25, 50, 100), 600, "manual"), {"bake": "10m"}),
        (AUTO, Plan((10, 25, 50, 100), 300, "final"), {"gates": "final"}),
        (AUTO, Plan((10, 25, 50, 100), 300, "manual"), {"gates": "manual"}),
        (FINAL, Plan((10, 25, 50, 100), 300, "manual"), {"gates": "manual"}),
        (AUTO, Plan((1, 10, 25, 50, 100), 300, "auto"), {"steps": "1,10,25,50,100"}),
        # The catalogue gates only after 50; a 10 % step before it adds a step and drops no gate.
        (Plan((50, 100), 300, "manual"), Plan((10, 50, 100), 300, "final"), {"steps": "10,50,100"}),
    ],
)
def test_more_caution_is_accepted(catalogue: Plan, plan: Plan, given: dict[str, str]) -> None:
    assert breaches("payments", catalogue, plan, given) == []


@pytest.mark.parametrize(
    ("catalogue", "plan", "given", "expected"),
    [
        # final on a manual catalogue drops the gates after 10 and 25
        (
            MANUAL,
            Plan((10, 25, 50, 100), 300, "final"),
            {"gates": "final"},
            "gates=final would skip the gates payments requires (manual after 10, 25, 50)",
        ),
        # a step inserted after the last gated one moves a final gate away from 50
        (
            FINAL,
            Plan((10, 25, 50, 75, 100), 300, "final"),
            {"steps": "10,25,50,75,100"},
            "steps=10,25,50,75,100 would skip the gates payments requires (final after 50)",
        ),
        # no gate is lost, but 25 % is left out: 10 → 50 is a bigger jump than the catalogue's
        (
            FINAL,
            Plan((10, 50, 100), 300, "final"),
            {"steps": "10,50,100"},
            "steps=10,50,100 would leave out steps payments takes (25 %)",
        ),
        # with no gates at all, going to 100 % at once still shortens observation
        (
            AUTO,
            Plan((100,), 300, "auto"),
            {"steps": "100"},
            "steps=100 would leave out steps payments takes (10, 25, 50 %)",
        ),
        (
            MANUAL,
            Plan((10, 25, 50, 100), 299, "manual"),
            {"bake": "4m59s"},
            "bake=4m59s would shorten the bake payments requires (5m)",
        ),
    ],
)
def test_less_caution_is_refused_naming_the_rule(
    catalogue: Plan, plan: Plan, given: dict[str, str], expected: str
) -> None:
    assert answer(catalogue, plan, given) == f"{expected}. {ALLOWED}"


def test_allow_overrides_accepts_only_the_keys_it_lists() -> None:
    to_100 = Plan((100,), 300, "manual")
    found = breaches("payments", MANUAL, to_100, {"steps": "100"})
    assert answer(MANUAL, to_100, {"steps": "100"}, ("steps",)) == "accepted"
    assert to_accept(found) == ["steps"]
    assert answer(MANUAL, to_100, {"steps": "100"}, ("gates", "bake")).startswith("steps=100")
    # a gate lost through steps and gates together needs both keys allowed
    both = Plan((10, 25, 50, 75, 100), 300, "final")
    given = {"steps": "10,25,50,75,100", "gates": "final"}
    assert answer(MANUAL, both, given, ("gates",)).startswith(
        "steps=10,25,50,75,100 gates=final would skip"
    )
    assert answer(MANUAL, both, given, ("steps", "gates")) == "accepted"
    # a cautious override needs nothing to be accepted
    assert to_accept(breaches("payments", MANUAL, MANUAL, {"gates": "manual"})) == []


def test_apply_overrides_refuses_or_records_what_to_accept() -> None:
    cat = parse_catalogue(
        {
            "services": {
                "payments": SERVICE,
                "loose": {**SERVICE, "allow_overrides": ["steps", "bake"]},
            }
        }
    )
    payments, loose = cat.service("payments"), cat.service("loose")
    with pytest.raises(ConfigError) as err:
        apply_overrides(payments, {"gates": "auto", "bake": "1s"})
    assert str(err.value).startswith("gates=auto would skip the gates payments requires")
    safer = apply_overrides(payments, {"steps": "5,10,25,50,100", "bake": "10m"})
    assert (safer.steps, safer.bake, safer.gates) == ([5, 10, 25, 50, 100], 600, "manual")
    assert overrides_to_accept(payments, safer, {"steps": "5,10,25,50,100", "bake": "10m"}) == []
    planned = apply_overrides(loose, {"steps": "100", "bake": "1s"})
    assert (planned.steps, planned.bake) == ([100], 1)
    assert overrides_to_accept(loose, planned, {"steps": "100", "bake": "1s"}) == ["steps", "bake"]
    with pytest.raises(ConfigError, match="gates=auto would skip"):
        apply_overrides(loose, {"gates": "auto"})


def test_allow_overrides_lists_only_overridable_keys() -> None:
    with pytest.raises(ConfigError, match="services.payments.allow_overrides.0"):
        parse_catalogue({"services": {"payments": {**SERVICE, "allow_overrides": ["cluster"]}}})


# images ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "patterns", "allowed"),
    [
        (f"{ECR}:v2", [ECR], True),
        (f"{ECR}@sha256:{'a' * 64}", [ECR], True),
        (f"{ECR}:v2@sha256:{'a' * 64}", [ECR], True),
        ("docker.io/someone/payments:1", [ECR], False),
        (f"{ECR}-evil:1", [ECR], False),  # a pattern is the whole repository, not a prefix
        (f"{ECR}/sub:1", [ECR], False),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments:1", [ECR], False),
        # `*` stands for any characters of one path component
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments:1",
            ["123456789012.dkr.ecr.*.amazonaws.com/payments"],
            True,
        ),
        ("registry.example.com/team/api:1", ["registry.example.com/team/*"], True),
        ("registry.example.com/team/a/b:1", ["registry.example.com/team/*"], False),
        ("registry.example.com/other/api:1", ["registry.example.com/team/*"], False),
        # dots are dots, not "any character"
        ("registryXexample.com/team/api:1", ["registry.example.com/team/api"], False),
        (
            "registry.example.com/team/api:1",
            ["a.example.com/x", "registry.example.com/team/*"],
            True,
        ),
        (f"{ECR}:v2", [], False),
    ],
)
def test_image_patterns(image: str, patterns: list[str], allowed: bool) -> None:
    assert image_allowed(image, patterns) is allowed


def test_the_mockups_image_refusal_word_for_word() -> None:
    assert image_refusal("payments", "docker.io/someone/payments:1", [ECR]) == (
        "docker.io/someone/payments:1 is not an image payments deploys. "
        f"Allowed: {ECR} (tag or digest)."
    )
    assert image_refusal("payments", f"{ECR}:v9", [ECR]) is None


def test_without_images_the_stable_repository_is_the_rule() -> None:
    assert allowed_images([], f"{ECR}:v1") == [ECR]
    assert allowed_images([], f"{ECR}@sha256:{'b' * 64}") == [ECR]
    assert allowed_images(["registry.example.com/*"], f"{ECR}:v1") == ["registry.example.com/*"]
    assert allowed_images([], None) == []
    unknown = image_refusal("payments", f"{ECR}:v2", [])
    assert unknown is not None and "stable image of payments is unknown" in unknown


@pytest.mark.parametrize("bad", ["", f"{ECR}:v1", f"{ECR}@sha256:{'a' * 64}", "Not A Repo", "a//b"])
def test_image_patterns_are_repositories(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a repository pattern"):
        check_pattern(bad)
    with pytest.raises(
        ConfigError, match="services.payments.images: .*is not a repository pattern"
    ):
        parse_catalogue({"services": {"payments": {**SERVICE, "images": [bad]}}})
    assert check_pattern("123456789012.dkr.ecr.*.amazonaws.com/*") is not None


# limits ----------------------------------------------------------------------------------------
def test_durations_a_person_writes_are_bounded() -> None:
    assert bounded(parse_duration("30d")) == 30 * 86400
    for text in ("31d", "3000000d", "720h1s"):
        with pytest.raises(DurationError, match="too long: at most 30d"):
            bounded(parse_duration(text))
        key = "post_promotion_bake"
        with pytest.raises(ConfigError, match=f"services.payments.{key}: .* too long: at most 30d"):
            parse_catalogue({"services": {"payments": {**SERVICE, key: text}}})
    # thousands of digits are refused before int() would refuse them with a ValueError
    with pytest.raises(DurationError, match="too long: at most 30d"):
        parse_duration("9" * 5000 + "s")


def test_a_stored_deployment_from_before_the_limits_still_loads() -> None:
    payments = parse_catalogue({"services": {"payments": SERVICE}}).service("payments")
    huge = payments.model_copy(update={"bake": 3_000_000 * 86400})
    dep = Deployment(
        id="d1",
        service="payments",
        image=f"{ECR}:v2",
        requester="U1",
        settings=huge,
        created_at=0,
        updated_at=0,
        state_since=0,
    )
    assert Deployment.model_validate_json(dep.model_dump_json()).settings.bake == 3_000_000 * 86400


def test_bake_at_most_gate_timeout() -> None:
    with pytest.raises(ConfigError, match=r"bake \(2h\) must be at most gate_timeout \(1h\)"):
        parse_catalogue({"services": {"payments": {**SERVICE, "bake": "2h", "gate_timeout": "1h"}}})
    payments = parse_catalogue({"services": {"payments": SERVICE}}).service("payments")
    with pytest.raises(ConfigError) as err:
        apply_overrides(payments, {"bake": "25h"})
    assert str(err.value) == ('"bake=25h": bake must be at most the gate_timeout of payments (1d)')
    with pytest.raises(ConfigError) as err:
        apply_overrides(payments, {"bake": "3000000d"})
    assert str(err.value) == '"bake=3000000d": 3000000d is too long: at most 30d'


@pytest.mark.parametrize("n", ["0", "51", "²", "٣", "1" * 5000, "-1"])
def test_history_size_is_bounded(n: str) -> None:
    with pytest.raises(UsageError, match="n must be a number from 1 to 50"):
        parse(f"history payments {n}")
    assert parse("history payments 50").args == ("payments", "50")
