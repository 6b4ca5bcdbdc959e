"""A burst of HTTP requests sent at once from one thread, each on its own new connection.

The ack benchmark runs this in a process of its own, so that measuring costs the server under
test as little as possible: one thread, non-blocking sockets and a selector, no interpreter lock
shared with the Slack emulator or with 50 client threads. Each request's latency runs from its
connect() to the last byte of its response, as Slack would see it.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field


@dataclass
class _Exchange:
    request: bytes
    started: float
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    finished: float | None = None

    def complete(self) -> bool:
        head, sep, body = bytes(self.received).partition(b"\r\n\r\n")
        if not sep:
            return False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(body) >= int(value)
        return False

    def status(self) -> int:
        return int(bytes(self.received).split(b" ", 2)[1])


def http_post(host: str, port: int, path: str, body: str, headers: dict[str, str]) -> bytes:
    """The bytes of one HTTP/1.1 POST that closes its connection afterwards."""
    data = body.encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(data)}", "", ""]
    return "\r\n".join(lines).encode() + data


def fire(host: str, port: int, requests: list[bytes], timeout: float = 10.0) -> list[float]:
    """Send every request at once; return each one's seconds until its whole response arrived."""
    selector = selectors.DefaultSelector()
    exchanges: list[_Exchange] = []
    for raw in requests:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        exchange = _Exchange(request=raw, started=time.perf_counter())
        sock.connect_ex((host, port))
        selector.register(sock, selectors.EVENT_WRITE, exchange)
        exchanges.append(exchange)
    deadline = time.perf_counter() + timeout
    pending = len(exchanges)
    while pending:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{pending} of {len(exchanges)} requests got no answer")
        for key, mask in selector.select(timeout=0.5):
            sock, exchange = key.fileobj, key.data
            assert isinstance(sock, socket.socket) and isinstance(exchange, _Exchange)
            if mask & selectors.EVENT_WRITE:
                exchange.sent += sock.send(exchange.request[exchange.sent :])
                if exchange.sent == len(exchange.request):
                    selector.modify(sock, selectors.EVENT_READ, exchange)
                continue
            chunk = sock.recv(65536)
            exchange.received += chunk
            if exchange.complete() or not chunk:
                exchange.finished = time.perf_counter()
                selector.unregister(sock)
                sock.close()
                pending -= 1
    selector.close()
    bad = [e.status() for e in exchanges if not e.complete() or e.status() != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed: HTTP {sorted(set(bad))}")
    return [e.finished - e.started for e in exchanges if e.finished is not None]
