"""The cache key schema: every key names its tenant first, then what it holds.

``(tenant id, "list", upstream query)`` for a page of the list, ``(tenant id, "job", job id)``
for one job. Built only here, so no key can be made without a tenant. Keys are plain tuples:
they are built on every cache hit, and a tuple is the cheapest hashable value.
"""

from __future__ import annotations

from gateway.upstream.query import UpstreamQuery

CacheKey = tuple[str, str, UpstreamQuery | str]
"""(tenant id, kind, what): kind is ``LIST`` or ``JOB``."""

LIST = "list"
JOB = "job"


def list_key(tenant_id: str, query: UpstreamQuery) -> CacheKey:
    """The key of a tenant's list page for a validated upstream query."""
    return (tenant_id, LIST, query)


def job_key(tenant_id: str, job_id: str) -> CacheKey:
    """The key of one of a tenant's jobs."""
    return (tenant_id, JOB, job_id)
