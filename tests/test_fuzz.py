"""Bad input, fuzzed: never a 5xx from the bot, never a change, always a clear answer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_bolt import App

from bot.commands import UsageError, parse
from tests.bot_harness import PAYMENTS_CHANNEL, SAM, Slack, serving, signed_headers
from workers.domain.catalogue import Catalogue, ConfigError, apply_overrides, parse_catalogue
from workers.runtime.context import Runtime

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
WORDS = st.sampled_from(
    [
        "deploy",
        "abort",
        "status",
        "history",
        "services",
        "help",
        "payments",
        "steps=",
        "bake=",
        "gates=",
        "10,25",
        "5m",
        "manual",
        "x:y",
        "@",
        "\n",
    ]
)
COMMAND_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=8).map(" ".join),
)


def state_of(rt: Runtime) -> tuple[list[str], int]:
    """What a command could have changed: deployments and queued jobs (AWS: `no_aws` raises)."""
    return rt.store.active_ids(), len(rt.scheduler.runs)  # type: ignore[attr-defined]


@FUZZ
@given(text=COMMAND_TEXT)
def test_parse_answers_or_refuses_clearly(text: str) -> None:
    try:
        cmd = parse(text)
    except UsageError as exc:
        assert str(exc).strip()
    else:
        assert cmd.name in {"deploy", "status", "abort", "history", "services", "help"}


@FUZZ
@given(text=COMMAND_TEXT)
def test_fuzzed_commands_never_fail_the_endpoint(slack: Slack, rt: Runtime, text: str) -> None:
    before = state_of(rt)
    response = slack.command(text, user=SAM, channel=PAYMENTS_CHANNEL)  # SAM may not deploy
    assert response.status == 200
    if not text.strip().startswith("deploy"):
        assert state_of(rt)[0] == before[0]


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def action_payload(value: Any, action_id: Any, extra: Any) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": SAM},
        "channel": {"id": PAYMENTS_CHANNEL},
        "team": {"id": "T1"},
        "container": {"type": "message", "message_ts": "1.2"},
        "actions": [
            {
                "action_id": action_id,
                "value": value,
                "type": "button",
                "block_id": "b",
                "action_ts": "1.3",
            }
        ],
        "extra": extra,
    }


@FUZZ
@given(
    value=JSONISH,
    action_id=st.sampled_from(["canary_approve", "canary_abort", "canary_rollback", "other"]),
    extra=JSONISH,
)
def test_fuzzed_clicks_never_fail_the_endpoint(
    slack: Slack, rt: Runtime, value: Any, action_id: str, extra: Any
) -> None:
    before = state_of(rt)
    body = urlencode({"payload": json.dumps(action_payload(value, action_id, extra))})
    response = slack.dispatch(body)
    assert response.status < 500
    assert state_of(rt)[0] == before[0]


@pytest.fixture
def server(app: App) -> Iterator[str]:
    """The bot's real HTTP transport on a free loopback port."""
    with serving(app) as url:
        yield f"{url}/slack/events"


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@FUZZ
@given(junk=st.binary(max_size=300), signed=st.booleans())
def test_garbage_bodies_are_refused_not_crashed(server: str, junk: bytes, signed: bool) -> None:
    text = junk.decode("utf-8", "replace")
    flat = {name: values[0] for name, values in signed_headers(text).items()}
    forged = {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"}
    headers = flat if signed else forged
    status = post(server, text.encode() if signed else junk, headers)
    assert status < 500
    if not signed:
        assert status in (400, 401)


SERVICE = {"cluster": "c", "mesh": "m", "virtual_router": "v", "route": "r"}


@FUZZ
@given(
    doc=JSONISH,
    service=st.dictionaries(
        st.sampled_from(
            [
                "steps",
                "bake",
                "gates",
                "max_error_rate",
                "min_requests",
                "cluster",
                "router",
                "channel",
                "deployers",
                "metrics",
                "four_eyes",
                "nonsense",
            ]
        ),
        JSONISH,
        max_size=5,
    ),
)
def test_catalogues_load_or_say_what_is_wrong(doc: Any, service: dict[str, Any]) -> None:
    for candidate in (doc, {"services": {"payments": {**SERVICE, **service}}}):
        try:
            parse_catalogue(yaml.safe_load(yaml.safe_dump(candidate)))
        except ConfigError as exc:
            assert str(exc).strip()


@FUZZ
@given(
    overrides=st.dictionaries(
        st.sampled_from(["steps", "bake", "gates", "x"]), st.text(max_size=15), max_size=3
    )
)
def test_overrides_apply_or_say_why(overrides: dict[str, str]) -> None:
    cat: Catalogue = parse_catalogue({"services": {"payments": SERVICE}})
    try:
        changed = apply_overrides(cat.service("payments"), overrides)
    except ConfigError as exc:
        # A value that cannot be read is quoted; a readable one that loosens the plan names it.
        assert str(exc).startswith('"') or str(exc).endswith("stricter gates.")
    else:
        assert changed.steps[-1] == 100


@pytest.mark.parametrize(
    "text", ["deploy", "deploy payments", "history", "abort", "bogus", "history payments ten"]
)
def test_known_bad_commands_get_a_usage_line(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text)
    assert "/canary" in str(err.value) or "must be" in str(err.value)
