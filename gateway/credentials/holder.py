"""The credentials holder: the local, synchronous front the upstream client asks, per attempt,
how to authenticate; fed in the background so no request waits on a credential endpoint while
valid credentials are held.

``RefreshingHolder`` keeps one ``Issued`` (AK, SK and token, or an IAM token, swapped as one
object) from a ``Provider``:

* renewal is due when less than min(40 min, half the lifetime) remains (``Issued.renew_at``);
  a background task notices it (re-reading the clock at least every ``TICK_SECONDS``), and so
  does the first request to look after that moment;
* one fetch at a time: whoever finds renewal due joins the fetch in flight, if any;
* the old credentials serve until they expire; a failed fetch is retried after 1 s, doubling to
  60 s, counted and logged, and never fails a request while valid credentials are held;
* an upstream 401/403 forces one fetch (``renew_refused``), unless the refused credentials
  were already replaced, and at most one every ``FORCED_RENEWAL_SECONDS``: a refusal that
  renewing does not cure (the identity lacks a MetaStudio permission) must not make every
  request a credential fetch (a login, for an IAM token) as well as a second upstream call.

``StaticHolder`` puts the static keys (``static.CredentialSource``) behind the same front: they
never expire, and a refusal re-reads their files; the call is retried only if they changed.

Nothing logged or raised here contains a secret: sources are named, values never.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import aiohttp

from gateway.clock import Clock, rfc3339
from gateway.credentials.issued import CredentialsUnavailable, FetchFailed, Grant, Issued, UpstreamAuth
from gateway.credentials.providers import Provider
from gateway.credentials.static import CredentialsError, CredentialSource
from gateway.observability.metrics import Metrics
from gateway.outbound import Outbound, Proxies

logger = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
TICK_SECONDS = 1.0  # the background renewal re-reads the clock at least this often
FORCED_RENEWAL_SECONDS = 30.0
"""At most one renewal forced by a refusal this often (on the monotonic clock); refusals in
between are answered as refusals, with no fetch and no retry."""


class CredentialsHolder(Protocol):
    """What the upstream client and the app need from any credential source."""

    @property
    def source(self) -> str:
        """The source's name: a metric label and what ``check-config`` reports."""
        ...

    def describe(self) -> str:
        """Where the credentials come from, in one line without secrets."""
        ...

    def valid(self) -> bool:
        """Whether unexpired credentials are held now (readiness)."""
        ...

    def authorization(self) -> UpstreamAuth:
        """How to authenticate an attempt now; raises ``CredentialsUnavailable`` when nothing
        valid is held. Never waits on the network."""
        ...

    async def renew_refused(self, refused: UpstreamAuth) -> bool:
        """The upstream refused ``refused``: renew once (joining a renewal in flight); whether
        retrying is worth it."""
        ...

    async def confirm(self, proxies: Proxies) -> None:
        """Before serving: check a source that only an answer can confirm, through ``proxies``;
        raises ``CredentialsError``."""
        ...

    def running(self, session: Outbound, metrics: Metrics) -> contextlib.AbstractAsyncContextManager[None]:
        """Keep the credentials current while the block runs (the app's lifetime)."""
        ...


class StaticHolder:
    """Static keys (environment, ``_FILE`` or profile) behind the holder's front."""

    def __init__(self, keys: CredentialSource, *, source: str = "static", description: str | None = None) -> None:
        self._keys = keys
        self._source = source
        self._description = description
        self._generation = keys.generation
        self._metrics: Metrics | None = None

    @property
    def source(self) -> str:
        return self._source

    def describe(self) -> str:
        return (
            self._description or f"credentials: {self._source} ({self._keys.describe().removeprefix('credentials: ')})"
        )

    def valid(self) -> bool:
        return True

    def authorization(self) -> UpstreamAuth:
        credentials = self._keys.current()
        if self._keys.generation != self._generation:
            self._generation = self._keys.generation
            if self._metrics is not None:
                self._metrics.credential_reloads.labels(trigger="file_changed").inc()
        return credentials

    async def renew_refused(self, refused: UpstreamAuth) -> bool:
        if self._keys.current() is not refused:
            return True  # already replaced since that attempt
        self._keys.reload()
        if self._metrics is not None:
            self._metrics.credential_reloads.labels(trigger="upstream_auth_failure").inc()
        self._generation = self._keys.generation
        return self._keys.current() is not refused  # the same keys would be refused again

    async def confirm(self, proxies: Proxies) -> None:
        return None

    @asynccontextmanager
    async def running(self, session: Outbound, metrics: Metrics) -> AsyncIterator[None]:
        self._metrics = metrics
        yield


