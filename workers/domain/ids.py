"""Deployment ids: 8 characters of [0-9a-z]."""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.digits + string.ascii_lowercase
_ID = re.compile(r"^[0-9a-z]{8}$")


def new_deployment_id() -> str:
    """A fresh random deployment id."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(8))


def is_deployment_id(text: str) -> bool:
    """True when `text` has the shape of a deployment id."""
    return bool(_ID.match(text or ""))
