"""The door for CI: `/api/deployments` on the web process (docs/CI.md).

    POST /api/deployments               start a canary: 201 with its id and Location
    GET  /api/deployments/<id>          where it stands: state, step, weight, verdict, thread
    POST /api/deployments/<id>/abort    roll it back: 202

A bearer token names the pipeline (bot.pipeline_tokens); the catalogue as it is now says which
services that pipeline may touch. The deployment then runs exactly as one typed in Slack
(workers.api.start_deployment, its card in the service's channel, gates approved by people), with
the pipeline as its requester. Answers are JSON; nothing is created unless the answer is 201.
Three routes are hand-routed here rather than through a web framework beside Bolt's adapter.

Here: the WSGI surface, the routing, the token's check against the catalogue and the three
routes. What a request says and what an answer holds are pure records in bot.ci_records.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.ci_records import ApiRequest, Reply, deployment_view, error, parse_deploy_request
from bot.pipeline_tokens import SecretSource, bearer, pipeline_for
from bot.refusal_log import RefusalLog
from workers import api
from workers.domain.catalogue import Catalogue, ConfigError
from workers.domain.deployment import Deployment
from workers.domain.outcomes import Answer, Refusal
from workers.domain.pipelines import Origin, as_actor
from workers.runtime.context import Runtime
from workers.runtime.settings import named_secret
from workers.slack.membership import channel_membership
from workers.slack.notifier import thread_url

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

COLLECTION = "/api/deployments"
#: A request body larger than this is refused (413): a deploy request is a few hundred bytes.
MAX_API_BODY = 16 * 1024
#: A deployment id (design.md "Names").
_ID = r"[0-9a-z]{8}"
_ONE = re.compile(rf"{COLLECTION}/({_ID})")
_ABORT = re.compile(rf"{COLLECTION}/({_ID})/abort")
#: What the engine's refusals of an abort mean to a pipeline.
_ABORT_REFUSALS = {
    Refusal.OVER: "it is already over",
    Refusal.NOT_ROLLBACKABLE: "it is already rolling back or removing the old version",
    Refusal.NOT_ABORTED: "it moved meanwhile to where it cannot be rolled back",
}


#: RFC 6750 §3: a 401 names the scheme, and why the token was not taken.
_CHALLENGE = 'Bearer realm="canary-bot"'
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class CiApi:
    """The WSGI app serving /api/; `runtime` and `client` as the Slack handlers have them."""

    runtime: Callable[[], Runtime]
    #: Asks Slack whether the bot can post in the service's channel before anything is created;
    #: None skips the question (as a slash command without a client does).
    client: WebClient | None = None
    secrets: SecretSource = named_secret
    _refusals: RefusalLog = field(
        default_factory=lambda: RefusalLog(
            log, "api: refused a request with a missing or unknown token%s"
        )
    )

    # WSGI ------------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            reply = self.handle(_read(environ))
        except Exception:  # Redis unreachable...: a JSON answer, the details in the log only
            log.exception("api: %s %s failed", environ.get("REQUEST_METHOD"), _path(environ))
            reply = error(500, "the request failed on the bot's side; its log says why")
        body = json.dumps(reply.body).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *reply.headers,
        ]
        start_response(f"{reply.status} {_REASONS.get(reply.status, '')}".strip(), headers)
        return [body]

    # routing ---------------------------------------------------------------------------------
    def handle(self, request: ApiRequest) -> Reply:
        """The answer to `request` (a path under bot.server.API_PREFIX)."""
        path, method = request.path.rstrip("/") or "/", request.method
        if path == COLLECTION:
            route, allowed = "create", "POST"
        elif match := _ABORT.fullmatch(path):
            route, allowed = "abort", "POST"
        elif match := _ONE.fullmatch(path):
            route, allowed = "get", "GET"
        else:
            return error(404, f"no such endpoint: {path[:200]}")
        if method not in allowed.split(", "):
            return Reply(405, {"error": f"{path} takes {allowed}"}, (("Allow", allowed),))
        try:
            catalogue = self.runtime().catalogue()
        except ConfigError as exc:
            log.error("api: no valid catalogue: %s", exc)
            return error(503, "the catalogue is not valid: nothing can be deployed now")
        pipeline = self._authenticate(request, catalogue)
        if isinstance(pipeline, Reply):
            return pipeline
        if request.too_large:
            return error(413, f"the body is larger than {MAX_API_BODY} bytes")
        if route == "create":
            return self.create(pipeline, catalogue, request.body)
        assert match is not None  # the routes but "create" matched an id
        dep_id = match.group(1)
        return (
            self.abort(pipeline, catalogue, dep_id)
            if route == "abort"
            else self.get(pipeline, catalogue, dep_id)
        )

    def _authenticate(self, request: ApiRequest, catalogue: Catalogue) -> str | Reply:
        """The pipeline the request's token belongs to, or the 401 to answer."""
        given = bearer(request.authorization)
        name = pipeline_for(given.token, catalogue.pipelines, self.secrets) if given.token else None
        if name is not None:
            return name
        self._refusals.note()
        challenge = _CHALLENGE if given.token is None else f'{_CHALLENGE}, error="invalid_token"'
        message = given.problem or "the token is not any pipeline's"
        return Reply(401, {"error": message}, (("WWW-Authenticate", challenge),))

    # the three routes ------------------------------------------------------------------------
    def create(self, pipeline: str, catalogue: Catalogue, body: bytes) -> Reply:
        try:
            request = parse_deploy_request(body)
        except ValueError as exc:
            return error(400, str(exc))
        service = request.service
        forbidden = _not_its_service(pipeline, catalogue, service, "deploy")
        if forbidden:
            return forbidden
        entry = catalogue.service(service)
        if not entry.channel:  # refused when the catalogue is read; checked again all the same
            return error(400, f"{service} has no channel in the catalogue to post its card in")
        rt = self.runtime()
        if self.client is not None:
            # As for a slash command: a rollout nobody sees is not started (bot.handlers.deploy).
            membership = channel_membership(self.client, entry.channel)
            if membership.member is False or membership.archived:
                why = "it is archived" if membership.archived else "invite @canary there"
                return error(409, f"the bot cannot post in {service}'s channel: {why}")
            if membership.member is None:  # Slack did not say (a scope, a rate limit): go on
                log.warning("conversations.info %s: %s", entry.channel, membership.error)
        origin = Origin(pipeline=pipeline, commit=request.commit, url=request.url)
        answer = api.start_deployment(
            service,
            request.image,
            requester=as_actor(pipeline),
            channel=entry.channel,
            overrides=request.overrides(),
            origin=origin,
            rt=rt,
        )
        if answer.ok and answer.deployment is not None:
            dep = answer.deployment
            log.info(
                "api: pipeline %s started deployment %s of %s (%s)",
                pipeline,
                dep.id,
                service,
                request.image,
            )
            location = f"{COLLECTION}/{dep.id}"
            view = deployment_view(dep, thread_url(rt.store, dep.id))
            return Reply(201, view, (("Location", location),))
        return _start_refused(rt, service, answer)

    def get(self, pipeline: str, catalogue: Catalogue, dep_id: str) -> Reply:
        rt = self.runtime()
        dep = _its_deployment(rt, pipeline, catalogue, dep_id, "see deployments of")
        if isinstance(dep, Reply):
            return dep
        return Reply(200, deployment_view(dep, thread_url(rt.store, dep.id)))

    def abort(self, pipeline: str, catalogue: Catalogue, dep_id: str) -> Reply:
        rt = self.runtime()
        dep = _its_deployment(rt, pipeline, catalogue, dep_id, "abort")
        if isinstance(dep, Reply):
            return dep
        answer = api.abort(dep_id, actor=as_actor(pipeline), rt=rt)
        if not answer.ok:
            if answer.refusal == Refusal.UNKNOWN:
                return error(404, f"no deployment {dep_id}")
            why = _ABORT_REFUSALS.get(answer.refusal or Refusal.OVER, "it cannot be aborted now")
            state = answer.deployment.state.value if answer.deployment else None
            return error(409, f"deployment {dep_id} was not aborted: {why}", state=state)
        log.info("api: pipeline %s aborted deployment %s of %s", pipeline, dep_id, dep.service)
        now = answer.deployment or dep
        return Reply(202, deployment_view(now, thread_url(rt.store, dep_id)))


