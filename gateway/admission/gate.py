"""The admission seam: who is calling, and may they pass now.

One synchronous API that the fast path (inside the connection's ``data_received``) and the
handler chain both call, so there is one copy of each decision:

* ``caller(authorization)``: the tenant the credential names, or ``None``. No side effects, so
  the fast path can ask before it knows it will answer.
* ``authenticate(authorization)``: the same, or ``Unauthenticated`` saying why.
* ``retry_after(tenant)``: take one rate-limit token; 0 to pass, else the seconds to wait.
* ``pass_now(tenant)``: the same, or ``RateLimited``.

The rule for what comes next (JWTs, shared rate limits): nothing here waits on the network.
Anything shared or remote (Redis, an issuer's JWKS) sits behind a local synchronous front that
is fed in the background, and this seam reads only that front.
"""

from __future__ import annotations

from gateway.admission.api_keys import TenantDirectory
from gateway.admission.rate_limit import RateLimiter
from gateway.errors import RateLimited
from gateway.tenant import Tenant


class Admission:
    """Authentication and the rate-limit decision, for both ways a request is answered."""

    def __init__(self, api_keys: TenantDirectory, rate_limiter: RateLimiter) -> None:
        self._api_keys = api_keys
        self._rate_limiter = rate_limiter

    def caller(self, authorization: str | None) -> Tenant | None:
        """The tenant an ``Authorization`` header names, or ``None``; nothing is consumed."""
        return self._api_keys.find(authorization)

    def authenticate(self, authorization: str | None) -> Tenant:
        """The tenant an ``Authorization`` header names; ``Unauthenticated`` saying why if none."""
        return self._api_keys.authenticate(authorization)

    def retry_after(self, tenant: Tenant) -> int:
        """Take one of the tenant's rate-limit tokens: 0 to pass, else whole seconds to wait."""
        return self._rate_limiter.retry_after(tenant.id)

    def pass_now(self, tenant: Tenant) -> None:
        """Take one token, or raise ``RateLimited`` with the seconds to wait."""
        retry_after = self.retry_after(tenant)
        if retry_after:
            raise RateLimited(retry_after)
