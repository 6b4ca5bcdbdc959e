"""What the CI door reads and answers (bot.ci_api serves them): pure records, no I/O.

- `DeployRequest`, `parse_deploy_request`: the body of POST /api/deployments, validated, with
  one line saying what is wrong;
- `deployment_view`: what GET (and a created or aborted deployment's answer) says of it;
- `Reply`, `error`: an answer's status, JSON body and headers; `ApiRequest`: what the router
  reads of an HTTP request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from workers.domain.deployment import Deployment
from workers.domain.pipelines import OriginError, check_commit, check_url
from workers.domain.state import State
from workers.slack.card import headline

#: How a finished deployment ended, as the API and the CLI say it.
OUTCOMES = {State.PROMOTED: "promoted", State.ROLLED_BACK: "rolled_back", State.FAILED: "failed"}


class DeployRequest(BaseModel):
    """The body of POST /api/deployments; the options are the slash command's, with its rule:
    they may only add caution (workers.domain.policy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1, max_length=200)
    image: str = Field(min_length=1, max_length=1000)
    commit: str | None = None
    url: str | None = None
    #: `[10, 25, 50, 100]` or "10,25,50,100".
    steps: list[StrictInt] | str | None = None
    bake: str | None = None
    gates: str | None = None

    @field_validator("commit")
    @classmethod
    def _commit(cls, commit: str | None) -> str | None:
        return None if commit is None else _origin_check(check_commit, commit)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else _origin_check(check_url, url)

    def overrides(self) -> dict[str, str]:
        """The options as the slash command's `key=value` words."""
        given: dict[str, str] = {}
        if self.steps is not None:
            steps = self.steps
            given["steps"] = steps if isinstance(steps, str) else ",".join(map(str, steps))
        if self.bake is not None:
            given["bake"] = self.bake
        if self.gates is not None:
            given["gates"] = self.gates
        return given


def _origin_check(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except OriginError as exc:
        raise ValueError(str(exc)) from None


def parse_deploy_request(body: bytes) -> DeployRequest:
    """The request in `body`, or ValueError with one line saying what is wrong."""
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError(
            'the body must be a JSON object, e.g. {"service": "payments", "image": "…:v42"}'
        )
    try:
        return DeployRequest.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("list[", "str")))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (known: " + ", ".join(DeployRequest.model_fields) + ")"
        elif error["type"] == "missing":
            message = "required"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(dict.fromkeys(parts))


def deployment_view(dep: Deployment, thread: str | None) -> dict[str, Any]:
    """What GET answers of a deployment (and POST with it): where it stands and how it ended."""
    verdict = dep.last_verdict
    origin = dep.origin
    return {
        "id": dep.id,
        "service": dep.service,
        "image": dep.image,
        "state": dep.state.value,
        "status": headline(dep),
        "active": dep.active,
        "step": dep.step_number,
        "steps": len(dep.settings.steps),
        "weight": dep.weight,
        "waiting_for_approval": dep.state == State.AWAITING_APPROVAL,
        "verdict": (
            {"outcome": verdict.outcome.value, "summary": verdict.reason} if verdict else None
        ),
        "outcome": OUTCOMES.get(dep.state),
        "reason": dep.reason,
        "problems": list(dep.problems),
        "thread_url": thread,
        "requested_by": dep.requester,
        "pipeline": origin.pipeline if origin else None,
        "commit": origin.commit if origin else None,
        "url": origin.url if origin else None,
        "created_at": dep.created_at,
        "finished_at": dep.finished_at,
    }


@dataclass(frozen=True)
class Reply:
    """An answer of the API: its status and JSON body."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


def error(status: int, message: str, **more: Any) -> Reply:
    return Reply(status, {"error": message, **more})


@dataclass(frozen=True)
class ApiRequest:
    """What the router reads of an HTTP request."""

    method: str
    path: str
    authorization: str | None = None
    body: bytes = b""
    #: The body was larger than MAX_API_BODY (and was not read).
    too_large: bool = False
