"""What the cache holds: a response ready to send, the cover links inside it, and its times."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

# What one entry costs beyond its body: the entry object, its key tuple, the etag and the
# cache's own bookkeeping (a dict slot, a TTL link, an LRU link). Measured with sys.getsizeof.
_ENTRY_OVERHEAD_BYTES = 600


@dataclass(frozen=True, slots=True)
class CoverLink:
    """A cover URL as the upstream issued it, and when it stops working."""

    url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A response ready to send, with the times that govern serving it (see ``freshness``)."""

    body: bytes
    etag: str
    fetched_at: float
    fresh_until: float
    keep_until: float
    covers: Mapping[str, CoverLink] = field(default_factory=dict)
    earliest_cover_expiry: float | None = None
    gzip_body: bytes | None = None
    """The body gzip-compressed once, for clients that accept it (``None`` for small bodies)."""
    size: int = field(init=False)
    """Bytes held: both bodies, the cover links, and a fixed overhead (worked out once, here: the
    store reads it twice per entry)."""

    def __post_init__(self) -> None:
        cover_bytes = sum(sys.getsizeof(link.url) + 150 for link in self.covers.values())
        gzip_bytes = sys.getsizeof(self.gzip_body) if self.gzip_body is not None else 0
        held = sys.getsizeof(self.body) + gzip_bytes + len(self.etag) + cover_bytes + _ENTRY_OVERHEAD_BYTES
        object.__setattr__(self, "size", held)

    @property
    def gzip_etag(self) -> str:
        """The ETag of the gzip representation (a different byte sequence, so a different tag)."""
        return self.etag[:-1] + '-gzip"'
