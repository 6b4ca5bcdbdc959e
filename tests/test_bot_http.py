"""The HTTP transport against what the internet sends: slow, silent, oversized, chunked, junk."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest
from slack_bolt import App

from bot.commands import help_text
from tests.bot_harness import SECRET, Slack, serving, signed_headers
from tests.slack_mock import MockSlack


@pytest.fixture
def server(app: App) -> Iterator[tuple[str, int]]:
    # A short idle timeout so that the test sees silent connections closed.
    with serving(app, channel_timeout=1.0) as url:
        parts = urlsplit(url)
        yield parts.hostname or "127.0.0.1", parts.port or 0


def raw(
    address: tuple[str, int], body: bytes, headers: dict[str, str], *, chunked: bool = False
) -> socket.socket:
    """Send one POST to /slack/events as bytes on a socket; the open socket to read from."""
    lines = ["POST /slack/events HTTP/1.1", "Host: bot"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7])
            for i in range(0, len(body), 7)
        )
        payload += b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return sock


def read_response(sock: socket.socket) -> tuple[int, str]:
    """Status and body of one response (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without an answer after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, rest[:length].decode("utf-8", "replace")


def closed_by_server(sock: socket.socket, within: float = 5.0) -> bool:
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def flat(headers: dict[str, list[str]]) -> dict[str, str]:
    return {name: values[0] for name, values in headers.items()}


def help_body(slack: Slack) -> str:
    return slack.command_body("help", "U0ANY", "C0ANY")


def test_a_silent_connection_is_closed(server: tuple[str, int]) -> None:
    sock = socket.create_connection(server, timeout=5)
    sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n")  # ... and nothing more
    started = time.monotonic()
    assert closed_by_server(sock, within=10)
    assert time.monotonic() - started < 10


def test_a_dripping_request_is_closed_at_its_deadline(app: App) -> None:
    """A byte every 0.2 s never leaves the connection idle, yet the request must arrive whole."""
    with serving(app, channel_timeout=30.0, request_deadline=1.0) as url:
        parts = urlsplit(url)
        sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 100\r\n\r\n")
        sock.settimeout(0.2)
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < 8:
            try:
                sock.sendall(b"x")
                closed = sock.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed = True
        assert closed, "still open after 8 s of dripping"
        assert time.monotonic() - started < 5


def test_slow_clients_do_not_keep_slack_waiting(server: tuple[str, int], slack: Slack) -> None:
    slow = [socket.create_connection(server, timeout=5) for _ in range(60)]
    for sock in slow:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 100\r\n\r\nx")
    body = help_body(slack)
    sock = raw(server, body.encode(), flat(signed_headers(body)))
    status, text = read_response(sock)
    assert status == 200 and json.loads(text)["text"] == help_text()
    for each in [*slow, sock]:
        each.close()


def test_an_oversized_body_gets_413_and_the_connection_is_closed(
    server: tuple[str, int],
) -> None:
    sock = socket.create_connection(server, timeout=5)
    sock.sendall(
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 1000
    )
    status, _ = read_response(sock)
    assert status == 413
    assert closed_by_server(sock)


def test_a_chunked_body_is_read_and_checked_like_any_other(
    server: tuple[str, int], slack: Slack
) -> None:
    body = help_body(slack)
    sock = raw(server, body.encode(), flat(signed_headers(body)), chunked=True)
    status, text = read_response(sock)
    assert status == 200 and json.loads(text)["text"] == help_text()
    # Unsigned, chunked: refused as unsigned, not read as an empty body.
    forged = raw(server, body.encode(), flat(signed_headers(body, secret="nope")), chunked=True)
    assert read_response(forged)[0] == 401


def test_broken_chunking_gets_400(server: tuple[str, int]) -> None:
    sock = socket.create_connection(server, timeout=5)
    sock.sendall(
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n"
    )
    assert read_response(sock)[0] == 400


MALFORMED = {
    "a payload that is a JSON list": urlencode({"payload": "[]"}),
    "a payload that is JSON null": urlencode({"payload": "null"}),
    "a payload that is not JSON": urlencode({"payload": "{not json"}),
    "a block_actions payload without fields": urlencode({"payload": '{"type": "block_actions"}'}),
    "a block_actions payload with actions of the wrong type": urlencode(
        {"payload": json.dumps({"type": "block_actions", "actions": 5, "user": "x"})}
    ),
    "a block_actions payload whose action is not an object": urlencode(
        {"payload": json.dumps({"type": "block_actions", "actions": [5]})}
    ),
    "a block_actions payload whose user is not an object": urlencode(
        {"payload": json.dumps({"type": "block_actions", "actions": [{}], "user": 3})}
    ),
    "an event that is not an object": json.dumps({"type": "event_callback", "event": 5}),
    "a slash command without its fields": urlencode({"command": "/canary"}),
}


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_bodies_get_an_answer_below_500(
    server: tuple[str, int], body: str, signed: bool
) -> None:
    headers = signed_headers(body) if signed else signed_headers(body, secret="nope")
    status, _ = read_response(raw(server, body.encode(), flat(headers)))
    assert 400 <= status < 500 or (signed and status == 200), status


def test_a_body_that_is_not_utf8_gets_400(server: tuple[str, int]) -> None:
    body = b"command=%2Fcanary&text=\xff\xfe"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=00",
    }
    assert read_response(raw(server, body, headers))[0] == 400


def test_a_bad_signature_is_logged_as_one_line_without_the_body(
    slack: Slack, mock: MockSlack, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "INJECTED\nFAKE LOG LINE"
    body = slack.command_body(f"deploy search {marker}", "U0ANY", "C0ANY")
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        assert slack.dispatch(body, signed_headers(body, secret="nope")).status == 401
    refused = [r for r in caplog.records if "signature" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]  # a flood logs one line
    assert refused[0].levelno == logging.WARNING
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "INJECTED" not in logged and "deploy" not in logged and SECRET not in logged
    assert "\n" not in refused[0].getMessage()
