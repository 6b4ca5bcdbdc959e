"""`python -m sandbox` (`make demo`): the real bot and workers on local AWS, Redis and Slack."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from sandbox.demo import SERVICES, Demo, summary
from sandbox.interactive import Session
from sandbox.processes import ROOT
from sandbox.world import World

LOG_DIR = ROOT / ".sandbox"


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _fresh_log_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for old in [*path.glob("*.log"), *path.glob("uploads/*")]:
        old.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="type /canary commands and decide each gate yourself (needs a terminal)",
    )
    args = parser.parse_args(argv)
    # Ctrl-C even when started in the background (where SIGINT arrives ignored), SIGTERM and
    # SIGHUP: all unwind through world.stop().
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    out = sys.stdout
    interactive = args.interactive
    if interactive and not sys.stdin.isatty():
        out.write("--interactive needs a terminal (stdin is not a TTY): playing the script.\n")
        interactive = False

    log_dir = _fresh_log_dir(LOG_DIR)
    shown_dir = log_dir.relative_to(ROOT) if log_dir.is_relative_to(ROOT) else log_dir
    out.write(
        "Canary sandbox: python -m bot (HTTP) and python -m workers, against moto (AWS),\n"
        "Redis and a local Slack. Time runs fast: a step bakes 3 s, checks run every second.\n"
    )
    out.write(f"Starting… (child process logs go to {shown_dir}/)\n")
    out.flush()
    began = time.monotonic()
    world = World(log_dir, SERVICES)
    world.slack.save_dir = log_dir / "uploads"  # the charts the bot posts, to open
    ok = False
    try:
        world.start()
        out.write(f"Ready in {time.monotonic() - began:.1f} s: bot at {world.bot_url}.\n")
        if interactive:
            ok = Session(world, sys.stdin, out).run() == 0
        else:
            ok = summary(Demo(world, out).run(), lambda text: out.write(text + "\n"))
    except KeyboardInterrupt:
        out.write("\nInterrupted: stopping everything.\n")
    except Exception as exc:
        out.write(f"\nThe sandbox failed: {type(exc).__name__}: {exc}\n")
    finally:
        world.stop()
    out.write(f"Took {time.monotonic() - began:.0f} s. Logs: {shown_dir}/ ")
    out.write(f"({', '.join(sorted(p.name for p in log_dir.glob('*.log')))}).\n")
    charts = sorted((log_dir / "uploads").glob("*.png"))
    if charts:
        out.write(f"Charts the bot posted in the threads ({len(charts)}): {shown_dir}/uploads/\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
