"""Publishing the App Home tab (views.publish): to a person opening it, and again to the people
who opened it recently whenever a deployment changes state.

Who opened it is a Redis sorted set (user → when), bounded in age and size, so a refresh costs at
most `MAX_VIEWERS` calls. A refresh is a job of its own on the notify queue, never part of a
deployment's delivery: a Slack failure publishing the home can delay only the home, never the
outbox. Changes close together are coalesced (one job queued at a time, at most one refresh per
`MIN_INTERVAL`), and a rate limit is waited out exactly (Retry-After), a few times at most.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

from redis import Redis
from slack_sdk import WebClient
from slack_sdk.models.views import View

from workers.domain.catalogue import ConfigError
from workers.domain.deployment import Deployment
from workers.engine.store import Store
from workers.runtime.context import Runtime
from workers.runtime.queues import JOB_TTL, RESULT_TTL, queue_names, rq_queue
from workers.slack.card import PASSING
from workers.slack.errors import Kind, SlackFailure, classify
from workers.slack.home import HISTORY_PER_SERVICE, HomeSnapshot, render_home

log = logging.getLogger(__name__)

#: People whose home is kept current: those who opened it in the last VIEWER_AGE seconds, at most
#: MAX_VIEWERS of them (the most recent). Others see a fresh view when they next open it.
VIEWER_AGE = 30 * 60.0
MAX_VIEWERS = 20
#: Least seconds between two refreshes: views.publish is Tier 4 ("100+ per minute",
#: https://docs.slack.dev/reference/methods/views.publish), so at most 12 refreshes × 20 viewers
#: a minute, and far fewer in practice (a deployment changes state a few times a minute at most).
MIN_INTERVAL = 5.0
#: Seconds the "a refresh is queued" marker lives (a lost job is forgotten after that).
PENDING_TTL = 120
#: Times a refresh Slack rate-limited is tried again (each after Slack's Retry-After).
MAX_ATTEMPTS = 5
#: Slack answers that no refresh can get past (the Home tab is off, the token cannot).
_STOP = frozenset({"not_enabled"})
#: A person's Slack id (a viewer): anything else is not stored.
_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
#: Services whose history the home reads (the view holds fewer anyway).
MAX_SERVICES = 100


class Viewers:
    """Who opened the App Home recently (a bounded Redis sorted set: user → when)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}:home:viewers"

    def seen(self, user: str, now: float) -> bool:
        """Record that `user` opened the home at `now`; False for an id that is not a user's."""
        if not _USER.match(user):
            return False
        pipe = self.redis.pipeline()
        pipe.zadd(self.key, {user: now})
        pipe.zremrangebyscore(self.key, "-inf", now - VIEWER_AGE)
        pipe.zremrangebyrank(self.key, 0, -(MAX_VIEWERS + 1))
        pipe.expire(self.key, int(VIEWER_AGE) + 60)
        pipe.execute()
        return True

    def recent(self, now: float) -> list[str]:
        """The viewers to refresh, most recent first."""
        raw = self.redis.zrevrangebyscore(
            self.key, "+inf", now - VIEWER_AGE, start=0, num=MAX_VIEWERS
        )
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    def any(self, now: float) -> bool:
        return bool(self.redis.zcount(self.key, now - VIEWER_AGE, "+inf"))

    def forget(self, user: str) -> None:
        self.redis.zrem(self.key, user)


def snapshot(rt: Runtime) -> HomeSnapshot:
    """What the home shows, read from Redis (and the catalogue file) now."""
    store = rt.store
    running = store.get_many(store.active_ids())
    try:
        catalogue = rt.catalogue()
        channels = {key: entry.channel for key, entry in catalogue.services.items()}
    except ConfigError as exc:  # the file is broken: show what runs, steer nothing from here
        log.warning("App Home without the catalogue: %s", exc)
        channels = {}
    services = sorted(channels or {d.service for d in running})[:MAX_SERVICES]
    # one more id than shown: the newest may still be running (it is shown above instead)
    history = {s: store.history_ids(s, HISTORY_PER_SERVICE + 1) for s in services}
    found = {d.id: d for d in store.get_many([i for ids in history.values() for i in ids])}
    recent: dict[str, list[Deployment]] = {}
    for service, ids in history.items():
        done = [found[i] for i in ids if i in found and not found[i].active]
        recent[service] = done[:HISTORY_PER_SERVICE]
    ids = [d.id for d in running] + [d.id for deps in recent.values() for d in deps]
    links = store.note_of_many(ids, "thread_url") if ids else {}
    return HomeSnapshot(running=running, recent=recent, links=links, channels=channels)


def publish(client: WebClient, user: str, view: View) -> None:
    """views.publish of `view` as `user`'s Home tab (raises Slack's errors)."""
    client.views_publish(user_id=user, view=view)


