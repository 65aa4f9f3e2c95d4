"""Signed cover-image links: a gateway URL that a browser loads as ``<img src>``, with no header.

A link names a job, a tenant, an expiry and a key id, and carries an HMAC-SHA256 over all four,
made under that key's secret::

    /v1/training-jobs/{job_id}/cover-image?tenant=acme&exp=1700000990&kid=k1&sig=<43 characters, base64url>

``check`` recomputes the MAC under the named key and compares it in constant time
(``hmac.compare_digest``) before it believes anything the link says; only then does it read the
expiry. A changed job, tenant, expiry or key id, a key id that is no longer listed, or a link
naming a tenant that no longer exists is ``Forbidden``; only a genuine link can be ``LinkExpired``.

Expiries are quantised so that a list fetched again within one step carries the same links (and,
if nothing else changed, the same bytes and ETag): ``exp`` is the end of the current step plus the
TTL. A link therefore lives longer than the TTL and at most the TTL plus one step, where a step is a
tenth of the TTL in whole seconds (at least 1). A body holding links is served (fresh or stale)
only while they have at least one step left (``serve_until``), so a page never gets a dying link.
Pure: no I/O, the time comes in as an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from gateway.config.url_signing import UrlSigningKey
from gateway.errors import Forbidden, LinkExpired
from gateway.jobs.shaping import job_path
from gateway.numbers import ascii_digits
from gateway.tenant import Tenant

LINK_PARAMETERS = ("tenant", "exp", "kid", "sig")
_CONTEXT = b"metastudio-gateway cover-image v1"
_MAX_EXP_DIGITS = 12
NOT_GENUINE = "this cover link is not valid (altered, another tenant's, or signed with a retired key)"


def cover_image_path(job_id: str) -> str:
    """The path of a job's cover-image link (before its query)."""
    return f"{job_path(job_id)}/cover-image"


def quantisation_step(ttl_seconds: int) -> int:
    """The step link expiries are rounded up to: a tenth of the TTL, in whole seconds, at least 1."""
    return max(1, ttl_seconds // 10)


class CoverImageLinks:
    """Makes and checks the signed cover-image links of a set of tenants."""

    def __init__(
        self,
        keys: Sequence[UrlSigningKey],
        tenants: Iterable[Tenant],
        *,
        ttl_seconds: int,
        base_url: str = "",
    ) -> None:
        if not keys:
            raise ValueError("at least one URL signing key is needed")
        self._signing = keys[0]
        self._secrets = {key.kid: key.secret for key in keys}
        self._tenants = {tenant.id: tenant for tenant in tenants}
        self._ttl = ttl_seconds
        self._step = quantisation_step(ttl_seconds)
        self._base_url = base_url.rstrip("/")

    def expiry(self, now: float) -> int:
        """When a link made at ``now`` expires: the end of the current step, plus the TTL."""
        return (math.floor(now / self._step) + 1) * self._step + self._ttl

    def serve_until(self, now: float) -> float:
        """The last moment a body holding links made at ``now`` may be served (one step left).
        A float, as every time an entry holds: a hit compares it with the clock, and CPython
        compares a float with an int past 2**30 (any Unix time) the slow way."""
        return float(self.expiry(now) - self._step)

    def urls(self, tenant_id: str, now: float) -> Callable[[str], str]:
        """The link to a job's cover for ``tenant_id``, made at ``now``, by job id: one maker for
        the jobs of a page, which share the expiry, the key and the start of the MAC."""
        exp = str(self.expiry(now))
        kid = self._signing.kid
        signer = _LinkSigner(self._signing.secret, tenant_id, exp, kid)
        base_url, query = self._base_url, f"?tenant={tenant_id}&exp={exp}&kid={kid}&sig="

        def url(job_id: str) -> str:
            return f"{base_url}{cover_image_path(job_id)}{query}{signer.signature(job_id)}"

        return url

    def check(self, job_id: str, link: Mapping[str, str], now: float) -> tuple[Tenant, float]:
        """The tenant a genuine, live link to ``job_id`` is for and the seconds it has left;
        ``link`` holds the query parameters (``LINK_PARAMETERS``). ``Forbidden`` if the link is not
        genuine (a parameter missing included), ``LinkExpired`` if it is but its time is up."""
        tenant_id, exp, kid, sig = (link.get(name, "") for name in LINK_PARAMETERS)
        secret = self._secrets.get(kid)
        tenant = self._tenants.get(tenant_id)
        if secret is None or tenant is None or not ascii_digits(exp) or len(exp) > _MAX_EXP_DIGITS:
            raise Forbidden(NOT_GENUINE)
        expected = _LinkSigner(secret, tenant_id, exp, kid).signature(job_id)
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "surrogateescape")):
            raise Forbidden(NOT_GENUINE)
        left = int(exp) - now
        if left <= 0:
            raise LinkExpired("this cover link has expired; fetch the job again for a new one")
        return tenant, left


class _LinkSigner:
    """The MACs of the links made under one key for one tenant and expiry: HMAC-SHA256 over
    ``context \\n tenant \\n job id \\n exp \\n kid``, base64url without padding. The fields cannot
    contain a newline (the route and the tenant and key id patterns exclude it), so the message is
    unambiguous. What every job's message starts with is hashed once, and copied per job (1.0
    against 1.5 µs a MAC)."""

    def __init__(self, secret: bytes, tenant_id: str, exp: str, kid: str) -> None:
        self._start = hmac.new(secret, b"\n".join((_CONTEXT, tenant_id.encode(), b"")), hashlib.sha256)
        self._end = b"\n".join((b"", exp.encode(), kid.encode()))

    def signature(self, job_id: str) -> str:
        """The MAC of ``job_id``'s link."""
        mac = self._start.copy()
        mac.update(job_id.encode() + self._end)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
