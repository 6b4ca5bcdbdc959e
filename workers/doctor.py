"""`python -m workers doctor [service]` and `/canary check`: every read-only check of a service,
as one table -- the stable found, its metric series present, its alarms existing, the bot able to
post in its channel.

The checks only read: `discover` (Describe*/List*), one GetMetricData, DescribeAlarms and Slack's
conversations.info. `render` is pure.
"""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from workers.analysis.templates import describe_query
from workers.aws.cloudwatch import series_present
from workers.aws.errors import AwsStepError
from workers.domain.catalogue import ConfigError, ServiceConfig
from workers.domain.versions import StableRecord
from workers.slack.membership import cannot_post, channel_membership

if TYPE_CHECKING:
    from workers.aws.base import Backend
    from workers.runtime.context import Runtime

log = logging.getLogger(__name__)

#: How far back a metric series must have data for the stable to count as measured.
SERIES_WINDOW = timedelta(minutes=10)


class Status(enum.StrEnum):
    """The result of one check."""

    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    """One row of the table: a check of a service and what it found."""

    service: str
    check: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Report:
    """Every finding of one run of the doctor."""

    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped ones do not count)."""
        return all(f.status != Status.FAIL for f in self.findings)


def render(report: Report) -> str:
    """The findings as a plain-text table, one row a check (the detail column is not padded)."""
    header = ("service", "check", "result", "detail")
    rows = [header, *((f.service, f.check, str(f.status), f.detail) for f in report.findings)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])), row[3]]).rstrip()
        for row in rows
    ]
    verdict = "all checks pass" if report.ok else "some checks FAIL"
    return "\n".join([*lines, "", verdict])


def _aws_failure(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


def check_stable(key: str, backend: Backend) -> tuple[StableRecord | None, Finding]:
    """Discover the stable version through the backend (read-only)."""
    try:
        stable = backend.discover()
    except (AwsStepError, ClientError, BotoCoreError, ValueError) as exc:
        return None, Finding(key, "stable", Status.FAIL, _aws_failure(exc))
    names = ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in backend.describe(stable).items() if v
    )
    image = stable.image
    return stable, Finding(key, "stable", Status.OK, names + (f"; image {image}" if image else ""))


def check_series(
    key: str,
    backend: Backend,
    stable: StableRecord | None,
    cloudwatch: Any,
    *,
    now: datetime,
    period_s: int,
) -> Finding:
    """The stable's request series has data in the last SERIES_WINDOW (one GetMetricData)."""
    if stable is None:
        return Finding(key, "metrics", Status.SKIP, "needs the stable")
    series = backend.stable_series(stable)
    if not series:
        return Finding(
            key, "metrics", Status.SKIP, "no metric tells the versions apart: judged by alarms"
        )
    minutes = int(SERIES_WINDOW.total_seconds() // 60)
    if series_present(cloudwatch, series, start=now - SERIES_WINDOW, end=now, period_s=period_s):
        return Finding(
            key, "metrics", Status.OK, f"the stable's requests in the last {minutes} min"
        )
    return Finding(key, "metrics", Status.FAIL, missing_series(series, minutes))


def missing_series(series: Sequence[dict[str, Any]], minutes: int) -> str:
    """What a person reads when the stable has no series: the exact query that found nothing."""
    return f"no data in the last {minutes} min for {describe_query(tuple(series))}"


def check_alarms(key: str, backend: Backend, names: Sequence[str]) -> Finding:
    """The configured alarms exist (DescribeAlarms)."""
    if not names:
        return Finding(key, "alarms", Status.SKIP, "none configured")
    try:
        firing = backend.alarms_firing(names)
    except (ValueError, ClientError, BotoCoreError) as exc:  # MissingAlarmError is a ValueError
        return Finding(key, "alarms", Status.FAIL, _aws_failure(exc))
    detail = f"{len(names)} exist" + (f"; in ALARM now: {', '.join(firing)}" if firing else "")
    return Finding(key, "alarms", Status.OK, detail)


def check_channel(key: str, slack: WebClient | None, channel: str | None) -> Finding:
    """The bot can post in the channel (conversations.info is_member)."""
    if not channel:
        return Finding(key, "channel", Status.SKIP, "no channel set for the service")
    if slack is None:
        return Finding(key, "channel", Status.SKIP, "SLACK_BOT_TOKEN is not set")
    membership = channel_membership(slack, channel)
    if membership.error and membership.member is None:
        return Finding(
            key, "channel", Status.FAIL, f"Slack answered {membership.error} for {channel}"
        )
    if not membership.can_post:
        return Finding(key, "channel", Status.FAIL, cannot_post(membership, "check again"))
    return Finding(key, "channel", Status.OK, f"the bot is a member of {membership.label}")


def examine(
    services: Iterable[ServiceConfig],
    *,
    backend_for: Callable[[ServiceConfig], Backend],
    cloudwatch: Any,
    slack: WebClient | None,
    now: datetime,
    channel: str | None = None,
) -> Report:
    """Run every check of each service; `channel` overrides the services' own (Slack: the
    channel the question was asked in, when the service names none)."""
    findings: list[Finding] = []
    for settings in services:
        key = settings.key
        backend = backend_for(settings)
        stable, found = check_stable(key, backend)
        findings.append(found)
        findings.append(
            check_series(key, backend, stable, cloudwatch, now=now, period_s=settings.metric_period)
        )
        findings.append(check_alarms(key, backend, settings.alarms))
        findings.append(check_channel(key, slack, settings.channel or channel))
    return Report(tuple(findings))


def slack_client() -> WebClient | None:
    """A Web API client with the bot token, None when SLACK_BOT_TOKEN is unset."""
    from workers.runtime.settings import load_settings

    settings = load_settings()
    if settings.slack_bot_token is None:
        return None
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )


