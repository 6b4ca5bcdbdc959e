"""Listeners: acknowledge at once, then hand over to the engine's API; refusals are ephemeral."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest, BoltResponse, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.commands import HISTORY_DEFAULT, SLASH, Command, UsageError, help_text, parse
from bot.permissions import Action, Actor, GroupsResolver, Workspace, at_home, may
from bot.ratelimit import RefusalLimiter, RefusalPolicy, Verdict
from workers import api
from workers.domain.catalogue import ConfigError
from workers.domain.deployment import Deployment
from workers.domain.outcomes import Answer, Refusal, refused
from workers.domain.refusals import Denial, Forbidden
from workers.runtime import logs
from workers.runtime.context import Runtime
from workers.slack import answers as views
from workers.slack import home_publisher
from workers.slack.buttons import ABORT, APPROVE, OPEN_THREAD, ROLLBACK, ButtonValue
from workers.slack.chart_upload import chart_coming
from workers.slack.membership import cannot_post, channel_membership
from workers.slack.notifier import thread_url, thread_urls

log = logging.getLogger(__name__)

RuntimeSource = Callable[[], Runtime]
#: Runs a listener's work after its ack (a small thread pool in the app; inline when None).
Later = Callable[[Callable[[], None]], object]
_ACTIONS: dict[str, Action] = {APPROVE: "approve", ABORT: "abort", ROLLBACK: "rollback"}


class RefusedText(str):
    """An answer that refuses what was asked: counted by the per-user refusal limit."""


class Handlers:
    """The app's listeners over one Runtime source and one group directory."""

    def __init__(
        self, runtime: RuntimeSource, groups: GroupsResolver, later: Later | None = None
    ) -> None:
        self.runtime = runtime
        self.groups = groups
        self.later: Later = later or (lambda work: work())

    def register(self, app: App) -> None:
        app.middleware(skip_slack_retries)
        app.command(SLASH)(self.on_command)
        for action_id in (APPROVE, ABORT, ROLLBACK):
            app.action(action_id)(self.on_button)
        app.action(OPEN_THREAD)(lambda ack: ack())  # a link button: Slack opens the URL itself
        app.event("app_home_opened")(self.on_home_opened)

    # /canary ---------------------------------------------------------------------------------
    def on_command(
        self,
        ack: Ack,
        command: dict[str, Any],
        respond: Respond,
        context: BoltContext,
        client: WebClient,
    ) -> None:
        try:
            cmd = parse(command.get("text", ""))
        except UsageError as exc:
            ack(text=str(exc), response_type="ephemeral")
            return
        if cmd.name == "help":
            ack(text=help_text(), response_type="ephemeral")
            return
        ack()  # Slack's 3 s clock stops here; everything below may take its time.
        actor, home = Actor.from_command(command), Workspace.of(context.authorize_result)
        self.later(lambda: self._answer(cmd, actor, home, respond, client))

    def _answer(
        self,
        cmd: Command,
        actor: Actor,
        home: Workspace,
        respond: Respond,
        client: WebClient | None = None,
    ) -> None:
        limiter = self._limiter()
        if limiter.quiet(actor.user):
            return  # past the refusal limit: nothing is processed until the window ends
        try:
            text: str | None = self.run(
                cmd, actor, home, client=client, response_url=respond.response_url
            )
        except ConfigError as exc:
            text = RefusedText(str(exc))
        except Exception:
            log.exception("/canary %s failed", cmd.name)
            text = "Something went wrong on my side; nothing was changed. Details are in the log."
        if isinstance(text, RefusedText):
            text = self._limited(limiter, actor.user, text)
        if not text:
            return
        answer = respond(text=text, response_type="ephemeral", replace_original=False)
        if answer.status_code != 200:  # Slack refused it (too long, bad blocks): nothing was shown
            log.error(
                "Slack refused the answer to /canary %s: HTTP %s %s",
                cmd.name,
                answer.status_code,
                (answer.body or "")[:200],
            )

    def run(
        self,
        cmd: Command,
        actor: Actor,
        home: Workspace,
        *,
        client: WebClient | None = None,
        response_url: str | None = None,
    ) -> str:
        """Carry out a parsed command for `actor` (the app lives in `home`); return the answer.

        `client` asks Slack whether the bot can post where a deploy was typed; `response_url`
        is where a `check`'s table is posted by the worker."""
        rt = self.runtime()
        if cmd.name == "deploy":
            return self.deploy(rt, cmd, actor, home, client)
        if cmd.name == "check":
            return self.check(rt, cmd.args[0], actor, response_url)
        if cmd.name == "abort":
            return self.abort(rt, cmd.args[0], actor, home)
        now = rt.clock()
        if cmd.name == "status":
            service = cmd.arg(0)
            if service is None:
                running = api.active_deployments(rt=rt)
                return views.status(running, self._thread_links(rt, running), now)
            rt.catalogue().service(service)
            running_one = api.active_deployment(service, rt=rt)
            last = next(iter(api.history(service, 1, rt=rt)), None)
            link = self._thread_links(rt, [d for d in (running_one, last) if d is not None])
            text = views.service_status(service, running_one, last, link, now)
            shown = running_one or last
            if shown is not None and api.request_chart(shown, rt=rt):  # drawn by a worker
                text += "\n" + chart_coming()
            return text
        if cmd.name == "history":
            service = cmd.args[0]
            rt.catalogue().service(service)
            limit = int(cmd.arg(1) or HISTORY_DEFAULT)
            deps = api.history(service, limit, rt=rt)
            return views.history(service, deps, self._thread_links(rt, deps), now)
        if cmd.name == "services":
            catalogue = rt.catalogue()
            running = {d.service: d for d in api.active_deployments(rt=rt)}
            newest = api.last_deployments(list(catalogue.services), rt=rt)
            last_of = {k: newest.get(k) for k in catalogue.services}
            return views.services(catalogue, running, last_of)
        return help_text()

    def deploy(
        self, rt: Runtime, cmd: Command, actor: Actor, home: Workspace, client: WebClient | None
    ) -> str:
        service, image = cmd.args
        user, channel = actor.user, actor.channel or ""
        settings = rt.catalogue().service(service)
        permission = may("deploy", actor, settings, self.groups, home=home)
        if not permission.allowed:
            return RefusedText(permission.reason)
        if client is not None and channel:
            # The card and its thread go to this channel: a bot that is not in it would run a
            # rollout nobody sees, so nothing is created until it is invited.
            membership = channel_membership(client, channel)
            if membership.member is False or membership.archived:
                return RefusedText(cannot_post(membership))
            if membership.member is None:  # Slack did not say (a scope, a rate limit): go on
                log.warning("conversations.info %s: %s", channel, membership.error)
        answer = api.start_deployment(
            service, image, requester=user, channel=channel, overrides=cmd.options, rt=rt
        )
        if answer.ok and answer.deployment is not None:
            return views.starting(answer.deployment)
        if answer.refusal == Refusal.BUSY and answer.dep_id:
            holder_id = answer.dep_id
            _record(rt, holder_id, user, "deploy", answer)
            url = thread_url(rt.store, holder_id)
            return RefusedText(views.busy(service, answer.deployment, holder_id, url))
        return RefusedText(views.refused(answer))

    def check(self, rt: Runtime, service: str, actor: Actor, response_url: str | None) -> str:
        """Ask a worker for the service's read-only checks (the bot never calls AWS); the worker
        posts the table to the command's response_url, seen only by the person who asked."""
        rt.catalogue().service(service)
        if not response_url:
            return "I can't answer this command later here; run `python -m workers doctor`."
        api.request_check(service, response_url=response_url, channel=actor.channel, rt=rt)
        return views.checking(service)

    def abort(self, rt: Runtime, service: str, actor: Actor, home: Workspace) -> str:
        user = actor.user
        rt.catalogue().service(service)
        dep = api.active_deployment(service, rt=rt)
        if dep is None:
            return f"Nothing to abort: no deployment of {service} is running."
        refusal = self._refusal(rt, "abort", actor, home, dep)
        if refusal:
            return refusal
        answer = api.abort(dep.id, actor=user, rt=rt)
        if answer.ok:
            return views.aborting(dep.id)
        _record(rt, dep.id, user, "abort", answer)
        return RefusedText(views.refused(answer))

    # the App Home tab -------------------------------------------------------------------------
    def on_home_opened(
        self, event: dict[str, Any], body: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        """Someone opened the app's Home tab: publish what is deploying (after the ack)."""
        if event.get("tab") != "home":
            return  # the Messages tab: nothing to show there
        actor = Actor(
            user=str(event.get("user") or ""),
            team_id=body.get("team_id") or None,
            enterprise_id=body.get("enterprise_id") or None,
        )
        home = Workspace.of(context.authorize_result)
        self.later(lambda: self._show_home(client, actor, home))

    def _show_home(
        self, client: WebClient, actor: Actor, home: Workspace, notice: str | None = None
    ) -> None:
        # Deployments are shown only to the app's own workspace, as every action is allowed.
        if not at_home(actor, home):
            log.info("App Home not shown to %s: another workspace", actor.user)
            return
        try:
            home_publisher.opened(self.runtime(), client, actor.user, notice=notice)
        except Exception:
            log.exception("App Home of %s not shown", actor.user)

    # buttons ---------------------------------------------------------------------------------
    def on_button(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        client: WebClient,
        context: BoltContext,
    ) -> None:
        ack()
        home = Workspace.of(context.authorize_result)
        self.later(lambda: self._clicked(body, action, client, home))

    def _clicked(
        self, body: dict[str, Any], action: dict[str, Any], client: WebClient, home: Workspace
    ) -> None:
        button = ButtonValue.decode(action.get("value", ""))
        with logs.deployment_context(button.deployment_id if button else None):
            self._handle_click(body, action, client, home)

    def _handle_click(
        self, body: dict[str, Any], action: dict[str, Any], client: WebClient, home: Workspace
    ) -> None:
        actor = Actor.from_click(body)
        user = actor.user
        limiter = self._limiter()
        if limiter.quiet(user):
            return  # past the refusal limit: nothing is processed until the window ends
        done = False
        try:
            message = self.click(action.get("action_id", ""), action.get("value", ""), actor, home)
            done = message is None
            if message:  # whatever a click answers is a refusal: a done click shows in the thread
                message = self._limited(limiter, user, message)
        except Exception:
            log.exception("button %s failed", action.get("action_id"))
            message = "Something went wrong on my side; nothing was changed."
        if from_home(body) and (message or done):
            # A click in the App Home has no channel and no response_url (nothing ephemeral can
            # be shown there): a refusal goes on top of this person's Home tab, published anew;
            # a click that was carried out shows at once there (its buttons gone).
            self._show_home(client, actor, home, notice=message)
        elif message:
            tell(client, body, user, message)

    def click(self, action_id: str, value: object, actor: Actor, home: Workspace) -> str | None:
        """Carry out a button click; return what to tell the clicker (None: the thread shows it)."""
        user = actor.user
        button = ButtonValue.decode(value)
        rt = self.runtime()
        dep = api.get_deployment(button.deployment_id, rt=rt) if button else None
        if dep is None or button is None:
            return "That button belongs to a deployment I no longer know."
        step = button.step
        kind = _ACTIONS.get(action_id, "rollback")
        if not dep.active:
            over = refused(Refusal.OVER, dep)
            _record(rt, dep.id, user, kind, over)
            return RefusedText(views.refused(over))
        refusal = self._refusal(rt, kind, actor, home, dep)
        if refusal:
            return refusal
        hint = ""
        if action_id == APPROVE:
            answer = api.decide_gate(dep.id, step, approve=True, actor=user, rt=rt)
        elif action_id == ABORT:
            answer = api.decide_gate(dep.id, step, approve=False, actor=user, rt=rt)
            if not answer.ok and answer.deployment is not None and answer.deployment.active:
                hint = f" To stop it anyway: `{SLASH} abort {dep.service}`."
        else:
            answer = api.roll_back(dep.id, actor=user, rt=rt)
        if answer.ok:
            return None
        _record(rt, dep.id, user, kind, answer)
        return views.refused(answer) + hint

    # helpers ---------------------------------------------------------------------------------
    def _refusal(
        self, rt: Runtime, kind: Action, actor: Actor, home: Workspace, dep: Deployment
    ) -> str | None:
        """Why `actor` may not act on `dep`, judged by the service's entry in the catalogue as it
        is now (not the copy taken when the deployment started); None when they may."""
        try:
            settings = rt.catalogue().service(dep.service)
        except ConfigError:
            if kind == "approve":
                return self._refuse(
                    rt, dep, actor.user, Denial(Forbidden.NOT_IN_CATALOGUE, dep.service, kind)
                )
            # Stopping stays possible for those who could when it started.
            settings = dep.settings
        permission = may(kind, actor, settings, self.groups, home=home, requester=dep.requester)
        if permission.denial is None:
            return None
        return self._refuse(rt, dep, actor.user, permission.denial)

    @staticmethod
    def _refuse(rt: Runtime, dep: Deployment, user: str, denial: Denial) -> str:
        """Keep the denial in the deployment's log (its code and ids); the words for `user`."""
        api.record_refusal(
            dep.id,
            actor=user,
            action=denial.action,
            refusal=denial.reason,
            ids=denial.ids,
            rt=rt,
        )
        return RefusedText(views.denied(denial))

    def _limiter(self) -> RefusalLimiter:
        rt = self.runtime()
        policy = RefusalPolicy(limit=rt.refusal_limit, window=rt.refusal_window)
        return RefusalLimiter(rt.redis, rt.store.prefix, policy)

    @staticmethod
    def _limited(limiter: RefusalLimiter, user: str, text: str) -> str | None:
        """The refusal `text` as the per-user limit lets it through: itself, "slow down", None."""
        verdict = limiter.refused(user)
        if verdict is Verdict.SLOW_DOWN:
            return views.slow_down(limiter.policy.limit, limiter.policy.window)
        return text if verdict is Verdict.ANSWER else None

    @staticmethod
    def _thread_links(rt: Runtime, deps: list[Deployment]) -> views.ThreadLink:
        """The thread links of `deps`, read at once: one round trip however many there are."""
        return thread_urls(rt.store, [d.id for d in deps]).get


def _record(rt: Runtime, dep_id: str, user: str, action: str, answer: Answer) -> None:
    """Keep a refusal of the engine in the deployment's log (its code: no Slack wording)."""
    api.record_refusal(dep_id, actor=user, action=action, refusal=answer.refusal, rt=rt)


def from_home(body: dict[str, Any]) -> bool:
    """Whether a click came from the app's Home tab (its payload carries a `view` of type home)."""
    view = body.get("view")
    return isinstance(view, dict) and view.get("type") == "home"


def tell(client: WebClient, body: dict[str, Any], user: str, text: str) -> None:
    """Show `text` to `user` only, in the thread the clicked message is in."""
    channel = (body.get("channel") or body.get("container") or {}).get("id") or (
        body.get("container") or {}
    ).get("channel_id")
    message = body.get("message") or {}
    thread_ts = message.get("thread_ts") or message.get("ts")
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except (SlackClientError, OSError):
        # Outside a channel the bot is in, the response_url still reaches the person.
        url = body.get("response_url")
        if url:
            said = Respond(response_url=url)(
                text=text, response_type="ephemeral", replace_original=False
            )
            if said.status_code != 200:
                log.error("Slack refused telling %s: HTTP %s", user, said.status_code)
        else:
            log.warning("could not tell %s: %s", user, text)


def skip_slack_retries(req: BoltRequest, next: Callable[[], None]) -> BoltResponse | None:
    """Acknowledge Slack's retries without acting: the first delivery is being handled."""
    retry = req.headers.get("x-slack-retry-num")
    if retry:
        reason = (req.headers.get("x-slack-retry-reason") or ["?"])[0]
        log.info("ignored Slack retry #%s (%s)", retry[0], reason)
        return BoltResponse(status=200, body="")
    next()
    return None
