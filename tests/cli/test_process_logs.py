"""What `serve` says on stderr about its clients' mistakes: as warnings, in words without data."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.live import live_gateway


def test_a_malformed_request_is_logged_as_a_warning_naming_its_kind(tmp_path: Path) -> None:
    """A client's malformed request (a space in a header name) is logged once, as a warning naming
    the kind of error and nothing of the request: aiohttp logged it at error level (any client
    could raise error-level lines, and the alerts on them)."""
    with live_gateway(tmp_path) as live:
        port = int(live.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: secret-looking\r\nConnection: close\r\n\r\n"
            )
            assert b" 400 Bad Request\r\n" in client.recv(4096)
    lines = [json.loads(line) for line in (tmp_path / "gateway.log").read_text().splitlines() if line.startswith("{")]
    said = [line for line in lines if line.get("logger") == "aiohttp.server"]
    assert [(line["level"], line["message"]) for line in said] == [
        ("warning", "rejected a malformed HTTP request (BadHttpMessage)")
    ]
    assert "secret-looking" not in (tmp_path / "gateway.log").read_text()
