"""Shared fixtures: fake and real Redis, in-process AWS (moto, made strict: sandbox.strict_moto)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from sandbox import strict_moto

pytest_plugins = ["tests.bot_fixtures"]

REAL_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Every in-process moto (mock_aws) is as strict as AWS where the product relies on it.
strict_moto.install()


@pytest.fixture(autouse=True)
def strict_aws() -> Iterator[strict_moto.Strictness]:
    """The strict AWS world's knobs (drain delay, clock), back to their defaults after a test."""
    strict_moto.STRICT.reset()
    yield strict_moto.STRICT
    strict_moto.STRICT.reset()


@pytest.fixture
def real_redis() -> Iterator[tuple[redis.Redis, str]]:
    """A real Redis and a key prefix of its own, emptied after the test.

    Without Redis the test is skipped on a laptop but fails in CI (CI=true), where Redis is part
    of the machine.
    """
    client = redis.Redis.from_url(REAL_REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a real Redis at {REAL_REDIS_URL}")
        pytest.skip(f"no Redis at {REAL_REDIS_URL}")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield client, prefix
    keys = list(client.scan_iter(f"{prefix}*")) + list(client.scan_iter(f"rq:*{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region for moto; never a real endpoint."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
