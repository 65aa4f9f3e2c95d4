"""The cover links known for each (tenant, job), for ``/cover`` and signed image links.

A second store beside the entries, on purpose: a cover link stays servable for about a day,
while the list entry that brought it lives for the cache TTL (a minute by default). Deriving
``/cover``'s answer from entries alone would cost an upstream call per cover once the list
entry expired, although the link it held is good for hours. So every load remembers its
links here (bounded in bytes, least recently used out first: a pre-signed URL made with
temporary credentials runs to a couple of kilobytes, so 100,000 links, the bound until stop 32,
held up to 230 MiB), and ``/cover`` re-fetches only when the
link it knows comes within the refresh margin. A load that finds a job without a cover (or a
job looked up gone) drops its link, so ``/cover`` then says 404 instead of redirecting to an
image the upstream no longer offers. The links are facts about the upstream, the same for every
replica: the shared tier implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cachetools import LRUCache

from gateway.cache.entry import CoverLink

COVER_LINKS_BYTES = 32 * 1024 * 1024
"""The most the links known may hold, URLs and bookkeeping."""
LINK_OVERHEAD_BYTES = 400
"""What a link holds besides its URL's characters: its key (a tenant and a job id of up to 64
characters), the ``CoverLink`` and the cache's dict slot and order link."""


def link_bytes(link: CoverLink) -> int:
    """The bytes remembering ``link`` holds, as ``COVER_LINKS_BYTES`` counts them."""
    return len(link.url) + LINK_OVERHEAD_BYTES


class LocalCoverLinks:
    """A bounded in-process ``CoverLinks``."""

    def __init__(self, max_bytes: int = COVER_LINKS_BYTES) -> None:
        self._links: LRUCache[tuple[str, str], CoverLink] = LRUCache(maxsize=max_bytes, getsizeof=link_bytes)

    def get(self, tenant_id: str, job_id: str) -> CoverLink | None:
        """The known link for the tenant's job, servable or not."""
        return self._links.get((tenant_id, job_id))

    def remember(self, tenant_id: str, covers: Mapping[str, CoverLink]) -> None:
        """Note the links a load just brought, by job id."""
        for job_id, link in covers.items():
            self._links[(tenant_id, job_id)] = link

    def forget(self, tenant_id: str, job_ids: Iterable[str]) -> None:
        """Drop the links of jobs a load just found without a cover, or gone."""
        for job_id in job_ids:
            self._links.pop((tenant_id, job_id), None)
