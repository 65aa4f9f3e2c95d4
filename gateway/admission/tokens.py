"""Who is calling: end-user JWTs (``Authorization: Bearer <JWT>``) to tenants.

A token is checked in this order, and refused (401 ``invalid_token``, with the reason in fixed
words that never quote the token or a claim) at the first rule it breaks:

1. at most ``MAX_TOKEN_BYTES``, before any parsing (PyJWT alone accepts a 267 KB token);
2. three base64url parts whose header is a JSON object; a ``crit`` header is refused;
3. ``iss`` equal, exactly, to a configured issuer's (it picks the issuer; no prefix or suffix);
4. ``typ``, when the header has one, naming a JWT or an access token (``JWT``, ``at+jwt``, with
   or without ``application/``, in any case): an IdP signs other kinds of JWT with the same keys
   (logout tokens, security event tokens), and those are no credential (RFC 8725 3.11, 2.8);
5. ``alg`` in that issuer's allow-list (asymmetric only: config refuses ``HS*`` and ``none``);
6. a ``kid`` naming one of the issuer's keys whose ``kty``/``crv``/``alg``/``use`` fit ``alg``;
7. the signature, ``iss``, ``aud`` (required, one of the configured audiences) and the presence
   of ``exp``, ``iss`` and ``aud``, by ``jwt.decode`` with ``algorithms=[alg]`` and the key object;
8. ``exp``, ``nbf`` and ``iat`` against the injected clock with the issuer's leeway (PyJWT reads
   the system clock, so its own time checks are off and these few comparisons are ours);
9. the tenant claim's value, with the issuer, names a tenant: else 403 ``forbidden``.

The issuer's keys unavailable (never fetched, or past the stale window): 503 ``auth_unavailable``.
An unknown ``kid`` may wait for the issuer's one shared refetch (``IssuerKeys.refetch``), in the
handler chain only; a bad signature under a known ``kid`` fetches nothing.

Verified tokens are remembered (``VERIFIED_TOKENS_KEPT`` and ``VERIFIED_TOKEN_BYTES`` at most,
oldest forgotten first), keyed by the
raw ``Authorization`` value, so a client's later requests cost a dict look-up and three
comparisons instead of a 40-70 µs signature check: the fast path answers them. A remembered
token stops working at ``exp`` (plus leeway), when its key leaves the issuer's key set, and
when the issuer's keys pass the stale window. Only tokens that verified and named a tenant are
kept, so forged tokens cannot fill it; and only headers sent plainly (``sent_plainly``): spaces
around a token are accepted, but kept they would make one token any number of entries, each as
long as a request head allows (32 KB). A refused token's verdict (invalid, or valid but naming
no tenant) is kept too, for ``REFUSAL_KEPT_SECONDS`` (``REFUSALS_KEPT`` at most), keyed by the
token itself, however it was sent, so the chain answers a token the fast path refused without
verifying it a second time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from gateway.admission.api_keys import bearer_credential, sent_plainly
from gateway.admission.jwks import FETCH_TIMEOUT_SECONDS, IssuerKeys, VerificationKey
from gateway.clock import Clock
from gateway.errors import AuthUnavailable, Forbidden, GatewayError, InvalidToken
from gateway.observability.metrics import Metrics
from gateway.tenant import Tenant

MAX_TOKEN_BYTES = 8192
VERIFIED_TOKENS_KEPT = 10_000
VERIFIED_TOKEN_BYTES = 16 * 1024 * 1024
"""The most the verified tokens remembered may hold, headers and bookkeeping: a token may be
8 KiB, and 10,000 of them held 79 MiB."""
VERIFIED_OVERHEAD_BYTES = 300
"""What remembering a verified token holds besides its header: its record and the dict's slot."""
REFUSALS_KEPT = 256
REFUSAL_KEPT_SECONDS = 1.0
"""How long an invalid token's verdict is kept: long enough that a token the fast path refused
reaches the chain without a second verification (a forged RS256 token costs ~110 µs to check),
short enough that one refused as not yet valid is checked again soon."""
REQUIRED_CLAIMS = ["exp", "iss", "aud"]
ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
"""The ``typ`` values (lower case) of a token that may be a credential; no ``typ`` is one too."""
UNKNOWN_ISSUER = "unknown"

REASONS = {
    "too_long": f"the token is longer than {MAX_TOKEN_BYTES} bytes",
    "malformed": "the token is malformed",
    "crit": "the token has critical header parameters (crit), which are not supported",
    "bad_issuer": "the token's issuer is not accepted",
    "wrong_type": "the token is not an access token (its typ names another kind of JWT)",
    "disallowed_alg": "the token's signature algorithm is not allowed",
    "no_kid": "the token names no key id (kid)",
    "unknown_kid": "the token's key id is not one of the issuer's keys",
    "key_mismatch": "the token's key does not fit its algorithm",
    "bad_signature": "the token's signature does not verify",
    "bad_audience": "the token's audience is not accepted",
    "missing_claim": "the token lacks a required claim (exp, iss and aud are required)",
    "bad_time_claim": "the token's exp, nbf or iat is not a finite number",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet (nbf)",
    "issued_in_future": "the token is issued in the future (iat)",
    "invalid": "the token is invalid",
}
"""Each refusal's metric label and the words the caller is told."""
_PYJWT_RESULTS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAudienceError, "bad_audience"),
    (jwt.InvalidIssuerError, "bad_issuer"),
    (jwt.InvalidAlgorithmError, "disallowed_alg"),
    (jwt.DecodeError, "malformed"),
)


