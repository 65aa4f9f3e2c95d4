"""Size limits on a request's target and headers, below aiohttp's own parser limits, so an
oversized request gets the JSON error envelope naming what was too big."""

from __future__ import annotations

import itertools

from gateway.errors import InvalidParameter

MAX_TARGET_BYTES = 4096
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 16384

RawHeaders = tuple[tuple[bytes, bytes], ...]


def check_size(target: str, raw_headers: RawHeaders) -> None:
    """Refuse an oversized request target or header set."""
    if len(target) > MAX_TARGET_BYTES:
        raise InvalidParameter("url", f"the request target is longer than {MAX_TARGET_BYTES} bytes")
    if (
        len(raw_headers) > MAX_HEADER_COUNT
        or sum(map(len, itertools.chain.from_iterable(raw_headers))) > MAX_HEADER_BYTES
    ):
        raise InvalidParameter("headers", f"at most {MAX_HEADER_COUNT} headers and {MAX_HEADER_BYTES} bytes")
