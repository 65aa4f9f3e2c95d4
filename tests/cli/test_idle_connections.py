"""`[server] keepalive_seconds` on `metastudio-gateway serve`: idle connections, and ones whose
request head never ends, are closed; a connection in use is not."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.live import live_gateway


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def _closed_within(connection: socket.socket, seconds: float) -> float | None:
    """Seconds until the gateway closed ``connection`` (reading, past any answer), or ``None``."""
    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - started


def test_idle_and_unended_connections_are_closed_after_keepalive_seconds(tmp_path: Path) -> None:
    """With keepalive_seconds = 2: a connection that sent nothing, one that was answered and
    went quiet, and one whose head never ends (a byte now and then, the slow-client attack) are
    all closed within about two seconds. aiohttp's AppRunner kept each for an hour (3630 s)."""
    with live_gateway(tmp_path, extra_config="[server]\nkeepalive_seconds = 2\n") as live:
        silent = _connect(live.base_url)
        answered = _connect(live.base_url)
        answered.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        assert answered.recv(65536).startswith(b"HTTP/1.1 200")
        slow = _connect(live.base_url)
        slow.sendall(b"GET /v1/training-jobs HTTP/1.1\r\nHost: gateway.test\r\n")
        for _ in range(2):  # well within the two seconds: the sends must not meet a closed socket
            time.sleep(0.2)
            slow.sendall(b"X-Slow: a\r\n")
        for connection in (silent, answered, slow):
            with connection:
                closed_after = _closed_within(connection, 8)
                assert closed_after is not None and closed_after < 5
