"""CI pipelines as requesters: how one is named where a person's Slack id would be, and what it
tells of the commit it deploys (docs/CI.md).

A deployment started by a pipeline has `pipeline:<name>` as its requester: no Slack id has a
colon, so no person is ever its requester (four-eyes lets any approver approve), and
workers.slack.format words it "pipeline <name>" wherever a person would be mentioned.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

#: What a pipeline's name becomes where an actor's Slack id goes.
ACTOR_PREFIX = "pipeline:"
#: A pipeline's name in the catalogue: lower-case letters, digits, `-` and `_`.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: A git commit id, abbreviated or whole (SHA-1: 40 hex digits, SHA-256: 64).
COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")
#: The longest link a pipeline may give (a build or commit page).
MAX_URL = 500
#: Characters that would break the Slack link the card makes of the URL (`<url|label>`).
_UNSAFE_IN_LINK = re.compile(r"[\s<>|\"'`\\]")


class OriginError(ValueError):
    """A commit or link a pipeline gave that cannot be used; the message says why."""


class Origin(BaseModel):
    """Which pipeline asked for a deployment, and what it said of the commit."""

    model_config = ConfigDict(frozen=True)

    pipeline: str
    commit: str | None = None
    #: A page of the commit or the build (http or https), shown as a link on the card.
    url: str | None = None

    @property
    def actor(self) -> str:
        return as_actor(self.pipeline)


def as_actor(pipeline: str) -> str:
    """The requester of a deployment the pipeline `pipeline` started: "pipeline:<name>"."""
    return ACTOR_PREFIX + pipeline


def pipeline_of(actor: str | None) -> str | None:
    """The pipeline's name when `actor` is one (`as_actor`), else None (a person)."""
    if actor and actor.startswith(ACTOR_PREFIX):
        return actor[len(ACTOR_PREFIX) :]
    return None


def check_commit(commit: str) -> str:
    """A git commit id (7 to 64 hex digits), lower-cased; OriginError otherwise."""
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        raise OriginError("must be a git commit id: 7 to 64 hexadecimal digits")
    return commit.lower()


def check_url(url: str) -> str:
    """An http(s) URL of at most MAX_URL characters that a Slack link can carry as is."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise OriginError(f"must be an http:// or https:// URL of at most {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OriginError("must be an http:// or https:// URL with a host")
    if _UNSAFE_IN_LINK.search(url) or not url.isprintable():
        raise OriginError("must not contain spaces, quotes, backslashes, <, > or |")
    return url
