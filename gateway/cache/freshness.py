"""The freshness rule: what an entry is good for at a given moment. Pure.

========================  ====================================  ===============================
state                     when                                  what the caller does
========================  ====================================  ===============================
``FRESH``                 before ``fresh_until``, not in the    serve it (a plain hit)
                          last tenth of its life
``REFRESH_AHEAD``         in the last tenth of its fresh life   serve it, re-fetch in background
``STALE_WHILE_REVALIDATE`` past ``fresh_until``, within the      serve it as stale, re-fetch in
                          stale-while-revalidate window         background
``STALE_IF_ERROR``        past that window, before              load; serve it as stale only if
                          ``keep_until``                        the upstream fails
``MISS``                  no entry, or past ``keep_until``      load
========================  ====================================  ===============================

``fresh_until`` and ``keep_until`` are already cut short by the earliest cover link inside the
entry (minus the refresh margin) and, for a body holding signed cover-image links, by their
``serve_until``, so no state here ever serves a dying link.

An entry fetched "later" than ``now`` (the wall clock stepped back since, or another replica's
clock runs ahead) is ``REFRESH_AHEAD``: served, and re-fetched at once, instead of staying fresh
for its TTL plus the step.
"""

from __future__ import annotations

import enum

from gateway.cache.entry import CacheEntry

REFRESH_AHEAD_FRACTION = 0.1
"""A hit in the last tenth of an entry's fresh life starts one background re-fetch."""


class Freshness(enum.Enum):
    FRESH = "fresh"
    REFRESH_AHEAD = "refresh_ahead"
    STALE_WHILE_REVALIDATE = "stale_while_revalidate"
    STALE_IF_ERROR = "stale_if_error"
    MISS = "miss"


# Bound once: on Python 3.11 every ``Freshness.X`` read goes through the enum's descriptor (about
# 70 ns), and this rule runs on every cache hit. The same member objects, so ``is`` still holds.
FRESH = Freshness.FRESH
REFRESH_AHEAD = Freshness.REFRESH_AHEAD
STALE_WHILE_REVALIDATE = Freshness.STALE_WHILE_REVALIDATE
STALE_IF_ERROR = Freshness.STALE_IF_ERROR
MISS = Freshness.MISS


def freshness(entry: CacheEntry | None, now: float, stale_while_revalidate_seconds: float) -> Freshness:
    """What ``entry`` is good for at ``now``."""
    if entry is None or now >= entry.keep_until:
        return MISS
    fresh_until = entry.fresh_until
    if now < fresh_until:
        fetched_at = entry.fetched_at
        if fresh_until - now < (fresh_until - fetched_at) * REFRESH_AHEAD_FRACTION or now < fetched_at:
            return REFRESH_AHEAD
        return FRESH
    if now < fresh_until + stale_while_revalidate_seconds:
        return STALE_WHILE_REVALIDATE
    return STALE_IF_ERROR