def opened(rt: Runtime, client: WebClient, user: str, *, notice: str | None = None) -> bool:
    """`user` opened the Home tab (or clicked in it): remember them and publish their view now.

    Returns whether Slack took it; a failure is logged, never raised (the person can reopen)."""
    now = rt.clock()
    if not Viewers(rt.redis, rt.store.prefix).seen(user, now):
        return False
    view = render_home(snapshot(rt), now, notice=notice)
    failure = _publish_sorted(client, user, view)
    if failure is not None:
        log.warning("App Home of %s not published: %s", user, failure.describe())
    return failure is None


# refreshing the viewers' homes -------------------------------------------------------------------
def _pending_key(prefix: str) -> str:
    return f"{prefix}:home:pending"


def _last_key(prefix: str) -> str:
    return f"{prefix}:home:last"


def note_change(store: Store, deployment: Deployment, now: float | None = None) -> bool:
    """Called after a deployment's events are delivered: when its state or step changed since
    the home last heard of it, ask for a refresh. Never raises (the outbox must go on); returns
    whether a refresh was asked for."""
    try:
        now = time.time() if now is None else now
        settle = PASSING.get(deployment.state)  # as the card: skipped unless it lasts
        if settle is not None and now - deployment.state_since < settle:
            return False  # it is about to leave this state: the next delivery tells the next one
        key = f"{deployment.state.value}:{deployment.step_index}"
        if store.notes(deployment.id).get("home_state") == key:
            return False
        store.set_notes(deployment.id, {"home_state": key})
        return request_refresh(store.redis, store.prefix, now)
    except Exception:
        log.exception("deployment %s: App Home refresh not requested", deployment.id)
        return False


def request_refresh(redis: Redis, prefix: str, now: float, *, attempt: int = 0) -> bool:
    """Queue one refresh of the recent viewers' homes, unless one is queued already or nobody
    looked recently; it runs MIN_INTERVAL after the last one at the earliest."""
    if not Viewers(redis, prefix).any(now):
        return False
    if not redis.set(_pending_key(prefix), "1", nx=True, ex=PENDING_TTL):
        return False
    last = float(redis.get(_last_key(prefix)) or 0)
    _enqueue(redis, prefix, max(0.0, last + MIN_INTERVAL - now), attempt)
    return True


def _enqueue(redis: Redis, prefix: str, delay: float, attempt: int) -> None:
    queue = rq_queue(queue_names(prefix)[2], redis)
    func, options = "workers.runtime.jobs.publish_homes", {"result_ttl": RESULT_TTL, "ttl": JOB_TTL}
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), func, attempt, **options)
    else:
        queue.enqueue(func, attempt, **options)


def refresh_homes(rt: Runtime, client: WebClient, *, attempt: int = 0) -> int:
    """Publish the current view to every recent viewer; return how many Slack took.

    A viewer Slack says cannot be shown anything (gone, disabled) is forgotten; a rate limit
    stops this round and plans the next after Slack's Retry-After; the Home tab turned off or a
    token that cannot stops it for good (logged as an error)."""
    redis, prefix = rt.redis, rt.store.prefix
    now = rt.clock()
    redis.delete(_pending_key(prefix))  # a change from now on queues the next refresh
    redis.set(_last_key(prefix), str(now), ex=PENDING_TTL)
    viewers = Viewers(redis, prefix)
    users = viewers.recent(now)
    if not users:
        return 0
    view = render_home(snapshot(rt), now)
    published = 0
    for user in users:
        failure = _publish_sorted(client, user, view)
        if failure is None:
            published += 1
            continue
        if failure.kind is Kind.RETRY:
            if attempt + 1 < MAX_ATTEMPTS:
                log.warning("App Home refresh: %s; again later", failure.describe())
                redis.set(_pending_key(prefix), "1", ex=PENDING_TTL)
                _enqueue(redis, prefix, failure.retry_after or MIN_INTERVAL, attempt + 1)
            else:
                log.error("App Home refresh given up: %s", failure.describe())
            return published
        if failure.code in _STOP or failure.kind in (Kind.NO_ACCESS, Kind.CONTENT):
            log.error("App Home not refreshed: %s", failure.describe())
            return published
        if failure.kind is Kind.UNREACHABLE:
            viewers.forget(user)
        log.warning("App Home of %s not refreshed: %s", user, failure.describe())
    return published


def _publish_sorted(client: WebClient, user: str, view: View) -> SlackFailure | None:
    """Publish; None when Slack took it, else the failure sorted (workers.slack.errors)."""
    try:
        publish(client, user, view)
    except Exception as exc:
        failure = classify(exc)
        if failure is None:  # a bug of ours: logged with its trace, the next viewer goes on
            log.exception("App Home of %s not published", user)
            return SlackFailure(Kind.UNKNOWN, type(exc).__name__)
        return failure
    return None
