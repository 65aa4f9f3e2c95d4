"""An issuer's signing keys: a synchronous front the admission seam reads, fed in the background.

``IssuerKeys`` holds the last good key set of one ``[[oidc.issuers]]`` table. The seam only reads
it (a dict look-up), so a request never waits on the identity provider there. One background
task per issuer (``JwksKeepers``, on the app's client session) fills it:

* it fetches at start (start-up does not wait for it: API-key tenants work at once), then every
  ``jwks_refresh_seconds``; after a failed fetch it tries again after the refetch cooldown;
* a token with an unknown ``kid`` may ask for a fetch (``refetch``): there is at most one per
  ``jwks_refetch_cooldown_seconds``, and everyone who asks while one is under way shares it;
  a bad signature under a known ``kid`` never asks;
* an answer that is not a JWKS, or holds no usable signing key, never replaces the keys held;
* the keys are read from ``jwks_uri`` itself (https, or http to a loopback address: see the
  settings): a redirect is a failed fetch, not followed;
* the keys held stay usable ``jwks_stale_if_error_seconds`` past the refresh that is due, then
  the issuer's tokens get 503 ``auth_unavailable`` until a fetch succeeds.

Time comes from the injected clock. The keeper sleeps until the clock says a refresh is due;
a reader that finds a refresh overdue (``nudge``) wakes it, so a test clock that jumps is
honoured at the next request.

Why not PyJWT's ``PyJWKClient``: it fetches with ``urllib`` on the caller's thread, inside the
request, and refetches on every unknown ``kid`` with no cooldown shared by concurrent callers.
Keys are still parsed by PyJWT (``PyJWK``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import orjson

from gateway.bounded_reads import read_at_most
from gateway.clock import Clock, rfc3339
from gateway.config.settings import OidcIssuer
from gateway.observability.metrics import Metrics
from gateway.outbound import Outbound
from gateway.tls import tls_reason

logger = logging.getLogger(__name__)

ALGORITHM_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
"""The key type (and curve) each accepted algorithm needs."""
MAX_JWKS_BYTES = 256 * 1024
FETCH_TIMEOUT_SECONDS = 5.0
FETCH_RESULTS = ("ok", "error", "bad_status", "garbage")


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """One usable public signing key of a JWKS."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None
    """The JWK's own ``alg``, when it names one: then only that algorithm may use it."""
    key: Any
    """The public key object PyJWT verifies with."""
    source: bytes
    """The JWK as canonical JSON: a refresh that returns the same key keeps this object."""

    def fits(self, algorithm: str) -> bool:
        """Whether a token signed with ``algorithm`` may be checked with this key."""
        kty, crv = ALGORITHM_KEY_TYPES[algorithm]
        return (self.alg is None or self.alg == algorithm) and self.kty == kty and (crv is None or self.crv == crv)


def _verification_key(jwk: Any, algorithms: Iterable[str]) -> VerificationKey | None:
    """The key a JWK describes, if it is a public signing key one of ``algorithms`` can use, of at
    least PyJWT's minimum length for it."""
    if not isinstance(jwk, dict) or "d" in jwk:  # "d": private material has no place in a JWKS
        return None
    kid, kty, crv, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    operations = jwk.get("key_ops")
    if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
        return None
    if operations is not None and (not isinstance(operations, list) or "verify" not in operations):
        return None
    if (
        not isinstance(kty, str)
        or not (crv is None or isinstance(crv, str))
        or not (alg is None or isinstance(alg, str))
    ):
        return None
    probe = VerificationKey(kid, kty, crv, alg, None, b"")
    algorithm = next((name for name in algorithms if probe.fits(name)), None)
    if algorithm is None:
        return None
    try:
        parsed = jwt.PyJWK(jwk, algorithm)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return None
    if parsed.Algorithm.check_key_length(parsed.key) is not None:  # under PyJWT's minimum: RSA under 2048 bits
        return None
    return VerificationKey(kid, kty, crv, alg, parsed.key, orjson.dumps(jwk, option=orjson.OPT_SORT_KEYS))


