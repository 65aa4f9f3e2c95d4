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
from itertools import chain

from gateway.errors import InvalidRequest

MAX_TARGET_BYTES = 4096
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 16384

RawHeaders = tuple[tuple[bytes, bytes], ...]


def header_bytes(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The bytes of the headers' names and values (the caller passes values without the
    whitespace around them), ``Authorization`` not counted: what ``check_limits`` limits."""
    return sum(len(name) + len(value) for name, value in headers if name.lower() != b"authorization")


def counted_header_bytes(upper_bound: int, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """``header_bytes(headers)`` for ``check_limits``, given a cheap upper bound of it: the bound
    itself while it is within the limit (the exact count, no larger, would pass as well), else
    the exact count."""
    return upper_bound if upper_bound <= MAX_HEADER_BYTES else header_bytes(headers)


def check_size(target: str, raw_headers: RawHeaders) -> None:
    """Refuse an oversized request target or header set (``Authorization`` not counted)."""
    every_byte = sum(map(len, chain.from_iterable(raw_headers)))
    check_limits(target, len(raw_headers), counted_header_bytes(every_byte, raw_headers))


def check_limits(target: str, header_count: int, byte_count: int) -> None:
    """Refuse an oversized request target, or more than the allowed headers or bytes of them
    (``byte_count``: names and values, ``Authorization`` not counted)."""
    if len(target) > MAX_TARGET_BYTES:
        raise InvalidRequest(f"the request target is longer than {MAX_TARGET_BYTES} bytes")
    if header_count > MAX_HEADER_COUNT or byte_count > MAX_HEADER_BYTES:
        raise InvalidRequest(
            f"the request has more than {MAX_HEADER_COUNT} headers or more than {MAX_HEADER_BYTES} bytes of them"
        )
