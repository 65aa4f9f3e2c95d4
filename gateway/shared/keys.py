"""The shared tier's key namespace. Pure.

Every key is ``<prefix>:v<FORMAT>:{<tenant>}:<what>``: it starts with the configured prefix, holds
the format version (bumped on any change to what a key holds, so replicas of two versions never
read each other's values), and the tenant id in a hash tag, so that every key one script touches
sits in one Redis Cluster slot. A cache key's subject (a query, a job id) is hashed: keys stay
short and never hold what a caller typed. The one key that belongs to no tenant is the replica
heartbeat set, which no script combines with another key.
"""

from __future__ import annotations

import hashlib

import orjson

from gateway.cache.keys import CacheKey

FORMAT = 1


class KeySpace:
    """Names of every Redis key and channel the shared tier uses, under one prefix."""

    def __init__(self, prefix: str) -> None:
        self._root = f"{prefix}:v{FORMAT}"
        self.fill_channel = f"{self._root}:filled"
        """Pub/Sub channel: the entry key a replica just filled (or gave up on)."""
        self.covers_channel = f"{self._root}:covers"
        """Pub/Sub channel: cover links a replica just learned."""
        self.replicas = f"{self._root}:replicas"
        """Sorted set: live replica ids scored by when their heartbeat lapses."""

    def tenant(self, tenant_id: str) -> str:
        """The prefix of every key of one tenant, hash tag included."""
        return f"{self._root}:{{{tenant_id}}}"

    def entry(self, key: CacheKey) -> str:
        """Where the ready-to-send entry for ``key`` lives."""
        tenant_id, kind, subject = key
        digest = hashlib.blake2b(orjson.dumps(subject), digest_size=16).hexdigest()
        return f"{self.tenant(tenant_id)}:{kind}:{digest}"

    @staticmethod
    def lease(entry_key: str) -> str:
        """The fill lease of an entry: who may call the upstream for it now."""
        return entry_key + ":lease"

    @staticmethod
    def backoff(entry_key: str) -> str:
        """The failure backoff of an entry: present while nobody may call the upstream for it."""
        return entry_key + ":backoff"

    def rate(self, tenant_id: str) -> str:
        """The tenant's shared token bucket."""
        return f"{self.tenant(tenant_id)}:rate"