def _its_deployment(
    rt: Runtime, pipeline: str, catalogue: Catalogue, dep_id: str, verb: str
) -> Deployment | Reply:
    """Deployment `dep_id`, or the 404 (none such) or 403 (not `pipeline`'s service) to answer."""
    dep = api.get_deployment(dep_id, rt=rt)
    if dep is None:
        return error(404, f"no deployment {dep_id}")
    return _not_its_service(pipeline, catalogue, dep.service, verb) or dep


def _not_its_service(pipeline: str, catalogue: Catalogue, service: str, verb: str) -> Reply | None:
    """The 403 when the catalogue (as it is now) does not give `service` to `pipeline`."""
    entry = catalogue.pipelines.get(pipeline)
    allowed = entry.services if entry else []
    if service in allowed:
        return None
    return error(
        403,
        f"pipeline {pipeline} may not {verb} {service}; "
        f"it may: {', '.join(allowed) or 'nothing'} (the catalogue's pipelines.{pipeline})",
    )


def _start_refused(rt: Runtime, service: str, answer: Answer) -> Reply:
    if answer.refusal == Refusal.BUSY:
        holder = answer.dep_id
        return error(
            409,
            f"{service} is busy: deployment {holder} is running; one deployment per service at "
            "a time",
            running=holder,
            thread_url=thread_url(rt.store, holder) if holder else None,
        )
    return error(400, answer.detail or "refused")


def _path(environ: WSGIEnvironment) -> str:
    return str(environ.get("PATH_INFO", ""))[:200]


def _read(environ: WSGIEnvironment) -> ApiRequest:
    """The request's method, path, Authorization and body (unread when too large)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    too_large = length > MAX_API_BODY
    body = b""
    if length and not too_large:
        body = environ["wsgi.input"].read(length)
    return ApiRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("PATH_INFO", ""),
        authorization=environ.get("HTTP_AUTHORIZATION"),
        body=body,
        too_large=too_large,
    )
