"""Start and stop the local stand-ins and the product's own processes (sandbox and e2e tests)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_for_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Return once `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer after {timeout}s")


@dataclass
class Process:
    """A child process in its own session, so it and its children stop together."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self._log = log
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group (SIGKILL: a crash, no clean-up)."""
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None:
            return
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait(timeout=timeout)
        finally:
            # also reap anything the group left behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self._log is not None:
                self._log.close()  # type: ignore[attr-defined]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: children outlive a killed parent
        return None


# Looked up here, not in the child: between fork and exec the child should do as little as can be.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # The child gets SIGTERM when the process that started it dies, even by SIGKILL, so a killed
    # demo or test run leaves no moto, Redis or workers behind.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without anything that could reach real AWS or Slack."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SLACK_", "CANARY_", "REDIS_URL", "MOTO_"))
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


#: Seconds a stopped task stays registered in Cloud Map in the sandbox (tens of seconds on AWS).
SANDBOX_DRAIN_SECONDS = 3.0
#: Seconds a minute of ECS's step bake lasts in the sandbox: the catalogue's 3 s bake runs as
#: ECS's 1 minute (whole minutes only), over before the bot has judged the step.
SANDBOX_ECS_BAKE_MINUTE = 1.0


def start_moto(
    log_dir: Path, *, running_tasks: int = 2, drain_seconds: float = SANDBOX_DRAIN_SECONDS
) -> tuple[Process, str]:
    """A moto_server made strict (sandbox.strict_moto) on a free loopback port; returns it and
    its endpoint URL. A task's Cloud Map instance goes `drain_seconds` after it is stopped."""
    port = free_port()
    env = base_env(
        {
            "MOTO_ECS_SERVICE_RUNNING": str(running_tasks),
            "STRICT_MOTO_DRAIN_SECONDS": str(drain_seconds),
            # ECS bakes whole minutes; the catalogue's are seconds here (sandbox.ecs_moto).
            "STRICT_MOTO_ECS_BAKE_MINUTE": str(SANDBOX_ECS_BAKE_MINUTE),
        }
    )
    moto = Process(
        "moto",
        [sys.executable, "-m", "sandbox.strict_moto", "-H", "127.0.0.1", "-p", str(port)],
        env,
        log_dir / "moto.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/moto-api/", proc=moto.proc)
    return moto, url


def start_redis(log_dir: Path) -> tuple[Process | None, str]:
    """A redis-server on a free port if one is installed, else fakeredis's TCP server."""
    port = free_port()
    server = shutil.which("redis-server")
    if server:
        args = [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(log_dir),
        ]
    else:
        args = [sys.executable, "-m", "sandbox.fake_redis_server", "--port", str(port)]
    redis = Process("redis", args, base_env(), log_dir / "redis.log").start()
    wait_for_port(port, proc=redis.proc)
    return redis, f"redis://127.0.0.1:{port}/0"


def start_workers(env: Mapping[str, str], log_dir: Path, name: str = "workers") -> Process:
    """`python -m workers` with `env` on top of the base environment."""
    return Process(
        name, [sys.executable, "-m", "workers"], base_env(env), log_dir / f"{name}.log"
    ).start()


def start_bot(env: Mapping[str, str], log_dir: Path, name: str = "bot") -> tuple[Process, str]:
    """`python -m bot` over HTTP on a free port; returns it and its base URL."""
    port = free_port()
    bot = Process(
        name,
        [sys.executable, "-m", "bot"],
        base_env({**env, "PORT": str(port)}),
        log_dir / f"{name}.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthz", proc=bot.proc)
    return bot, url
