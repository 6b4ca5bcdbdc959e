"""Every environment variable of both processes, read and validated in one pydantic-settings model.

The names and defaults are those of the README's environment table (design.md's contract); the
AWS_* variables are boto3's own and are left to it. A process calls `load_settings()` once at
start, so a bad value stops it there with a message naming the variable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workers import defaults

#: Log levels a person may write (any case), as Python's logging names them.
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
#: Log formats a person may write (any case): workers.runtime.logs writes each.
LOG_FORMATS = ("text", "json")

Seconds = Annotated[float, Field(gt=0)]
_COUNT = "a whole number of at least 1"
_SECONDS = "a number of seconds above 0"


class Settings(BaseSettings):
    """The process's settings; each field is the environment variable of its name, upper-cased."""

    # An empty variable (`PORT=` in a compose file) means "unset", as the hand-written reads
    # (`os.environ.get(name) or default`) always took it; no .env file: the environment only.
    model_config = SettingsConfigDict(
        case_sensitive=False, env_ignore_empty=True, extra="ignore", frozen=True
    )

    #: Bot token (xoxb-); without it the worker logs notifications instead of posting.
    slack_bot_token: SecretStr | None = None
    #: Request signing secret of the HTTP mode.
    slack_signing_secret: SecretStr | None = None
    #: App-level token (xapp-): turns Socket Mode on.
    slack_app_token: SecretStr | None = None
    #: Base URL of the Slack Web API, always ending in "/".
    slack_api_url: str = Field(
        default=defaults.SLACK_API_URL, description="an http:// or https:// URL"
    )
    #: HTTP port of `python -m bot`; 0 asks the system for a free one (tests, the sandbox).
    port: int = Field(
        default=defaults.PORT, ge=0, le=65535, description="a port number from 0 to 65535"
    )
    #: Redis for state and queues; secret because it may carry a password.
    redis_url: SecretStr = SecretStr(defaults.REDIS_URL)
    #: Path of the service catalogue (YAML).
    canary_config: Path = Path(defaults.CONFIG_PATH)
    #: Prefix of every Redis key and queue.
    canary_redis_prefix: str = Field(
        default=defaults.REDIS_PREFIX, min_length=1, description="some text"
    )
    #: Rollout worker processes started by one `python -m workers`.
    canary_workers: int = Field(default=defaults.WORKERS, ge=1, description=_COUNT)
    #: RQ workers (threads) in each rollout worker process.
    canary_worker_threads: int = Field(default=defaults.WORKER_THREADS, ge=1, description=_COUNT)
    #: Seconds between two watchdog sweeps.
    canary_watchdog_interval: Seconds = Field(
        default=defaults.WATCHDOG_INTERVAL_SECONDS, description=_SECONDS
    )
    #: Seconds a deployment's next job may be late before the watchdog reschedules it.
    canary_watchdog_grace: float = Field(
        default=defaults.WATCHDOG_GRACE_SECONDS, ge=0, description="a number of seconds, 0 or more"
    )
    #: Seconds between two looks at the canary's ECS tasks while waiting for them.
    canary_ready_poll: Seconds = Field(default=defaults.READY_POLL_SECONDS, description=_SECONDS)
    #: Seconds after which the run lock of a crashed job expires.
    canary_run_lock_seconds: Seconds = Field(
        default=defaults.RUN_LOCK_SECONDS, description=_SECONDS
    )
    #: Deployments kept per service in Redis; older finished ones are deleted.
    canary_history_keep: int = Field(default=defaults.HISTORY_KEEP, ge=1, description=_COUNT)
    #: Seconds the event log of a finished deployment is kept in Redis.
    canary_events_ttl: Seconds = Field(default=defaults.EVENTS_TTL_SECONDS, description=_SECONDS)
    #: Refused clicks and commands recorded per deployment.
    canary_max_refusals: int = Field(default=defaults.MAX_REFUSALS, ge=1, description=_COUNT)
    #: Refusals one user may get per window before one "slow down" and a pause.
    canary_refusal_limit: int = Field(default=defaults.REFUSAL_LIMIT, ge=1, description=_COUNT)
    #: Seconds of that window (and of the pause).
    canary_refusal_window: Seconds = Field(
        default=defaults.REFUSAL_WINDOW_SECONDS, description=_SECONDS
    )
    #: Port of the worker's Prometheus /metrics (and of the web process's in Socket Mode, which
    #: has no HTTP server otherwise); unset: off. 0 asks the system for a free one (tests).
    canary_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="a port number from 0 to 65535"
    )
    #: AWS calls a second for the whole installation (all worker processes); 0: no ceiling.
    canary_aws_calls_per_second: float = Field(
        default=defaults.AWS_CALLS_PER_SECOND, ge=0, description="a number of calls, 0 or more"
    )
    #: Python log level of both processes.
    log_level: str = Field(
        default=defaults.LOG_LEVEL, description="one of " + ", ".join(LOG_LEVELS)
    )
    #: How both processes write log lines: text, or one JSON object per line.
    log_format: str = Field(
        default=defaults.LOG_FORMAT, description="one of " + ", ".join(LOG_FORMATS)
    )

    @field_validator("slack_api_url")
    @classmethod
    def _ends_with_slash(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("not an http:// or https:// URL")
        return url if url.endswith("/") else url + "/"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        name = level.strip().upper()
        if name not in LOG_LEVELS:
            raise ValueError("not a log level")
        return name

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, log_format: str) -> str:
        name = log_format.strip().lower()
        if name not in LOG_FORMATS:
            raise ValueError("not a log format")
        return name

    @property
    def log_level_number(self) -> int:
        """The log level as logging's number."""
        return logging.getLevelNamesMapping()[self.log_level]


#: Fields whose value never reaches a message or a log.
SECRET_FIELDS = frozenset(
    name
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
)


def env_names() -> tuple[str, ...]:
    """The environment variables the model reads, as a person writes them."""
    return tuple(name.upper() for name in Settings.model_fields)


def named_secret(name: str) -> SecretStr | None:
    """The secret in the environment variable `name` that the catalogue names (a pipeline's
    `token_env`), None when unset or empty. Not a field of the model: the catalogue, not the
    README's table, says which variables these are; read here so this module stays the one
    place that reads the environment."""
    value = os.environ.get(name)
    return SecretStr(value) if value else None


class SettingsError(SystemExit):
    """The environment holds a bad value: a SystemExit whose message names each variable."""


def explain(exc: ValidationError) -> str:
    """One part per bad variable: its name, what it must be, and the value unless it is secret."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        info = Settings.model_fields.get(field)
        if info is None:
            parts.append(f"{field.upper() or 'environment'}: {error['msg']}")
            continue
        what = f"must be {info.description}" if info.description else error["msg"]
        part = f"{field.upper()} {what}"
        if field not in SECRET_FIELDS:
            part += f", got {error['input']!r}"
        parts.append(part)
    return "; ".join(parts)


def load_settings() -> Settings:
    """The settings from the environment now; SettingsError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(explain(exc)) from None