class _Refused(Exception):
    """A token refused: the error the caller sees and the metric labels of the refusal."""

    def __init__(self, error: GatewayError, issuer: str, result: str) -> None:
        super().__init__(result)
        self.error = error
        self.issuer = issuer
        self.result = result


def _invalid(issuer: str, result: str) -> _Refused:
    return _Refused(InvalidToken(REASONS[result]), issuer, result)


NO_TENANT = "no_tenant"


def _refusal(issuer: str, result: str) -> _Refused:
    """The refusal for ``result`` (a kept one, made anew too): 403 for a valid token naming no tenant, else 401."""
    if result == NO_TENANT:
        return _Refused(Forbidden("the token is valid but names no tenant of this gateway"), issuer, result)
    return _invalid(issuer, result)


class _KeysPending(Exception):
    """The token cannot be checked with the keys held (unknown kid, no usable keys): a fetch may
    bring them; ``refusal`` stands if none does."""

    def __init__(self, keys: IssuerKeys, refusal: _Refused) -> None:
        super().__init__(refusal.result)
        self.keys = keys
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class _Verified:
    tenant: Tenant
    expires_at: float
    keys: IssuerKeys
    key: VerificationKey


def looks_like_jwt(authorization: str | None) -> bool:
    """Whether a bearer credential is meant as a JWT (it has a dot): one that is not an API key is
    then refused as a token, with the reason."""
    credential = bearer_credential(authorization)
    return credential is not None and "." in credential


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, read without trusting it (PyJWT would refuse ``crit`` with no reason)."""
    encoded = token.partition(".")[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        header = None
    if not isinstance(header, dict):
        raise ValueError("not a JOSE header")
    return header


def _number(value: Any) -> float:
    """A time claim as a float; ``TypeError`` unless it is a finite number (JSON as Python reads
    it has ``NaN`` and ``Infinity``, against which every comparison passes, and integers past a
    float's range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    try:
        number = float(value)
    except OverflowError:
        raise TypeError("not a finite number") from None
    if not math.isfinite(number):
        raise TypeError("not a finite number")
    return number


class TokenAuthenticator:
    """Finds the tenant an ``Authorization: Bearer <JWT>`` header belongs to."""

    def __init__(
        self, issuers: Iterable[IssuerKeys], tenants: Iterable[Tenant], clock: Clock, metrics: Metrics
    ) -> None:
        self._issuers = {keys.settings.issuer: keys for keys in issuers}
        self._tenants = {
            (issuer, value): tenant for tenant in tenants for issuer, values in tenant.oidc for value in values
        }
        self._clock = clock
        self._metrics = metrics
        self._verified: dict[str | None, _Verified] = {}
        self._verified_bytes = 0
        """What the verified tokens remembered hold, as ``VERIFIED_TOKEN_BYTES`` counts it."""
        self._refused: dict[str, tuple[float, str, str]] = {}
        """Tokens refused in the last ``REFUSAL_KEPT_SECONDS``, by the token itself (at most
        ``REFUSALS_KEPT`` of ``MAX_TOKEN_BYTES`` each): when (monotonic), the issuer, the result."""

    def cached(self, authorization: str | None) -> Tenant | None:
        """The tenant of an already verified token that is still good, else ``None``."""
        entry = self._verified.get(authorization)
        if entry is None:
            return None
        now = self._clock.now()
        keys = entry.keys
        if now < entry.expires_at and now < keys.usable_until and keys.keys.get(entry.key.kid) is entry.key:
            if now >= keys.refresh_due_at:
                keys.nudge()
            return entry.tenant
        self._forget_verified(authorization)
        return None

    def _forget_verified(self, authorization: str | None) -> None:
        del self._verified[authorization]
        self._verified_bytes -= len(authorization or "") + VERIFIED_OVERHEAD_BYTES

    def find(self, authorization: str) -> Tenant | None:
        """The tenant of a token checked with the keys held, else ``None`` (why is not said, and
        nothing is waited for: the fast path asks this, and hands anything else to the chain)."""
        try:
            return self._admit(authorization)
        except (_Refused, _KeysPending):
            return None

    async def authenticate(self, authorization: str) -> Tenant:
        """The tenant of a token; a failure raises the error the caller sees. An unknown kid, or an
        issuer with no usable keys, waits (bounded) for the issuer's one shared key fetch first."""
        try:
            return self.cached(authorization) or self._admit(authorization)
        except _KeysPending as pending:
            fetch = pending.keys.refetch()
            if fetch is None:
                raise self._count(pending.refusal) from None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fetch), FETCH_TIMEOUT_SECONDS)
        except _Refused as refusal:
            raise self._count(refusal) from None
        try:
            return self._admit(authorization)
        except _KeysPending as pending:
            raise self._count(pending.refusal) from None
        except _Refused as refusal:
            raise self._count(refusal) from None

    def _remember_refusal(self, token: str, refusal: _Refused) -> None:
        # Not kept: a token refused as too long, whose entry would be larger than ``MAX_TOKEN_BYTES``.
        if refusal.result == "too_long":
            return
        if len(self._refused) >= REFUSALS_KEPT:
            del self._refused[next(iter(self._refused))]
        self._refused[token] = (self._clock.monotonic(), refusal.issuer, refusal.result)

    def _count(self, refusal: _Refused) -> GatewayError:
        self._metrics.jwt_validations.labels(issuer=refusal.issuer, result=refusal.result).inc()
        return refusal.error

    def _admit(self, authorization: str) -> Tenant:
        """Verify the token, remember it, and return its tenant; an invalid token's refusal is
        remembered for ``REFUSAL_KEPT_SECONDS`` and given again without a second verification."""
        token = bearer_credential(authorization) or ""
        kept = self._refused.get(token)
        if kept is not None:
            refused_at, issuer, result = kept
            if self._clock.monotonic() - refused_at < REFUSAL_KEPT_SECONDS:
                raise _refusal(issuer, result)
            del self._refused[token]
        try:
            verified = self._verify(token)
        except _Refused as refusal:
            self._remember_refusal(token, refusal)
            raise
        self._metrics.jwt_validations.labels(issuer=verified.keys.settings.name, result="ok").inc()
        if not sent_plainly(authorization, token):  # accepted, not remembered (the module docstring)
            return verified.tenant
        if authorization in self._verified:
            self._forget_verified(authorization)
        size = len(authorization) + VERIFIED_OVERHEAD_BYTES
        while self._verified and (
            len(self._verified) >= VERIFIED_TOKENS_KEPT or self._verified_bytes + size > VERIFIED_TOKEN_BYTES
        ):
            self._forget_verified(next(iter(self._verified)))
        self._verified[authorization] = verified
        self._verified_bytes += size
        return verified.tenant

    def _verify(self, token: str) -> _Verified:
        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid(UNKNOWN_ISSUER, "too_long")
        try:
            header = _header(token)
            claims = jwt.decode(token, options={"verify_signature": False}) if "crit" not in header else {}
        except (ValueError, jwt.InvalidTokenError):
            raise _invalid(UNKNOWN_ISSUER, "malformed") from None
        if "crit" in header:
            raise _invalid(UNKNOWN_ISSUER, "crit")
        claimed_issuer = claims.get("iss")  # any JSON value: a list or object is unhashable
        keys = self._issuers.get(claimed_issuer) if isinstance(claimed_issuer, str) else None
        if keys is None:
            raise _invalid(UNKNOWN_ISSUER, "bad_issuer")
        issuer = keys.settings
        kind = header.get("typ")
        if kind is not None and not (isinstance(kind, str) and kind.lower() in ACCESS_TOKEN_TYPES):
            raise _invalid(issuer.name, "wrong_type")
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in issuer.algorithms:
            raise _invalid(issuer.name, "disallowed_alg")
        if not isinstance(kid, str):
            raise _invalid(issuer.name, "no_kid")
        now = self._clock.now()
        if now >= keys.usable_until:
            refusal = _Refused(AuthUnavailable(keys.retry_after(now)), issuer.name, "keys_unavailable")
            raise _KeysPending(keys, refusal)
        key = keys.keys.get(kid)
        if key is None:
            raise _KeysPending(keys, _invalid(issuer.name, "unknown_kid"))
        if not key.fits(algorithm):
            raise _invalid(issuer.name, "key_mismatch")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=issuer.audiences,
                issuer=issuer.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            result = next((result for kind, result in _PYJWT_RESULTS if isinstance(exc, kind)), "invalid")
            raise _invalid(issuer.name, result) from None
        leeway = issuer.leeway_seconds
        try:
            expires = _number(claims["exp"])
            not_before = _number(claims.get("nbf", -leeway))
            issued = _number(claims.get("iat", -leeway))
        except TypeError:
            raise _invalid(issuer.name, "bad_time_claim") from None
        if expires <= now - leeway:
            raise _invalid(issuer.name, "expired")
        if not_before > now + leeway:
            raise _invalid(issuer.name, "not_yet_valid")
        if issued > now + leeway:
            raise _invalid(issuer.name, "issued_in_future")
        value = claims.get(issuer.tenant_claim)
        tenant = self._tenants.get((issuer.name, value)) if isinstance(value, str) else None
        if tenant is None:
            raise _refusal(issuer.name, NO_TENANT)
        return _Verified(tenant, expires + leeway, keys, key)