def parse_jwks(body: bytes, algorithms: Iterable[str]) -> dict[str, VerificationKey]:
    """The usable signing keys of a JWKS document, by kid; ``ValueError`` if it is not a JWKS or
    holds none (a kid given twice is ambiguous: neither is used)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("no keys array")
    allowed = tuple(algorithms)
    keys: dict[str, VerificationKey] = {}
    repeated: set[str] = set()
    for entry in entries:
        key = _verification_key(entry, allowed)
        if key is not None:
            if key.kid in keys:
                repeated.add(key.kid)
            keys[key.kid] = key
    for kid in repeated:
        del keys[kid]
    if not keys:
        raise ValueError("no usable signing key")
    return keys


class IssuerKeys:
    """One issuer's keys as last fetched, and the schedule of the fetches that renew them."""

    def __init__(self, issuer: OidcIssuer, clock: Clock, metrics: Metrics) -> None:
        self.settings = issuer
        self.keys: dict[str, VerificationKey] = {}
        self.usable_until = -math.inf
        """The keys serve until then (clock time): a due refresh plus the stale window."""
        self.refresh_due_at = -math.inf
        self._fetched_at: float | None = None
        self._clock = clock
        self._metrics = metrics
        self._last_fetch_started = -math.inf
        """When the last fetch began, on the monotonic clock: the refetch cooldown runs from it."""
        self._failing = ""
        """Why the last fetch failed, as logged; empty once one succeeds."""
        self._in_flight: asyncio.Future[None] | None = None
        self._wake: asyncio.Event | None = None
        metrics.jwks_age.labels(issuer=issuer.name).set_function(self.age)
        for result in FETCH_RESULTS:
            metrics.jwks_fetches.labels(issuer=issuer.name, result=result)

    def age(self) -> float:
        """Seconds since the keys held were fetched (infinite before the first good fetch)."""
        return math.inf if self._fetched_at is None else max(0.0, self._clock.now() - self._fetched_at)

    def retry_after(self, now: float) -> int:
        """Whole seconds until the next fetch may bring keys (at least 1)."""
        cooldown_left = self._last_fetch_started + self.settings.jwks_refetch_cooldown_seconds - self._clock.monotonic()
        return max(1, math.ceil(max(self.refresh_due_at - now, cooldown_left)))

    def nudge(self) -> None:
        """Wake the keeper: a reader found its refresh overdue by the clock (it sleeps on the
        same clock, so a test clock that jumps would otherwise not wake it)."""
        if self._wake is not None:
            self._wake.set()

    def refetch(self) -> asyncio.Future[None] | None:
        """A fetch a request may wait for (an unknown kid, no keys yet): the one under way, else a
        new one if the cooldown since the last allows it; ``None`` when there is none to wait for."""
        if self._in_flight is not None:
            return self._in_flight
        now = self._clock.monotonic()
        if self._wake is None or now - self._last_fetch_started < self.settings.jwks_refetch_cooldown_seconds:
            return None
        self._last_fetch_started = now
        self._in_flight = asyncio.get_running_loop().create_future()
        self._wake.set()
        return self._in_flight

    async def keep_fresh(self, session: Outbound) -> None:
        """Fetch now, then whenever a refresh is due or a fetch is asked for, until cancelled."""
        wake = self._wake = asyncio.Event()
        while True:
            fetch = self._in_flight or asyncio.get_running_loop().create_future()
            self._in_flight = fetch
            try:
                await self._fetch(session)
            finally:
                self._in_flight = None
                fetch.set_result(None)
            wake.clear()  # nudges during the fetch asked for what it just did
            with contextlib.suppress(TimeoutError):
                # At most the refresh interval: the wall clock may have stepped back during the fetch.
                due_in = min(self.settings.jwks_refresh_seconds, self.refresh_due_at - self._clock.now())
                await asyncio.wait_for(wake.wait(), max(0.0, due_in))

    async def _fetch(self, session: Outbound) -> None:
        started = self._clock.now()
        self._last_fetch_started = self._clock.monotonic()
        result, why = "ok", ""
        try:
            async with session.request(
                "GET",
                self.settings.jwks_uri,
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS),
                allow_redirects=False,  # the keys come from the URL configured, nowhere else
            ) as response:
                if response.status != 200:
                    result, why = "bad_status", f"the key set's URL answered {response.status}"
                    if 300 <= response.status < 400:
                        why += " (a redirect: it is not followed; configure the URL it points to)"
                else:
                    body = await read_at_most(response, MAX_JWKS_BYTES)
                    if body is None:
                        raise ValueError("too large")
                    self._install(parse_jwks(body, self.settings.algorithms))
        except aiohttp.ClientConnectorCertificateError as exc:
            result, why = "error", f"TLS with the identity provider failed: {tls_reason(exc.certificate_error)}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            result, why = "error", f"the key set could not be fetched ({type(exc).__name__})"
        except ValueError as exc:
            result, why = "garbage", f"the key set is not usable ({exc})"
        except Exception as exc:  # a bug: said, and counted; the keeper must go on fetching
            logger.exception("JWKS fetch for %s failed unexpectedly", self.settings.name)
            result, why = "error", f"unexpected {type(exc).__name__}"
        self._metrics.jwks_fetches.labels(issuer=self.settings.name, result=result).inc()
        self._say(why)
        if result == "ok":
            self._fetched_at = started
            self.refresh_due_at = started + self.settings.jwks_refresh_seconds
            self.usable_until = self.refresh_due_at + self.settings.jwks_stale_if_error_seconds
        else:
            self.refresh_due_at = started + self.settings.jwks_refetch_cooldown_seconds

    def _say(self, why: str) -> None:
        """Log a failure when it starts or changes (with what the issuer's tokens meet meanwhile),
        and the recovery; a failure going on is counted, not logged again each time."""
        if why == self._failing:
            return
        name = self.settings.name
        if not why:
            logger.info("JWKS fetch for %s works again", name)
        elif self._clock.now() < self.usable_until:
            until = rfc3339(self.usable_until)
            logger.warning("JWKS fetch for %s failed: %s; the keys held stay in use until %s", name, why, until)
        else:
            logger.warning("JWKS fetch for %s failed: %s; its tokens are refused (503) meanwhile", name, why)
        self._failing = why

    def _install(self, fetched: dict[str, VerificationKey]) -> None:
        # An unchanged key keeps its object: tokens verified with it stay in the verified cache.
        held = self.keys
        self.keys = {
            kid: old if (old := held.get(kid)) is not None and old.source == key.source else key
            for kid, key in fetched.items()
        }


class JwksKeepers:
    """The background tasks that keep each issuer's keys, on the app's one client session."""

    def __init__(self, issuers: Iterable[IssuerKeys]) -> None:
        self._issuers = tuple(issuers)

    @contextlib.asynccontextmanager
    async def running(self, session: Outbound) -> AsyncIterator[None]:
        """Keep the keys fresh while the block runs (start-up does not wait for the first fetch)."""
        tasks = [asyncio.create_task(keys.keep_fresh(session)) for keys in self._issuers]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
