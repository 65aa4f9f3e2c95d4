"""The admission seam: who is calling, and may they pass now.

One synchronous API that the fast path (inside the connection's ``data_received``) and the
handler chain both call, so there is one copy of each decision:

* ``caller(authorization)``: the tenant the credential names, or ``None``. No side effects (but
  remembering a token it verified, or refused as invalid for a second), so the fast path can
  ask before it knows it will answer. It never waits: a JWT it cannot check with the keys held
  (unknown ``kid``) gets ``None``.
* ``authenticate(authorization)`` (a coroutine, for the chain): the same, or the error saying why
  (401, 403, 503). It may wait, bounded, for the one shared fetch of an issuer's keys.
* ``retry_after(tenant)``: take one rate-limit token; 0 to pass, else the seconds to wait.
* ``pass_now(tenant)``: the same, or ``RateLimited``.

The credential is an API key (``gateway.admission.api_keys``) or, when ``[[oidc.issuers]]`` are
configured, an end-user JWT (``gateway.admission.tokens``); an API key is always tried first, so
existing keys work exactly as before. Nothing here waits on the network but ``authenticate``'s
bounded wait for keys: anything shared or remote (Redis, an issuer's JWKS) sits behind a local
synchronous front that is fed in the background, and this seam reads only that front.
"""

from __future__ import annotations

from gateway.admission.api_keys import TenantDirectory
from gateway.admission.rate_limit import RateLimiter
from gateway.admission.tokens import TokenAuthenticator, looks_like_jwt
from gateway.errors import RateLimited
from gateway.tenant import Tenant


class Admission:
    """Authentication and the rate-limit decision, for both ways a request is answered."""

    def __init__(
        self, api_keys: TenantDirectory, rate_limiter: RateLimiter, tokens: TokenAuthenticator | None = None
    ) -> None:
        self._api_keys = api_keys
        self._rate_limiter = rate_limiter
        self._tokens = tokens

    def caller(self, authorization: str | None) -> Tenant | None:
        """The tenant an ``Authorization`` header names, or ``None``; nothing is consumed."""
        tokens = self._tokens
        if tokens is None:
            return self._api_keys.find(authorization)
        tenant = tokens.cached(authorization) or self._api_keys.find(authorization)
        if tenant is None and authorization is not None and looks_like_jwt(authorization):
            tenant = tokens.find(authorization)
        return tenant

    async def authenticate(self, authorization: str | None) -> Tenant:
        """The tenant an ``Authorization`` header names; else the error saying why (401
        ``Unauthenticated``/``InvalidToken``, 403 ``Forbidden``, 503 ``AuthUnavailable``)."""
        tokens = self._tokens
        if tokens is None or authorization is None or not looks_like_jwt(authorization):
            return self._api_keys.authenticate(authorization)
        return self._api_keys.find(authorization) or await tokens.authenticate(authorization)

    def retry_after(self, tenant: Tenant) -> int:
        """Take one of the tenant's rate-limit tokens: 0 to pass, else whole seconds to wait."""
        return self._rate_limiter.retry_after(tenant.id)

    def pass_now(self, tenant: Tenant) -> None:
        """Take one token, or raise ``RateLimited`` with the seconds to wait."""
        retry_after = self.retry_after(tenant)
        if retry_after:
            raise RateLimited(retry_after)
