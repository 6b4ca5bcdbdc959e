"""docker-compose.yml never runs Redis open: a password it requires, and both processes use it."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = "${REDIS_PASSWORD:?"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_redis_with_a_password_it_requires() -> None:
    redis = compose()["services"]["redis"]
    command = [str(a) for a in redis["command"]]
    password = command[command.index("--requirepass") + 1]
    # `${VAR:?message}`: Compose stops with the message when REDIS_PASSWORD is unset or empty.
    assert password.startswith(REQUIRED), password
    assert redis["environment"]["REDISCLI_AUTH"].startswith(REQUIRED)  # the health check's auth
    assert "PONG" in " ".join(redis["healthcheck"]["test"])  # NOAUTH would exit 0 too


def test_both_processes_reach_redis_with_the_password() -> None:
    services = compose()["services"]
    for name in ("web", "worker"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:" + REQUIRED) and url.endswith("@redis:6379/0"), url


def test_readme_shows_a_password_and_tls() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "redis://:PASSWORD@redis:6379/0" in readme
    assert "rediss://" in readme
    assert "REDIS_PASSWORD" in readme