#: Where Slack's response_urls live (https://docs.slack.dev/interactivity/handling-user-interaction
#: "response_url": hooks.slack.com). A job names the URL it posts to, so a job planted in Redis
#: must not make the worker post anywhere else.
SLACK_HOOKS = "https://hooks.slack.com/"


def _is_slack_url(url: str, api_url: str) -> bool:
    """A response_url from Slack: hooks.slack.com, or the host of SLACK_API_URL (a local
    Slack in tests and the sandbox)."""
    parsed, api = urlsplit(url), urlsplit(api_url)
    if url.startswith(SLACK_HOOKS):
        return True
    return bool(parsed.scheme in ("http", "https") and parsed.netloc == api.netloc)


def answer_check(
    rt: Runtime,
    service: str,
    *,
    response_url: str,
    channel: str | None,
    slack: WebClient | None,
) -> bool:
    """`/canary check`: the doctor's table of one service, posted to the person who asked
    (ephemeral, at the command's response_url). True when every check passed."""
    from workers.runtime.settings import load_settings

    if not _is_slack_url(response_url, load_settings().slack_api_url):
        log.error("check of %s: refusing to post to a response_url not of Slack", service)
        return False
    try:
        settings = rt.catalogue().service(service)
    except ConfigError as exc:
        WebhookClient(response_url).send(
            text=str(exc), response_type="ephemeral", replace_original=False
        )
        return False
    report = examine(
        [settings],
        backend_for=rt.backend,
        cloudwatch=rt.clients.cloudwatch,
        slack=slack,
        now=datetime.fromtimestamp(rt.clock(), UTC),
        channel=channel,
    )
    text = f"Checks of *{service}* (read-only):\n```\n{render(report)}\n```"
    answer = WebhookClient(response_url).send(
        text=text, response_type="ephemeral", replace_original=False
    )
    if answer.status_code != 200:
        log.error("check of %s: Slack refused the answer: HTTP %s", service, answer.status_code)
    return report.ok


def main(argv: Sequence[str]) -> int:
    """The doctor's command line: `doctor [service]`; exit 0 when every check passes, else 1."""
    from workers.aws.backends import backend_for
    from workers.aws.clients import make_clients
    from workers.runtime.catalogue_file import CatalogueFile

    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: python -m workers doctor [service]", file=sys.stderr)
        return 2
    try:
        catalogue = CatalogueFile()()
        keys = list(argv) or list(catalogue.services)
        services = [catalogue.service(key) for key in keys]
    except (ConfigError, OSError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return 1
    clients = make_clients()
    report = examine(
        services,
        backend_for=lambda s: backend_for(s, clients),
        cloudwatch=clients.cloudwatch,
        slack=slack_client(),
        now=datetime.now(UTC),
    )
    print(render(report))
    return 0 if report.ok else 1
