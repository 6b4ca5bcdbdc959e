"""Injected AWS faults for tests: throttling answered at the HTTP layer, so botocore retries it;
a slow step overtaken by its re-run."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse
from pytest import MonkeyPatch


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 256
    return (bytes([0x60 + len(raw)]) if len(raw) < 24 else bytes([0x78, len(raw)])) + raw


def _cbor_map(values: dict[str, str]) -> bytes:
    out = bytes([0xA0 + len(values)])
    for k, v in values.items():
        out += _cbor_text(k) + _cbor_text(v)
    return out


class _Raw:
    """The little of urllib3's response that botocore reads."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        return self._body


def error_response(
    protocol: str,
    url: str,
    status: int = 400,
    code: str = "ThrottlingException",
    message: str = "Rate exceeded",
) -> AWSResponse:
    """An AWS error (by default a 400 ThrottlingException) as the service's protocol answers it."""
    headers: dict[str, str] = {"x-amzn-RequestId": "fault", "x-amzn-ErrorType": code}
    if protocol == "query":
        code = "Throttling" if code == "ThrottlingException" else code
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId>"
            "</ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    elif protocol == "smithy-rpc-v2-cbor":
        body = _cbor_map({"__type": code, "message": message})
        headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers["Content-Type"] = "application/x-amz-json-1.1"
    return AWSResponse(url, status, headers, _Raw(body))


class Throttler:
    """Answers a share of the requests of some clients with throttling, while `active()` holds."""

    def __init__(self, share: float, seed: int = 7, active: Callable[[], bool] = lambda: True):
        self.share, self.random, self.active = share, random.Random(seed), active
        self.injected = 0
        self.sent = 0

    def install(self, *clients: Any) -> None:
        for client in clients:
            protocol = client.meta.service_model.protocol
            client.meta.events.register(
                "before-send",
                lambda request, protocol=protocol, **_: self._maybe(request, protocol),
            )

    def _maybe(self, request: Any, protocol: str) -> AWSResponse | None:
        if not self.active():
            return None
        self.sent += 1
        if self.random.random() < self.share:
            self.injected += 1
            return error_response(protocol, request.url)
        return None


class FailNext:
    """Answers the next `times` requests of `operation` with an HTTP 500 (a transient fault)."""

    def __init__(self, operation: str, times: int) -> None:
        self.operation, self.left, self.failed = operation, times, 0

    def install(self, *clients: Any) -> None:
        for client in clients:
            protocol = client.meta.service_model.protocol
            client.meta.events.register(
                f"before-send.*.{self.operation}",
                lambda request, protocol=protocol, **_: self._maybe(request, protocol),
            )

    def _maybe(self, request: Any, protocol: str) -> AWSResponse | None:
        if self.left <= 0:
            return None
        self.left -= 1
        self.failed += 1
        return error_response(protocol, request.url, 500, "InternalFailure", "try again")


def overtaken_at(
    monkeypatch: MonkeyPatch, client: Any, operation: str, rerun: Callable[[], object]
) -> None:
    """The first call of `client.operation` runs `rerun` (the watchdog's re-run of the step,
    overtaking a slow first attempt) to its end before making its own call."""
    real = getattr(client, operation)

    def slow_first(**kwargs: Any) -> Any:
        monkeypatch.setattr(client, operation, real)
        rerun()
        return real(**kwargs)

    monkeypatch.setattr(client, operation, slow_first)
