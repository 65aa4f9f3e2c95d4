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
        # the order of the parts does not matter; an explicit gzip outranks *
        ("*, gzip;q=0", False),
        ("*;q=0.5, gzip;q=0", False),
        ("*;q=0, gzip", True),
        ("gzip;q=0, *", False),
        # coding names in any case, x-gzip as gzip
        ("GZIP", True),
        ("Gzip;Q=0.5", True),
        ("x-gzip", True),
        # weights as HTTP writes them; one that does not parse refuses
        ("gzip;q=0.", False),
        ("gzip;q=0.001", True),
        ("gzip;q=1.000", True),
        ("gzip;q=nan", False),
        ("gzip;q=2", False),
        ("gzip;q=", False),
        ("gzip; level=1 ; q=0", False),
        # identity preferred over gzip by weight
        ("gzip;q=0.5, identity", False),
        ("gzip, identity;q=0.5", True),
        ("gzip, identity;q=0", True),
        # a coding named twice: refused if either refuses
        ("gzip, gzip;q=0", False),
        ("gzipx, xgzip", False),
    ],
)
def test_accept_encoding_is_honoured(header: str, expected: bool) -> None:
    """gzip is sent only when the client's Accept-Encoding admits it."""
    assert accepts_gzip(header) is expected
