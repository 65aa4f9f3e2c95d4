"""Content negotiation for the precompressed body."""

from __future__ import annotations

import pytest

from gateway.web.representation import accepts_gzip


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", False),
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("gzip;q=0", False),
        ("deflate, gzip;q=0.0", False),
        ("*", False),
        ("identity", False),
    ],
)
def test_accept_encoding_is_honoured(header: str, expected: bool) -> None:
    """gzip is sent only when the client's Accept-Encoding admits it."""
    assert accepts_gzip(header) is expected
