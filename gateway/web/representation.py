"""How a cache entry goes on the wire: the variant the client accepts, its validator, the
caching headers, and 304 when the client already holds it.

One function for both ways a cached answer leaves the gateway (the handler chain and the
protocol-level hit path in ``gateway.fastpath.hits``), so both send the same status, headers and bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.cache.entry import CacheEntry

X_CACHE = {"hit": "HIT", "miss": "MISS", "coalesced": "MISS", "stale": "STALE"}
VARY = "Authorization, Accept-Encoding"
_WEIGHED_CODINGS = frozenset(("gzip", "x-gzip", "identity"))
_WEIGHT = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
"""A weight (``q``) as HTTP writes one."""


@dataclass(frozen=True, slots=True)
class Representation:
    """What to send: a status, headers, and the body (``None`` for 304)."""

    status: int
    headers: dict[str, str]
    body: bytes | None


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value asks for gzip: it names ``gzip`` (or ``x-gzip``, any
    case) with a weight above 0, and no ``identity`` with a higher weight. The order of its
    parts does not matter (``*, gzip;q=0`` refuses gzip, ``*;q=0, gzip`` asks for it), and a
    weight that does not parse counts as 0. ``*`` alone gets identity, as from nginx."""
    gzip: float | None = None
    identity: float | None = None
    for part in accept_encoding.lower().split(","):
        coding, *params = part.split(";")
        coding = coding.strip()
        if coding not in _WEIGHED_CODINGS:
            continue
        weight = _weight(params)
        if coding == "identity":
            identity = weight if identity is None else min(identity, weight)
        else:
            gzip = weight if gzip is None else min(gzip, weight)
    return gzip is not None and gzip > 0 and (identity is None or identity <= gzip)


def _weight(params: list[str]) -> float:
    """The ``q`` of a coding's parameters: 1 if absent; 0 if it is not a weight (0 to 1, at most
    three decimals)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            return float(value) if _WEIGHT.fullmatch(value := value.strip()) else 0.0
    return 1.0


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match value names ``etag`` (weak comparison, ``*`` matches)."""
    if if_none_match is None:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def represent(
    entry: CacheEntry, result: str, now: float, accept_encoding: str | None, if_none_match: str | None
) -> Representation:
    """The entry as served to a client sending these Accept-Encoding and If-None-Match values;
    ``result`` is how the cache answered (hit, miss, coalesced or stale)."""
    gzipped = entry.gzip_body is not None and accept_encoding is not None and accepts_gzip(accept_encoding)
    etag = entry.gzip_etag if gzipped else entry.etag
    fresh_for = max(0, int(min(entry.fresh_until - now, entry.fresh_until - entry.fetched_at)))  # within its life
    age = max(0, int(now - entry.fetched_at)) if result in ("hit", "stale") else None
    # A cache counts Age against max-age (RFC 9111 4.2): with one, it keeps fresh_for seconds.
    max_age = fresh_for + age if fresh_for and age else fresh_for
    headers = {
        "Content-Type": "application/json",
        "ETag": etag,
        "X-Cache": X_CACHE[result],
        "Cache-Control": f"private, max-age={max_age}",
        "Vary": VARY,
    }
    if age is not None:
        headers["Age"] = str(age)
    if etag_matches(if_none_match, etag):
        del headers["Content-Type"]
        return Representation(304, headers, None)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Representation(200, headers, entry.gzip_body)
    return Representation(200, headers, entry.body)
