"""Log lines (workers.runtime.logs): text or JSON, each naming the deployment in play, and no
secret of the settings in either format, an exception's text included."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from tests.fakes import fake_runtime
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.events import Cause
from workers.domain.state import State, Trigger
from workers.engine.machine import Engine
from workers.engine.outbox import LoggingNotifier, deliver_pending
from workers.engine.runner import Runner
from workers.runtime import logs
from workers.runtime.context import Runtime
from workers.runtime.settings import Settings, SettingsError, load_settings

TOKEN = "xoxb-1111-logs-test-token-do-not-log"
APP_TOKEN = "xapp-1-logs-test-app-token-do-not-log"
SIGNING = "logs-test-signing-secret-0123456789"
PASSWORD = "logsTestRedisPassw0rd"
REDIS_URL = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
SECRETS = (TOKEN, APP_TOKEN, SIGNING, PASSWORD)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v2"

log = logging.getLogger("tests.logs")
#: Configures logging as a process does (LOG_FORMAT given), into a buffer it returns.
Capture = Callable[[str], io.StringIO]


def settings(log_format: str) -> Settings:
    return Settings(
        log_format=log_format,
        log_level="DEBUG",
        slack_bot_token=SecretStr(TOKEN),
        slack_app_token=SecretStr(APP_TOKEN),
        slack_signing_secret=SecretStr(SIGNING),
        redis_url=SecretStr(REDIS_URL),
    )


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Configure logging as a process does, into a buffer; give a function reading it."""
    root = logging.getLogger()
    level = root.level
    installed: list[logging.Handler] = []
    buffer = io.StringIO()

    def configure(log_format: str) -> io.StringIO:
        installed.append(logs.configure_logging(settings(log_format), stream=buffer))
        return buffer

    yield configure
    for handler in installed:
        root.removeHandler(handler)
    root.setLevel(level)


