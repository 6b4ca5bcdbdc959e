"""The settings model: names and defaults of the README, bad values refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers import defaults
from workers.runtime.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "xoxb-1111-settings-test-do-not-log"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_unset_variables_take_the_documented_defaults() -> None:
    settings = load_settings()
    assert settings.redis_url.get_secret_value() == defaults.REDIS_URL
    assert settings.canary_redis_prefix == defaults.REDIS_PREFIX
    assert str(settings.canary_config) == defaults.CONFIG_PATH
    assert (settings.port, settings.canary_workers) == (3000, 1)
    assert settings.canary_worker_threads == defaults.WORKER_THREADS
    assert settings.canary_watchdog_interval == defaults.WATCHDOG_INTERVAL_SECONDS
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.slack_bot_token is None and settings.log_level == "INFO"


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "")
    monkeypatch.setenv("CANARY_REDIS_PREFIX", "")
    settings = load_settings()
    assert (settings.port, settings.canary_redis_prefix) == (3000, "canary")


def test_values_are_read_and_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARY_WORKERS", "3")
    monkeypatch.setenv("CANARY_READY_POLL", "0.5")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert (settings.canary_workers, settings.canary_ready_poll) == (3, 0.5)
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CANARY_WORKERS", "abc"),
        ("CANARY_WORKERS", "0"),
        ("CANARY_WORKER_THREADS", "-2"),
        ("PORT", "-1"),
        ("PORT", "70000"),
        ("CANARY_WATCHDOG_INTERVAL", "0"),
        ("CANARY_RUN_LOCK_SECONDS", "soon"),
        ("LOG_LEVEL", "LOUD"),
        ("SLACK_API_URL", "slack.com/api"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).startswith(f"{name} must be ")
    assert repr(value) in str(refused.value)


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret-signing")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@redis:6379/0")
    settings = load_settings()
    shown = repr(settings) + str(settings)
    assert TOKEN not in shown and "s3cret-signing" not in shown and "hunter2" not in shown
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == TOKEN
    # Another variable's refusal does not show them either.
    monkeypatch.setenv("PORT", "x")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "hunter2" not in str(refused.value) and TOKEN not in str(refused.value)


@pytest.mark.parametrize("process", ["workers", "bot"])
@pytest.mark.parametrize(("name", "value"), [("CANARY_WORKERS", "abc"), ("PORT", "-1")])
def test_a_process_refuses_to_start_on_a_bad_value(process: str, name: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _names()}
    env.update({name: value, "SLACK_BOT_TOKEN": TOKEN, "REDIS_URL": "redis://127.0.0.1:1/0"})
    done = subprocess.run(
        [sys.executable, "-m", process],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"{name} must be " in done.stderr and repr(value) in done.stderr
    assert "Traceback" not in done.stderr  # one clear line, not a stack
    assert TOKEN not in done.stderr + done.stdout


def _names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_the_worker_reads_its_settings_once_and_passes_them_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`python -m workers` reads the environment once, before its imports (the metrics
    directory depends on it); its supervisor, its runtime and its catalogue use that reading."""
    import signal

    import workers.__main__ as worker
    from workers.runtime import context

    settings = Settings(canary_config=tmp_path / "canary.yaml", canary_redis_prefix="once")

    def read_again() -> Settings:
        raise AssertionError("the settings were read again")

    monkeypatch.setattr(worker, "load_settings", read_again)
    monkeypatch.setattr(context, "load_settings", read_again)
    monkeypatch.setattr(context, "_current", None)
    monkeypatch.setattr(worker, "drop_unreadable_jobs", lambda redis, queues: [])
    monkeypatch.setattr(worker, "configure_logging", lambda given: None)  # pytest's stay
    handlers: dict[int, object] = {}
    monkeypatch.setattr(
        signal, "signal", lambda signum, handler: handlers.setdefault(signum, handler)
    )

    class Child:
        """A worker process that is never started (the supervisor's loop is what is tested)."""

        def __init__(self, target: object, args: tuple[Settings, object], daemon: bool) -> None:
            assert args[0] is settings  # each child gets the same reading
            self.pid, self.exitcode = None, None

        def start(self) -> None: ...

        def is_alive(self) -> bool:
            return False

        def join(self, timeout: float) -> None: ...

    class Fork:
        Process = Child

    monkeypatch.setattr(worker.multiprocessing, "get_context", lambda method: Fork())
    swept: list[context.Runtime] = []

    def sweep_once(rt: context.Runtime) -> None:
        swept.append(rt)
        handlers[signal.SIGTERM](signal.SIGTERM, None)  # type: ignore[operator]

    monkeypatch.setattr(worker, "sweep", sweep_once)
    assert worker.main(settings) == 0
    [rt] = swept
    assert rt is context._current and rt.store.prefix == "once"
    assert rt.catalogue_loader.path == tmp_path / "canary.yaml"  # type: ignore[attr-defined]


