"""The wire: requests and answers in the protocols botocore speaks to these services (JSON 1.1
for ECS and Cloud Map, RPC v2 CBOR as well, REST-JSON for App Mesh), errors included."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from functools import cache
from typing import Any

from bench.aws_memory.common import AwsError
from bench.aws_standin import Answer, Call, decode_cbor, encode_cbor, service_model


def cbor_error(code: str, message: str) -> bytes:
    """{"__type": code, "message": message} in CBOR (RFC 8949): a map of two text strings."""

    def text(value: str) -> bytes:
        raw = value.encode()
        n = len(raw)
        if n < 24:
            head = bytes([0x60 | n])
        elif n < 256:
            head = bytes([0x78, n])
        else:
            head = bytes([0x79]) + n.to_bytes(2, "big")
        return head + raw

    return bytes([0xA2]) + text("__type") + text(code) + text("message") + text(message[:60000])


def decode(call: Call, body: bytes) -> dict[str, Any]:
    """A JSON 1.1 or CBOR request body as boto3's keyword arguments."""
    return decode_cbor(body) if call.protocol == "cbor" else json.loads(body or b"{}")


def encode(call: Call, value: dict[str, Any]) -> Answer:
    """A JSON 1.1 or CBOR answer of `value`."""
    request_id = ("x-amzn-RequestId", str(uuid.uuid4()))
    if call.protocol == "cbor":
        headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        return 200, [*headers, request_id], encode_cbor(value, call.service, call.operation)
    return (
        200,
        [("Content-Type", "application/x-amz-json-1.1"), request_id],
        json.dumps(value).encode(),
    )


def rest(value: dict[str, Any]) -> Answer:
    """A REST-JSON answer of `value` (App Mesh)."""
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return 200, headers, json.dumps(value).encode()


def error(call: Call, err: AwsError) -> Answer:
    """AWS's error answer in the call's protocol."""
    request_id = ("x-amzn-RequestId", str(uuid.uuid4()))
    if call.protocol == "cbor":
        headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        return err.status, [*headers, request_id], cbor_error(err.code, err.message)
    if call.protocol == "rest":
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", err.code)]
        return err.status, [*headers, request_id], json.dumps({"message": err.message}).encode()
    body = json.dumps({"__type": err.code, "message": err.message}).encode()
    return err.status, [("Content-Type", "application/x-amz-json-1.1"), request_id], body


@cache
def _uri_pattern(operation: str) -> re.Pattern[str]:
    """App Mesh's requestUri of the operation as a pattern naming its path parameters."""
    uri = service_model("appmesh").operation_model(operation).http["requestUri"].split("?")[0]
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(uri)))


def path_params(operation: str, path: str) -> dict[str, str]:
    """The names an App Mesh request carries in its path (meshName, routeName...)."""
    found = _uri_pattern(operation).fullmatch(path.split("?", 1)[0])
    if found is None:
        return {}
    return {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
