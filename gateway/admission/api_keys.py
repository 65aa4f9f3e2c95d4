"""Who is calling: bearer API keys to tenants.

Keys are stored only as sha256 digests. A presented key is hashed and looked up by digest
(O(1)), then the digest is confirmed with ``hmac.compare_digest``: any timing the dict
look-up shows concerns the digest, which reveals nothing usable about a key.

Authorization headers already accepted are remembered (at most ``ACCEPTED_HEADERS_KEPT``, then
forgotten all at once), so a client's later requests cost one dict look-up instead of a
sha256: on a cache hit the hash was a fifth of the gateway's own work. Only accepted headers
are kept, so unknown keys cannot fill it, and a look-up by a header string compares it only
after a (per-process randomised) hash match, which tells an attacker nothing usable either.
Only headers sent plainly (``sent_plainly``) are kept: spaces around a key are accepted, but
kept they would make one key any number of entries, each as long as a request head allows.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from gateway.errors import Unauthenticated
from gateway.tenant import Tenant

_BEARER = "bearer "
ACCEPTED_HEADERS_KEPT = 1024


def hash_key(api_key: str) -> str:
    """The ``api_key_sha256`` value for an API key. A header's bytes that are not UTF-8 reach
    here as aiohttp decodes them, as lone surrogates (``surrogateescape``): hashed as the bytes
    they were, they match no key, where UTF-8 alone would raise."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()


class TenantDirectory:
    """Finds the tenant an ``Authorization: Bearer <key>`` header belongs to."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._by_digest = {digest: tenant for tenant in tenants for digest in tenant.api_key_sha256}
        self._accepted: dict[str | None, Tenant] = {}

    def authenticate(self, authorization: str | None) -> Tenant:
        """The caller's tenant; ``Unauthenticated`` when the key is missing or unknown."""
        tenant = self.find(authorization)
        if tenant is None:
            raise Unauthenticated(
                "missing bearer API key" if bearer_credential(authorization) is None else "unknown API key"
            )
        return tenant

    def find(self, authorization: str | None) -> Tenant | None:
        """The caller's tenant, or ``None`` when the key is missing or unknown."""
        tenant = self._accepted.get(authorization)
        if tenant is not None or authorization is None:
            return tenant
        key = bearer_credential(authorization)
        if key is None:
            return None
        tenant = self._holder_of(key)
        if tenant is not None and sent_plainly(authorization, key):
            if len(self._accepted) >= ACCEPTED_HEADERS_KEPT:
                self._accepted.clear()
            self._accepted[authorization] = tenant
        return tenant

    def _holder_of(self, api_key: str) -> Tenant | None:
        digest = hash_key(api_key)
        tenant = self._by_digest.get(digest)
        if tenant is None or not any(hmac.compare_digest(digest, known) for known in tenant.api_key_sha256):
            return None
        return tenant


def bearer_credential(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <credential>`` header, else ``None``."""
    if not authorization or authorization[: len(_BEARER)].lower() != _BEARER:
        return None
    return authorization[len(_BEARER) :].strip()


def sent_plainly(authorization: str, credential: str) -> bool:
    """Whether ``authorization`` is ``Bearer <credential>`` with nothing around the credential
    (``credential`` as ``bearer_credential`` read it): the only headers the caller memos keep."""
    return len(authorization) == len(_BEARER) + len(credential)
