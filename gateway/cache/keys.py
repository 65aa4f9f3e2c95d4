"""The cache key schema: every key names its tenant first, then what it holds.

``(tenant id, "list", upstream query)`` for a page of the list, ``(tenant id, "job", job id)``
for one job. Built only here, so no key can be made without a tenant. Keys are plain tuples:
they are built on every cache hit, and a tuple is the cheapest hashable value.
"""

from __future__ import annotations

from sys import getsizeof

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


def key_bytes(key: CacheKey) -> int:
    """Bytes a stored key holds of its own: its tuple and what it names (a job's id, or a list
    query's tuple, pairs and strings: up to about 4 KB with three long filters in CJK). The
    tenant id and the kind are shared with the tenant and this module, so not counted."""
    what = key[2]
    held = getsizeof(key) + getsizeof(what)
    if isinstance(what, tuple):
        held += sum(getsizeof(pair) + getsizeof(pair[0]) + getsizeof(pair[1]) for pair in what)
    return held
