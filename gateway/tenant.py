"""A tenant: a caller of the gateway, the upstream user it acts as, and how it proves who it is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tenant:
    """A caller of the gateway: who it is, which upstream user it acts as, its key hashes,
    its own rate limit (``None``: the default), and the end-user tokens that name it: pairs of
    an issuer's configured name and the tenant-claim values that map to this tenant."""

    id: str
    app_user_id: str
    api_key_sha256: tuple[str, ...]
    requests_per_second: float | None = None
    burst: float | None = None
    oidc: tuple[tuple[str, tuple[str, ...]], ...] = ()
