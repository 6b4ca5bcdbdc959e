"""`python -m bot.cli`: start, follow and abort a canary from a CI pipeline (docs/CI.md).

    python -m bot.cli deploy <service> <image> [--commit SHA] [--url URL] [--wait]
    python -m bot.cli status <id>
    python -m bot.cli abort <id>

It talks to the web process's /api/deployments with a pipeline's bearer token (CANARY_API_URL and
CANARY_API_TOKEN, or --api-url and --token). Exit status: 0 done (with --wait: promoted), 1
rolled back or failed, 2 refused (an HTTP 4xx: bad input, token or rights, a busy service), 3
the outcome could not be learned (the API unreachable or failing, or --timeout passed).
It imports nothing but the standard library (urllib speaks HTTP), so a pipeline can run it from a
checkout of this repository without installing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

PROMOTED, REFUSED, UNKNOWN = 0, 2, 3
FAILED = 1
#: Seconds between two looks at a deployment while waiting (--interval).
POLL_INTERVAL = 5.0
#: Failed looks in a row (the API unreachable or answering 5xx) before giving up.
MAX_POLL_FAILURES = 12
#: Seconds one HTTP request may take.
REQUEST_TIMEOUT = 30.0
#: Exit status of each way a deployment ends.
EXIT_OF_OUTCOME = {"promoted": PROMOTED, "rolled_back": FAILED, "failed": FAILED}


@dataclass(frozen=True)
class Response:
    """An answer of the API: its status and JSON body (`{}` when it sent none)."""

    status: int
    body: dict[str, Any]


class Unreachable(Exception):
    """The API could not be asked (connection refused, timeout, not JSON)."""


@dataclass(frozen=True)
class Client:
    """The API at `base_url` with one pipeline's token."""

    base_url: str
    token: str
    timeout: float = REQUEST_TIMEOUT

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url.rstrip("/") + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return Response(answer.status, _json(answer.read()))
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, _json(exc.read()))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"{self.base_url}: {reason}") from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"error": raw[:200].decode(errors="replace")}
    return data if isinstance(data, dict) else {}


# what is printed -------------------------------------------------------------------------------
def describe(view: dict[str, Any]) -> str:
    """One line of where a deployment stands: "Baking 10 % · step 1 of 4"."""
    parts = [str(view.get("status") or view.get("state"))]
    if view.get("step"):
        parts.append(f"step {view['step']} of {view.get('steps')}")
    if view.get("waiting_for_approval"):
        parts.append(f"approve in Slack: {view.get('thread_url') or 'the thread'}")
    if view.get("outcome") and view.get("reason"):
        parts.append(str(view["reason"]))
    return " · ".join(parts)


def stage(view: dict[str, Any]) -> tuple[Any, ...]:
    """What, when it changes, is a new stage worth a line."""
    return (view.get("state"), view.get("step"), view.get("weight"))


@dataclass
class Printer:
    """Lines on `out` with the time, as a CI log shows them."""

    out: TextIO
    clock: Callable[[], float] = time.time

    def __call__(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime(self.clock()))
        print(f"[{stamp}] {text}", file=self.out, flush=True)


# the commands ----------------------------------------------------------------------------------
def refused(response: Response, say: Printer) -> int:
    """Say why the API refused; the exit status (2 for a 4xx, 3 for anything else)."""
    message = response.body.get("error") or "no reason given"
    say(f"refused (HTTP {response.status}): {message}")
    return REFUSED if 400 <= response.status < 500 else UNKNOWN


