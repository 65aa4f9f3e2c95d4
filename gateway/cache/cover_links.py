"""The cover links known for each (tenant, job), for ``/cover`` and signed image links.

A second store beside the entries, on purpose: a cover link stays servable for about a day,
while the list entry that brought it lives for the cache TTL (a minute by default). Deriving
``/cover``'s answer from entries alone would cost an upstream call per cover once the list
entry expired, although the link it held is good for hours. So every load remembers its
links here (bounded, least recently used out first), and ``/cover`` re-fetches only when the
link it knows comes within the refresh margin. A load that finds a job without a cover (or a
job looked up gone) drops its link, so ``/cover`` then says 404 instead of redirecting to an
image the upstream no longer offers. The links are facts about the upstream, the same for every
replica: the shared tier implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cachetools import LRUCache

from gateway.cache.entry import CoverLink

COVER_LINKS_KEPT = 100_000


class LocalCoverLinks:
    """A bounded in-process ``CoverLinks``."""

    def __init__(self, maxsize: int = COVER_LINKS_KEPT) -> None:
        self._links: LRUCache[tuple[str, str], CoverLink] = LRUCache(maxsize=maxsize)

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
