"""Which CI pipeline a bearer token belongs to: the catalogue names each pipeline's variable, the
web process's environment holds the token (docs/CI.md). Pure but for reading that variable.

Every configured token is compared, each in constant time over a digest of fixed length, so
neither the time taken nor an early exit tells a caller how much of a token was right, or which
pipeline came closest. Tokens are never logged, echoed or kept beyond the comparison.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from workers.domain.catalogue import PipelineConfig
from workers.runtime.settings import named_secret

#: The shortest token accepted: a guessable token would let anyone deploy.
MIN_TOKEN_LENGTH = 32
#: Reads a pipeline's token from the variable the catalogue names (the environment by default).
SecretSource = Callable[[str], SecretStr | None]


@dataclass(frozen=True)
class Bearer:
    """What the Authorization header held: a token, or why not."""

    token: str | None
    #: Why there is no usable token ("missing", "not a Bearer token").
    problem: str | None = None


def bearer(header: str | None) -> Bearer:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1)."""
    if not header:
        return Bearer(None, "no Authorization header: send Authorization: Bearer <token>")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Bearer(None, "the Authorization header is not a Bearer token")
    return Bearer(token)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def pipeline_for(
    token: str, pipelines: Mapping[str, PipelineConfig], secrets: SecretSource = named_secret
) -> str | None:
    """The name of the pipeline whose token is `token`, None when none's is (or when it is the
    token of more than one: then it identifies nobody)."""
    presented = _digest(token)
    matches = []
    for name, pipeline in pipelines.items():
        secret = usable(secrets(pipeline.token_env))
        # Compared even when unusable (against a digest nothing hashes to), so that every
        # request costs the same number of comparisons.
        expected = _digest(secret) if secret is not None else b"\0" * len(presented)
        if hmac.compare_digest(presented, expected) and secret is not None:
            matches.append(name)
    return matches[0] if len(matches) == 1 else None


def usable(secret: SecretStr | None) -> str | None:
    """The token's value when it is long enough to be one, else None."""
    if secret is None:
        return None
    value = secret.get_secret_value().strip()
    return value if len(value) >= MIN_TOKEN_LENGTH else None


def token_problems(
    pipelines: Mapping[str, PipelineConfig], secrets: SecretSource = named_secret
) -> list[str]:
    """What keeps a pipeline's token from working, one sentence each (no token value in any):
    its variable is unset, too short, or holds the same token as another pipeline's."""
    problems: list[str] = []
    seen: dict[bytes, str] = {}
    for name, pipeline in pipelines.items():
        secret = secrets(pipeline.token_env)
        if secret is None:
            problems.append(
                f"pipeline {name}: {pipeline.token_env} is not set; its requests are refused"
            )
            continue
        value = usable(secret)
        if value is None:
            problems.append(
                f"pipeline {name}: {pipeline.token_env} is shorter than {MIN_TOKEN_LENGTH} "
                "characters; its requests are refused (make one with `openssl rand -hex 32`)"
            )
            continue
        other = seen.setdefault(_digest(value), name)
        if other != name:
            problems.append(
                f"pipelines {other} and {name} have the same token; requests with it are refused"
            )
    return problems