# what happens in a deployment's jobs --------------------------------------------------------
class Provision:
    """A step that goes wrong three ways, each saying a secret as careless code would."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, engine: Engine, dep: Deployment) -> None:
        self.calls += 1
        log.info("provisioning %s with token %s", dep.image, TOKEN)
        if self.calls == 1:  # an AWS error: retried
            error = {"Error": {"Code": "Throttling", "Message": f"slow down ({REDIS_URL})"}}
            raise ClientError(error, "RegisterTaskDefinition")  # type: ignore[arg-type]
        if self.calls == 2:  # a bug: the job crashes (RQ records it; the watchdog reruns it)
            raise RuntimeError(f"crashed holding {SIGNING} and {APP_TOKEN}")
        engine.roll_back(dep, reason=f"gave up on {REDIS_URL}", actor=None, by=Cause.ERROR)


def _restore(engine: Engine, dep: Deployment) -> None:
    log.debug("restoring the route of %s", dep.service)
    engine.move(dep, Trigger.ROUTE_RESTORED)


def run_a_deployment(rt: Runtime) -> Deployment:
    """Start one deployment and run its jobs (provisioning fails twice, then rolls back)."""
    answer = api.start_deployment("payments", IMAGE, requester="U1", rt=rt)
    assert answer.ok and answer.deployment is not None
    dep_id = answer.deployment.id
    runner = Runner(rt, {State.PROVISIONING: Provision(), State.ROLLING_BACK: _restore})
    dep = rt.store.get(dep_id)
    assert dep is not None
    assert runner.run(dep_id, dep.version) == "provisioning"  # the AWS error, retried
    dep = rt.store.get(dep_id)
    assert dep is not None
    with pytest.raises(RuntimeError):
        runner.run(dep_id, dep.version)
    assert runner.run(dep_id, dep.version) == "provisioning"  # now rolls back
    dep = rt.store.get(dep_id)
    assert dep is not None and dep.state == State.ROLLING_BACK
    runner.run(dep_id, dep.version)
    deliver_pending(rt, LoggingNotifier(), dep_id)
    # The store's exception path too: logged with exc_info, the URL in its text.
    try:
        raise ConnectionError(f"Redis at {REDIS_URL} went away")
    except ConnectionError:
        with logs.deployment_context(dep_id, service="payments"):
            log.exception("deployment %s: lost Redis", dep_id)
    return rt.store.get(dep_id) or dep


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_a_line_of_a_deployment_in_either_format(
    capture: Capture,
    log_format: str,
) -> None:
    out = capture(log_format)
    run_a_deployment(fake_runtime())
    written = out.getvalue()
    assert "RuntimeError" in written and "ConnectionError" in written, written
    assert logs.MASK in written, "the test said no secret: it proves nothing"
    leaked = [s for s in SECRETS if s in written]
    assert not leaked, f"{leaked} in {written}"
    # A secret's parts (JSON escapes, a URL's percent-encoding) do not slip through either.
    assert "logs-test-signing" not in written and "logsTestRedis" not in written


def test_json_lines_are_one_object_each_naming_the_deployment(
    capture: Capture,
) -> None:
    out = capture("json")
    dep = run_a_deployment(fake_runtime())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines), (
        lines
    )
    assert all(line["time"].endswith("+00:00") and "T" in line["time"] for line in lines)
    ours = [line for line in lines if line.get("deployment_id") == dep.id]
    assert {line["service"] for line in ours} == {"payments"}
    # The state the deployment was in when the line was written, moved on with it.
    moved = [line for line in ours if "provisioning -> rolling_back" in line["message"]]
    assert moved and moved[0]["state"] == "rolling_back"
    said = {line["message"].split(" with ")[0]: line.get("state") for line in ours}
    assert said[f"provisioning {IMAGE}"] == "provisioning"
    crashed = next(line for line in ours if "step crashed" in line["message"])
    assert crashed["level"] == "ERROR" and "RuntimeError" in crashed["exception"]
    assert "Traceback" in crashed["exception"]
    # The notify job's lines name it too.
    events = [line for line in ours if line["logger"] == "workers.engine.outbox"]
    assert events and all(line["state"] == "cleaning_up" for line in events)


def test_text_lines_end_with_the_deployment_before_any_traceback(
    capture: Capture,
) -> None:
    out = capture("text")
    dep = run_a_deployment(fake_runtime())
    written = out.getvalue()
    suffix = f"[dep={dep.id} service=payments state=provisioning]"
    lines = written.splitlines()
    at = next(i for i, line in enumerate(lines) if "step crashed" in line)
    assert lines[at].endswith(suffix), lines[at]
    assert lines[at + 1] == "Traceback (most recent call last):"


def test_lines_outside_a_deployment_carry_none(
    capture: Capture,
) -> None:
    out = capture("json")
    log.info("starting")
    line = json.loads(out.getvalue())
    assert line["message"] == "starting" and "deployment_id" not in line
    assert "exception" not in line


def test_each_thread_sees_its_own_deployment(
    capture: Capture,
) -> None:
    out = capture("json")
    inside = threading.Event()
    logged = threading.Event()

    def other() -> None:
        inside.wait()
        log.info("other thread")
        logged.set()

    thread = threading.Thread(target=other)
    thread.start()
    with logs.deployment_context("d-one", service="payments"):
        inside.set()
        logged.wait()
        log.info("this thread")
    thread.join()
    lines = {json.loads(x)["message"]: json.loads(x) for x in out.getvalue().splitlines()}
    assert "deployment_id" not in lines["other thread"]
    assert lines["this thread"]["deployment_id"] == "d-one"


def test_a_context_ends_with_its_block_even_after_a_note() -> None:
    with logs.deployment_context("d-outer"):
        with logs.deployment_context("d-inner"):
            logs.note(service="payments", state="baking")
            assert logs.current() == logs.LogContext("d-inner", "payments", "baking")
        assert logs.current() == logs.LogContext("d-outer")
    assert logs.current() is None
    logs.note(state="baking")  # outside any deployment: nothing to add to
    assert logs.current() is None


def test_extra_fields_never_reach_a_json_line(
    capture: Capture,
) -> None:
    out = capture("json")
    log.error("job failed", extra={"arguments": ("d-1", TOKEN)})
    line = json.loads(out.getvalue())
    assert set(line) == {"time", "level", "logger", "message"}


# the setting -----------------------------------------------------------------------------------
def test_log_format_defaults_to_text_and_takes_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert load_settings().log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", " JSON ")
    assert load_settings().log_format == "json"


def test_a_bad_log_format_stops_the_process_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as stopped:
        load_settings()
    assert str(stopped.value) == "LOG_FORMAT must be one of text, json, got 'xml'"


def test_the_redis_password_is_masked_in_its_percent_encoded_and_plain_spellings() -> None:
    found = logs.secrets_of(Settings(redis_url=SecretStr("redis://user:p%40ss-word-1@host:6379/0")))
    assert {"p%40ss-word-1", "p@ss-word-1"} <= set(found)
    redact = logs.Redactor(found)
    assert redact("auth p@ss-word-1 failed") == f"auth {logs.MASK} failed"


def test_short_secrets_are_not_masked() -> None:
    assert logs.Redactor(["abc", "abcd"])("abc abcd") == f"abc {logs.MASK}"
