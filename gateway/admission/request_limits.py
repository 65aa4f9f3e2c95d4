"""Size limits on a request's target and headers, below aiohttp's own parser limits, so an
oversized request gets the JSON error envelope saying what was too big.

aiohttp's own parser comes first and is larger: a request line over 8190 bytes
(``MAX_LINE_SIZE``) or a single header value over 32768 bytes (``MAX_FIELD_SIZE``) never reaches
these checks and gets aiohttp's plain-text 400.

``Authorization`` is not counted in the header total: the credential has its own bound in the
admission room, where an oversized token is a 401 saying so (an invalid token, not a bad request).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.errors import InvalidRequest

MAX_TARGET_BYTES = 4096
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 16384

RawHeaders = tuple[tuple[bytes, bytes], ...]


def header_bytes(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The bytes of the headers' names and values (values without the whitespace around them),
    ``Authorization`` not counted: what ``check_limits`` limits."""
    return sum(len(name) + len(value) for name, value in headers if name.lower() != b"authorization")


def check_size(target: str, raw_headers: RawHeaders) -> None:
    """Refuse an oversized request target or header set (``Authorization`` not counted)."""
    check_limits(target, len(raw_headers), header_bytes(raw_headers))


def check_limits(target: str, header_count: int, header_bytes: int) -> None:
    """Refuse an oversized request target, or more than the allowed headers or bytes of them
    (``header_bytes``: names and values, ``Authorization`` not counted)."""
    if len(target) > MAX_TARGET_BYTES:
        raise InvalidRequest(f"the request target is longer than {MAX_TARGET_BYTES} bytes")
    if header_count > MAX_HEADER_COUNT or header_bytes > MAX_HEADER_BYTES:
        raise InvalidRequest(
            f"the request has more than {MAX_HEADER_COUNT} headers or more than {MAX_HEADER_BYTES} bytes of them"
        )