def deploy(client: Client, args: argparse.Namespace, say: Printer) -> int:
    body: dict[str, Any] = {"service": args.service, "image": args.image}
    for key in ("commit", "url", "steps", "bake", "gates"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    response = client.call("POST", "/api/deployments", body)
    if response.status != 201:
        return refused(response, say)
    view = response.body
    say(f"deployment {view['id']} of {view['service']} started: {view['image']}")
    if args.id_file:  # for a later step: `abort "$(cat id)"` when the job is cancelled
        with open(args.id_file, "w") as out:
            out.write(view["id"] + "\n")
    if not args.wait:
        say(describe(view))
        return PROMOTED
    return wait(client, view, say, interval=args.interval, timeout=args.timeout)


def wait(
    client: Client,
    view: dict[str, Any],
    say: Printer,
    *,
    interval: float = POLL_INTERVAL,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Follow the deployment until it ends, saying each new stage; its exit status."""
    dep_id = view["id"]
    deadline = clock() + timeout if timeout else None
    last: tuple[Any, ...] | None = None
    verdict: str | None = None
    failures = 0
    thread_said = False
    while True:
        if stage(view) != last:
            say(describe(view))
            last = stage(view)
        # A step's verdict once it says something (pass, fail, not enough data), not each
        # check's running figures while baking.
        judged = view.get("verdict") or {}
        summary = judged.get("summary")
        if summary and judged.get("outcome") != "baking" and summary != verdict:
            say(f"  verdict: {summary}")
            verdict = summary
        if view.get("thread_url") and not thread_said:
            say(f"  thread: {view['thread_url']}")
            thread_said = True
        if view.get("outcome"):
            outcome = view["outcome"]
            say(f"{outcome.replace('_', ' ')}: deployment {dep_id} of {view.get('service')}")
            return EXIT_OF_OUTCOME.get(outcome, FAILED)
        if deadline is not None and clock() > deadline:
            say(f"gave up waiting after {timeout:g} s; deployment {dep_id} goes on")
            return UNKNOWN
        sleep(interval)
        try:
            response = client.call("GET", f"/api/deployments/{dep_id}")
        except Unreachable as exc:
            response = Response(0, {"error": str(exc)})
        if response.status == 200:
            view, failures = response.body, 0
            continue
        if 400 <= response.status < 500:
            return refused(response, say)
        failures += 1
        if failures >= MAX_POLL_FAILURES:
            say(f"cannot learn how deployment {dep_id} goes: {response.body.get('error')}")
            return UNKNOWN


def status(client: Client, args: argparse.Namespace, say: Printer) -> int:
    response = client.call("GET", f"/api/deployments/{args.id}")
    if response.status != 200:
        return refused(response, say)
    view = response.body
    say(f"deployment {view['id']} of {view['service']} ({view['image']}): {describe(view)}")
    summary = (view.get("verdict") or {}).get("summary")
    if summary:
        say(f"  verdict: {summary}")
    if view.get("thread_url"):
        say(f"  thread: {view['thread_url']}")
    return PROMOTED


def abort(client: Client, args: argparse.Namespace, say: Printer) -> int:
    response = client.call("POST", f"/api/deployments/{args.id}/abort")
    if response.status != 202:
        return refused(response, say)
    say(f"deployment {args.id} is rolling back")
    return PROMOTED


# the command line ------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m bot.cli",
        description="Start, follow and abort canary deployments from a CI pipeline.",
        epilog="Exit status: 0 done (promoted with --wait), 1 rolled back or failed, "
        "2 refused, 3 outcome unknown.",
    )
    top.add_argument("--api-url", help="the bot's base URL (default: $CANARY_API_URL)")
    top.add_argument("--token", help="the pipeline's token (default: $CANARY_API_TOKEN)")
    commands = top.add_subparsers(dest="command", required=True)
    dep = commands.add_parser("deploy", help="start a canary of an image")
    dep.add_argument("service")
    dep.add_argument("image")
    dep.add_argument("--commit", help="the git commit the image was built from")
    dep.add_argument("--url", help="a link to the commit or the build, shown on the card")
    dep.add_argument("--steps", help="canary weights, e.g. 10,25,50,100 (only more caution)")
    dep.add_argument("--bake", help="bake at each step, e.g. 10m (only longer)")
    dep.add_argument("--gates", choices=("manual", "final", "auto"), help="only stricter")
    dep.add_argument("--wait", action="store_true", help="follow it until it ends")
    dep.add_argument("--id-file", help="write the deployment's id to this file")
    dep.add_argument(
        "--interval", type=float, default=POLL_INTERVAL, help="seconds between looks (--wait)"
    )
    dep.add_argument("--timeout", type=float, help="stop waiting after this many seconds")
    for name, text in (("status", "where a deployment stands"), ("abort", "roll one back")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("id", help="the deployment's id (8 characters)")
    return top


COMMANDS = {"deploy": deploy, "status": status, "abort": abort}


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    say = Printer(out)
    # The CLI's own environment (docs/CI.md), not the processes' settings: it runs in a pipeline.
    base_url = args.api_url or os.environ.get("CANARY_API_URL", "")
    token = args.token or os.environ.get("CANARY_API_TOKEN", "")
    if not base_url or not token:
        say("set CANARY_API_URL and CANARY_API_TOKEN (or pass --api-url and --token)")
        return REFUSED
    where = urlsplit(base_url)
    if where.scheme not in ("http", "https") or not where.hostname:
        say(f"CANARY_API_URL must be an http:// or https:// URL, not {base_url!r}")
        return REFUSED
    if where.scheme == "http" and where.hostname not in ("localhost", "127.0.0.1", "::1"):
        say("warning: the token goes over plain http; use https outside a private network")
    try:
        return COMMANDS[args.command](Client(base_url, token), args, say)
    except Unreachable as exc:
        say(f"cannot reach the API: {exc}")
        return UNKNOWN
    except KeyboardInterrupt:
        say("stopped waiting; the deployment goes on (`python -m bot.cli abort <id>` stops it)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