def _count_readings(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Each reading of the environment (`load_settings()`) from now on, in a list."""
    from workers.runtime import settings as module

    readings: list[Settings] = []

    class Counted(Settings):
        def __init__(self, **values: object) -> None:
            super().__init__(**values)  # type: ignore[arg-type]
            readings.append(self)

    monkeypatch.setattr(module, "Settings", Counted)
    return readings


def test_the_bot_reads_its_settings_once_and_passes_them_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`python -m bot` reads the environment once: its app, its runtime (readiness, the CI door,
    the handlers) and its catalogue use that reading."""
    import bot.__main__ as bot_main
    from workers.runtime import context

    monkeypatch.setenv("SLACK_SIGNING_SECRET", "settings-test-signing-secret")
    monkeypatch.setenv("CANARY_CONFIG", str(tmp_path / "canary.yaml"))  # none: logged, no stop
    monkeypatch.setenv("CANARY_REDIS_PREFIX", "once")
    monkeypatch.setattr(context, "_current", None)
    monkeypatch.setattr(bot_main, "configure_logging", lambda given: None)  # pytest's stay
    served: list[object] = []

    class Server:
        """The HTTP server, answering nothing: main's start and stop are what is tested."""

        effective_port = 0

        def run(self) -> None:
            served.append(self)

    def http_server(app: object, port: int, ci: object, metrics: object = None) -> Server:
        return Server()

    given: list[Settings] = []

    class App:
        """The Slack app (Bolt's would ask Slack for auth.test): the settings it is given."""

        client = None

        def __init__(self, *, settings: Settings) -> None:
            given.append(settings)

        def close(self) -> None: ...

    monkeypatch.setattr(bot_main, "create_app", App)
    monkeypatch.setattr(bot_main, "_http_server", http_server)
    readings = _count_readings(monkeypatch)
    bot_main.main()
    assert len(served) == 1
    assert len(readings) == 1, f"the settings were read {len(readings)} times"
    assert [id(s) for s in given] == [id(s) for s in readings]  # the app got the one reading
    rt = context._current
    assert rt is not None and rt.store.prefix == "once"
    assert rt.catalogue_loader.path == tmp_path / "canary.yaml"  # type: ignore[attr-defined]


def test_the_notify_worker_builds_its_notifier_from_the_supervisors_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notify worker process gets the supervisor's settings and builds its notifier from
    them before its first job; the job (workers.runtime.jobs) finds it built."""
    import workers.__main__ as worker
    from workers.runtime import notifiers
    from workers.slack.notifier import SlackNotifier

    settings = Settings(slack_bot_token=TOKEN, slack_api_url="http://127.0.0.1:1/api")
    monkeypatch.setattr(notifiers, "_current", None)
    monkeypatch.setattr(worker, "_die_with_parent", lambda: None)  # not pytest's process
    monkeypatch.setattr(worker, "configure_logging", lambda given: None)
    used: list[notifiers.Notifier] = []

    class Worker:
        """An RQ worker whose one job asks for the notifier, as the delivery jobs do."""

        def __init__(self, queues: list[str], connection: object, serializer: object) -> None:
            assert queues == ["once-notify"]

        def work(self, logging_level: str) -> None:
            used.append(notifiers.get_notifier())

    monkeypatch.setattr(worker, "SimpleWorker", Worker)
    readings = _count_readings(monkeypatch)
    worker._work(settings, ["once-notify"])
    assert readings == [], "the settings were read again"
    [notifier] = used
    assert isinstance(notifier, SlackNotifier)
    assert notifier.client.base_url == "http://127.0.0.1:1/api/"
