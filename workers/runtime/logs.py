"""How both processes log: plain text (the default) or one JSON object per line (LOG_FORMAT),
each line carrying the deployment it is about, and no secret of the settings.

A job that works on a deployment opens `deployment_context(dep_id)` and says what it learns with
`note(service=..., state=...)`; every line logged meanwhile, by any logger in that thread (or
task), carries them. The context is a `contextvars.ContextVar`, so threads never see each
other's deployment.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO
from urllib.parse import unquote, urlsplit

from workers.runtime.settings import LOG_FORMATS, SECRET_FIELDS, Settings

#: The text lines' layout (before the deployment's context, added at the end).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Secrets shorter than this are not masked: they would blank common words (README says so).
MIN_SECRET_LENGTH = 4
#: What stands in a line where a secret was.
MASK = "[secret]"


@dataclass(frozen=True)
class LogContext:
    """The deployment a line is about; a field is None until the job knows it."""

    deployment_id: str
    service: str | None = None
    state: str | None = None

    def fields(self) -> dict[str, str]:
        """The known fields, by the names the JSON lines use."""
        found = {"deployment_id": self.deployment_id, "service": self.service, "state": self.state}
        return {k: v for k, v in found.items() if v is not None}


_current: contextvars.ContextVar[LogContext | None] = contextvars.ContextVar(
    "canary_log_context", default=None
)


@contextlib.contextmanager
def deployment_context(
    deployment_id: str | None, *, service: str | None = None, state: str | None = None
) -> Iterator[LogContext | None]:
    """Lines logged inside carry this deployment (None: no change); the previous context
    comes back after."""
    if deployment_id is None:
        yield _current.get()
        return
    context = LogContext(deployment_id, service, state)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def note(*, service: str | None = None, state: str | None = None) -> None:
    """Add what the job learnt to the current deployment context (nothing outside one)."""
    context = _current.get()
    if context is None:
        return
    changes = {k: v for k, v in (("service", service), ("state", state)) if v is not None}
    _current.set(replace(context, **changes))


def current() -> LogContext | None:
    """The deployment context in force here, if any."""
    return _current.get()


class Redactor:
    """Replaces each secret's value in a text with MASK."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        found = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        self.secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value of the settings, and the password inside REDIS_URL on its own."""
    values = []
    for name in SECRET_FIELDS:
        value = getattr(settings, name)
        if value is not None:
            values.append(value.get_secret_value())
    with contextlib.suppress(ValueError):
        password = urlsplit(settings.redis_url.get_secret_value()).password
        if password:
            values += [password, unquote(password)]
    return values


class ContextFilter(logging.Filter):
    """Stamps each record with the deployment context in force where it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        record.canary_context = context.fields() if context else {}
        return True


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    fields = getattr(record, "canary_context", None)
    if fields is None:  # formatted without ContextFilter (another handler): read it here
        context = _current.get()
        fields = context.fields() if context else {}
    return fields


class TextFormatter(logging.Formatter):
    """The text line, then `[dep=... service=... state=...]` when a deployment is in play."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _context_of(record)
        if fields:
            names = {"deployment_id": "dep", "service": "service", "state": "state"}
            said = " ".join(f"{names[k]}={v}" for k, v in fields.items())
            first, newline, rest = line.partition("\n")  # after the message, before a traceback
            line = f"{first} [{said}]{newline}{rest}"
        return self.redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, exception, the deployment.

    Hand-written rather than python-json-logger: the fields are a fixed set, so nothing a
    library passes as `extra` (RQ passes a job's arguments) can reach a line unasked.
    """

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        line.update(_context_of(record))
        # Masked field by field: JSON's escapes could otherwise split a secret's spelling.
        return json.dumps({k: self.redact(v) for k, v in line.items()}, ensure_ascii=False)


def formatter(log_format: str, redact: Redactor) -> logging.Formatter:
    """The formatter of LOG_FORMAT `log_format` (text or json)."""
    if log_format == "json":
        return JsonFormatter(redact)
    if log_format == "text":
        return TextFormatter(redact)
    raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's lines to `stream` (stderr) at LOG_LEVEL, in LOG_FORMAT.

    Called again (a forked worker process, a test), it replaces the handler it installed
    before and leaves any other alone.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "canary_handler", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.canary_handler = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter(settings.log_format, Redactor(secrets_of(settings))))
    root.addHandler(handler)
    root.setLevel(settings.log_level_number)
    logging.captureWarnings(True)  # Python's warnings as lines of the same format
    return handler
