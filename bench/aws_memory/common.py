"""What the stand-in's services share: the made-up account, AWS's error, paging, ids, the lock."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
#: The made-up VPC every namespace is in (no EC2 is answered here).
VPC = "vpc-0standin0000000"


class AwsError(Exception):
    """An AWS error answer: HTTP status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(code: str, message: str) -> AwsError:
    return AwsError(404 if code == "NotFoundException" else 400, code, message)


def one_page(
    items: list[Any], request: Mapping[str, Any], token: str, limit: str, most: int
) -> tuple[list[Any], str | None]:
    """One page of `items` from the request's token and page size (its default `most`)."""
    start = int(request.get(token) or 0)
    size = int(request.get(limit) or most)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def last(name: str) -> str:
    """The name at the end of an ARN (or the name itself)."""
    return name.rsplit("/", 1)[-1]


@dataclass(kw_only=True)
class Held:
    """The state every service of the stand-in uses: one lock, one counter of ids."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _next_id(self, prefix: str, width: int = 16) -> str:
        return f"{prefix}{next(self._ids):0{width}x}"