class RefreshingHolder:
    """Temporary credentials or IAM tokens from ``provider``, renewed ahead of expiry."""

    def __init__(
        self,
        provider: Provider,
        *,
        clock: Clock,
        must_answer: Sequence[str] | None = None,
    ) -> None:
        """``must_answer``: the source is a last resort (auto mode's ECS metadata); ``confirm``
        fetches once and, if that fails, refuses with these reasons plus its own."""
        self._provider = provider
        self._clock = clock
        self._must_answer = None if must_answer is None else list(must_answer)
        self._held: Issued | None = None
        self._renew_at = clock.now()
        """When renewal is due, on the wall clock: the cloud's expiry sets it."""
        self._retry_at = 0.0
        """After a failure, when the backoff ends, on the monotonic clock."""
        self._failures = 0
        self._forced_at: float | None = None
        """When a refusal last forced a renewal, on the monotonic clock."""
        self._flight: asyncio.Task[bool] | None = None
        self._session: Outbound | None = None
        self._metrics: Metrics | None = None

    @property
    def source(self) -> str:
        return self._provider.source

    def describe(self) -> str:
        last_resort = (
            " (auto mode's last resort: serve refuses to start unless it answers at once)"
            if self._must_answer is not None
            else ""
        )
        return f"credentials: {self.source}: {self._provider.describe()}, renewed ahead of expiry{last_resort}"

    def valid(self) -> bool:
        held = self._held
        return held is not None and self._clock.now() < held.expires_at

    def expiry(self) -> float:
        """When the held credentials expire (Unix seconds); 0 when none are held."""
        return self._held.expires_at if self._held is not None else 0.0

    def authorization(self) -> UpstreamAuth:
        held = self._held
        now = self._clock.now()
        if self._until_due(now) <= 0:
            self._start_fetch()
        if held is None or now >= held.expires_at:
            raise CredentialsUnavailable(f"no unexpired credentials from {self.source} yet")
        return held.auth

    async def renew_refused(self, refused: UpstreamAuth) -> bool:
        held = self._held
        if held is not None and held.auth is not refused:
            return True  # already replaced since that attempt
        if self._failures and self._until_due(self._clock.now()) > 0:
            return False  # the source is failing: its backoff holds for forced renewals too
        flight = self._flight
        if flight is None or flight.done():  # else join the fetch in flight
            monotonic = self._clock.monotonic()
            if self._forced_at is not None and monotonic - self._forced_at < FORCED_RENEWAL_SECONDS:
                return False  # the last forced renewal did not cure the refusal: no fetch per request
            flight = self._start_fetch()
            if flight is None:
                return False
            self._forced_at = monotonic
            if self._metrics is not None:
                self._metrics.credential_reloads.labels(trigger="upstream_auth_failure").inc()
        return await asyncio.shield(flight)

    async def confirm(self, proxies: Proxies) -> None:
        if self._must_answer is None or self._held is not None:
            return
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            try:
                self._accept(await self._provider.fetch(Outbound(session, proxies)))
            except FetchFailed as exc:  # said once, in the refusal: nothing is serving yet
                raise CredentialsError([*self._must_answer, f"{self.source}: {exc}"]) from exc
            except Exception as exc:  # a provider bug: a refusal too, not a traceback
                raise CredentialsError([*self._must_answer, f"{self.source}: unexpected {type(exc).__name__}"]) from exc

    @asynccontextmanager
    async def running(self, session: Outbound, metrics: Metrics) -> AsyncIterator[None]:
        self._session = session
        self._metrics = metrics
        for result in ("success", "failure"):
            metrics.credential_refreshes.labels(source=self.source, result=result)
        metrics.watch_credential_expiry(self.expiry)
        loop = asyncio.create_task(self._renew_in_background())
        try:
            yield
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            if self._flight is not None and not self._flight.done():
                self._flight.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flight
            self._session = None

    async def _renew_in_background(self) -> None:
        while True:
            due_in = self._until_due(self._clock.now())
            flight = self._start_fetch() if due_in <= 0 else None
            if flight is not None:
                await asyncio.shield(flight)
                continue
            # Real sleep, bounded by the tick: an injected clock moved meanwhile is noticed soon.
            await asyncio.sleep(min(TICK_SECONDS, max(due_in, 0.01)))

    def _until_due(self, now: float) -> float:
        """Seconds until the next fetch is due (0 or less: due now). After a failure the backoff
        runs on the monotonic clock: a step back of the wall clock must not stretch it by the step
        (an hour's step would leave the held credentials to expire unrenewed)."""
        if self._failures:
            return self._retry_at - self._clock.monotonic()
        return self._renew_at - now

    def _start_fetch(self) -> asyncio.Task[bool] | None:
        """The fetch in flight, starting one if none is (and the app is running)."""
        if self._flight is None or self._flight.done():
            if self._session is None:
                return None
            self._flight = asyncio.get_running_loop().create_task(self._fetch())
        return self._flight

    async def _fetch(self) -> bool:
        assert self._session is not None
        try:
            issued = self._accept(await self._provider.fetch(self._session))
        except FetchFailed as exc:
            self._record_failure(str(exc))
            return False
        except Exception as exc:  # a provider bug must not end the renewal loop
            self._record_failure(f"unexpected {type(exc).__name__}")
            return False
        if self._metrics is not None:
            self._metrics.credential_refreshes.labels(source=self.source, result="success").inc()
        logger.info(
            "credentials from %s obtained, valid until %s, renewal due at %s",
            self.source,
            rfc3339(issued.expires_at),
            rfc3339(issued.renew_at),
        )
        return True

    def _accept(self, grant: Grant) -> Issued:
        """Hold ``grant`` from now on (one assignment: AK, SK and token change together)."""
        now = self._clock.now()
        issued = Issued(grant.auth, grant.expires_at, now)
        if issued.expires_at <= now:
            raise FetchFailed(f"answered credentials that expired at {rfc3339(issued.expires_at)}")
        self._held = issued
        self._failures = 0
        self._renew_at = issued.renew_at
        return issued

    def _record_failure(self, reason: str) -> None:
        self._failures += 1
        delay = min(BACKOFF_FIRST_SECONDS * 2 ** (self._failures - 1), BACKOFF_MAX_SECONDS)
        now = self._clock.now()
        self._retry_at = self._clock.monotonic() + delay
        if self._metrics is not None:
            self._metrics.credential_refreshes.labels(source=self.source, result="failure").inc()
        held = self._held
        still = (
            f"; the held ones stay valid until {rfc3339(held.expires_at)}"
            if held is not None and now < held.expires_at
            else "; no valid credentials held"
        )
        logger.warning("credentials from %s not renewed: %s; next try in %g s%s", self.source, reason, delay, still)
