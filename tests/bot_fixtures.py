"""Pytest fixtures for the Slack tests; modules load them with `pytest_plugins`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_bolt import App

from bot.app import create_app
from tests.bot_harness import DEPLOY_GROUP, GRACE, SECRET, TOKEN, Slack, make_runtime
from tests.slack_mock import MockSlack
from workers.runtime.context import Runtime
from workers.slack.client import make_client


@pytest.fixture
def mock() -> Iterator[MockSlack]:
    with MockSlack(groups={DEPLOY_GROUP: [GRACE]}) as server:
        yield server


@pytest.fixture
def rt() -> Runtime:
    return make_runtime()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, mock: MockSlack, rt: Runtime) -> Iterator[App]:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    app = create_app(rt=rt, client=make_client(TOKEN, mock.base_url, retry_interval=0.01))
    yield app
    # Answers still being sent reach the mock before it stops (no late "could not tell" lines).
    app.close()


@pytest.fixture
def slack(app: App, mock: MockSlack) -> Slack:
    return Slack(app, mock)
