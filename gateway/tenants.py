"""Who is calling: bearer API keys to tenants.

Keys are stored only as sha256 digests. A presented key is hashed and looked up by digest
(O(1)), then the digest is confirmed with ``hmac.compare_digest``: any timing the dict
look-up shows concerns the digest, which reveals nothing usable about a key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from gateway.config import Tenant
from gateway.errors import Unauthenticated

_BEARER = "bearer "


def hash_key(api_key: str) -> str:
    """The ``api_key_sha256`` value for an API key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class TenantDirectory:
    """Finds the tenant an ``Authorization: Bearer <key>`` header belongs to."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._by_digest = {digest: tenant for tenant in tenants for digest in tenant.api_key_sha256}

    def authenticate(self, authorization: str | None) -> Tenant:
        """The caller's tenant; ``Unauthenticated`` when the key is missing or unknown."""
        if not authorization or authorization[: len(_BEARER)].lower() != _BEARER:
            raise Unauthenticated("missing bearer API key")
        digest = hash_key(authorization[len(_BEARER) :].strip())
        tenant = self._by_digest.get(digest)
        if tenant is None or not any(hmac.compare_digest(digest, known) for known in tenant.api_key_sha256):
            raise Unauthenticated("unknown API key")
        return tenant
