"""The MetaStudio client: headers built by allow-list, every attempt freshly authenticated.

Per attempt the client asks the credentials holder how to authenticate (never waiting on a
credential endpoint): AK/SK (with ``X-Security-Token``, signed, for temporary credentials) to
sign the request with, or an IAM token to send as ``X-Auth-Token`` with no signature headers.
An upstream 401/403 asks the holder to renew once, then the call is retried once.

Nothing from a caller's request reaches the upstream: the client builds the request from the
validated query and the tenant's ``app_user_id`` alone, and sends it on the upstream's
keep-alive connections (``gateway.upstream.connections``). Failures are translated here, once,
into the ``UpstreamError`` tree; the upstream's own error text never travels further.

Resilience, per call: a circuit breaker per app user id (one tenant's trouble does not trip
another's), then retries on connection errors, timeouts, 5xx and 429 with jittered exponential
backoff (``retry_delay``: a ``Retry-After`` is honoured up to a cap), each retry paid from a
retry budget, all inside one deadline (shared with the retries after a credential renewal); a
retry whose sleep would reach the deadline is not made. Each attempt signs afresh.

The retry loop is written out (``_with_retries``) rather than run by tenacity, which did it
until the miss path was measured: with the deadline and the breaker around it, it cost 117-135
µs of CPU on every upstream call, failures or not, against 45-51 µs for this loop, about 5% of
a miss (``benchmarks/miss_pieces.py``, interleaved runs). The loop keeps tenacity's order: the retry
budget is asked first, then the delay is worked out, then the attempt count and the deadline
may stop it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from prometheus_client import Counter

from gateway import __version__
from gateway.clock import Clock, utc_datetime
from gateway.config.settings import CircuitBreakerSettings, UpstreamSettings
from gateway.credentials.holder import CredentialsHolder
from gateway.credentials.issued import CredentialsUnavailable, IamToken, UpstreamAuth
from gateway.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from gateway.numbers import ascii_digits
from gateway.observability.accesslog import note_upstream_attempt
from gateway.observability.metrics import Metrics
from gateway.observability.throttled import ThrottledWarnings
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.connections import (
    UpstreamAnswer,
    UpstreamBodyBroken,
    UpstreamBodyCut,
    UpstreamBodyTooLarge,
    UpstreamConnections,
    UpstreamHttpError,
    UpstreamProxyRefused,
    UpstreamTimedOut,
    UpstreamTlsFailed,
)
from gateway.upstream.query import UpstreamQuery
from gateway.upstream.retry_budget import RetryBudget
from gateway.upstream.signing import path_and_query, sign

logger = logging.getLogger(__name__)

USER_AGENT = f"metastudio-gateway/{__version__}"
BACKOFF_SECONDS = 0.05
"""The backoff ceiling after the first failed attempt; it doubles with each attempt after."""
MAX_BACKOFF_SECONDS = 1.0


class _CredentialsRefused(Exception):
    """The upstream answered 401/403: our signature or credentials were refused. ``reason`` is
    the status and the upstream's ``error_code`` when it gave one (``_error_code``)."""

    def __init__(self, refused: UpstreamAuth, reason: str) -> None:
        super().__init__("the upstream refused the credentials")
        self.refused = refused
        self.reason = reason


_ERROR_CODE = re.compile(r"[A-Za-z0-9._-]{1,40}")
"""What an upstream ``error_code`` looks like (``APIGW.0301``); anything else is not repeated."""


def _error_code(answer: UpstreamAnswer) -> str | None:
    """The ``error_code`` of an error answer's JSON body (``APIGW.0301``: the signature did not
    verify; ``APIGW.0302``: no permission), to say in the log; never its message."""
    try:
        body = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return None
    code = body.get("error_code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None


_PERMANENT_SERVER_ERRORS = frozenset({501, 505})
"""5xx statuses that say asking again will not help (RFC 9110 15.6.2, 15.6.6: not implemented,
HTTP version not supported): refused as a 4xx is, not retried as an outage."""


def _retry_after_seconds(answer: UpstreamAnswer, now: float) -> float | None:
    """The answer's ``Retry-After`` as seconds from ``now`` (Unix time): a number of seconds, or
    an HTTP date (RFC 9110 10.2.3; one past is 0); ``None`` when absent or unreadable."""
    value = answer.headers.get("retry-after", "")
    if ascii_digits(value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, with no zone said
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)


_OUTCOMES: list[tuple[type[UpstreamHttpError], str, type[UpstreamRejected | UpstreamUnavailable]]] = [
    (UpstreamBodyTooLarge, "oversized_body", UpstreamRejected),
    (UpstreamBodyBroken, "undecodable_body", UpstreamRejected),
    (UpstreamBodyCut, "truncated_body", UpstreamUnavailable),  # a connection failure after the head: retried
    (UpstreamTimedOut, "timeout", UpstreamUnavailable),
    (UpstreamTlsFailed, "tls_error", UpstreamUnavailable),  # a certificate not verified, or no TLS
    (UpstreamHttpError, "connection_error", UpstreamUnavailable),  # connect failures, malformed answers
]
"""How a failed exchange is recorded and raised: the first class it is an instance of decides."""


def retry_delay(attempt: int, retry_after: float | None, retry_after_cap: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (from 1): full jitter, up to
    ``BACKOFF_SECONDS`` doubled per attempt and at most ``MAX_BACKOFF_SECONDS``; at least the
    upstream's ``Retry-After`` (capped at ``retry_after_cap``) when it sent one."""
    ceiling = min(BACKOFF_SECONDS * 2 ** min(attempt - 1, 32), MAX_BACKOFF_SECONDS)
    backoff = random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
    if retry_after is not None:
        return max(backoff, min(retry_after, retry_after_cap))
    return backoff


class MetaStudioClient:
    """Lists training jobs upstream on behalf of one app user id."""

    def __init__(
        self,
        *,
        connections: UpstreamConnections,
        settings: UpstreamSettings,
        breaker_policy: CircuitBreakerSettings,
        credentials: CredentialsHolder,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._connections = connections
        self._settings = settings
        self._breaker_policy = breaker_policy
        self._credentials = credentials
        self._clock = clock
        self._metrics = metrics
        self._host = urlsplit(settings.endpoint).netloc
        self._path = f"/v1/{quote(settings.project_id, safe='')}/digital-human-training-manage/user/jobs"
        self._breakers: dict[str, CircuitBreaker] = {}
        self._outcome_counters: dict[str, Counter] = {}
        self._budget = RetryBudget(clock, ratio=settings.retry_budget_ratio)
        self._warnings = ThrottledWarnings(logger, clock)
        """TLS reasons, a proxy's refusals and refused credentials, each said at most once a minute."""
        self._refusals_said: set[str] = set()
        """The refusals of the credentials warned of since an answer last came."""

    def breaker(self, app_user_id: str) -> CircuitBreaker:
        """The circuit breaker guarding calls for ``app_user_id``."""
        breaker = self._breakers.get(app_user_id)
        if breaker is None:
            breaker = self._breakers[app_user_id] = CircuitBreaker(self._breaker_policy, self._clock, app_user_id)
        return breaker

    async def list_jobs(self, app_user_id: str, query: UpstreamQuery, *, retries: bool = True) -> tuple[Any, float]:
        """One page of jobs: the parsed upstream body and the clock time it arrived. Without
        ``retries``, one attempt (for a caller with a stale copy to answer as soon as it fails)."""
        attempts = self._settings.max_attempts if retries else 1
        deadline = asyncio.get_running_loop().time() + self._settings.timeout_seconds  # the renewal's retries share it
        try:
            async with asyncio.timeout_at(deadline) as cut:
                try:
                    page = await self._with_retries(app_user_id, query, cut, attempts)
                except _CredentialsRefused as refusal:
                    # Perhaps the credentials were rotated or revoked: renew them and try once more.
                    if not await self._credentials.renew_refused(refusal.refused):
                        raise self._refused_credentials(refusal) from refusal
                    try:
                        page = await self._with_retries(app_user_id, query, cut, attempts)
                    except _CredentialsRefused as exc:
                        raise self._refused_credentials(exc) from exc
        except CredentialsUnavailable as exc:
            self._metrics.upstream_requests.labels(outcome="no_credentials").inc()
            raise UpstreamUnavailable(
                "the gateway holds no valid cloud credentials yet", outcome="no_credentials"
            ) from exc
        except TimeoutError as exc:  # the attempt it cut, if any, is recorded as a timeout
            raise UpstreamTimeout() from exc
        if self._refusals_said:
            for said in self._refusals_said:
                self._warnings.forget(said)  # should they be refused again, it is said again
            self._refusals_said.clear()
            logger.info("the upstream accepts the gateway's credentials again")
        return page

    def _refused_credentials(self, refusal: _CredentialsRefused) -> UpstreamRejected:
        """What a caller gets when the upstream refused the credentials even after a renewal;
        the log says so (at most once a minute), the operator's first question."""
        said = (
            f"the upstream refused the gateway's credentials ({refusal.reason}); callers get 502 until"
            " they are mended: check the keys or token, their MetaStudio permission and METASTUDIO_PROJECT_ID"
        )
        self._refusals_said.add(said)
        self._warnings.warn(said)
        return UpstreamRejected("the upstream refused the gateway's credentials", outcome="auth")

    async def _with_retries(
        self, app_user_id: str, query: UpstreamQuery, cut: asyncio.Timeout, attempts: int
    ) -> tuple[Any, float]:
        """Attempts until one answers, a failure is not to be retried, ``attempts`` are made, or
        the next wait would reach the deadline ``cut`` enforces."""
        breaker = self.breaker(app_user_id)
        settings = self._settings
        loop = asyncio.get_running_loop()
        self._budget.record_first_attempt()
        attempt = 1
        while True:
            try:
                return await self._guarded_attempt(breaker, app_user_id, query, cut)
            except UpstreamUnavailable as failure:
                # An open circuit is not retried, nor an upstream asking to wait longer than the cap
                # (not before it said: the key backs off instead); other unavailability is, while
                # the budget allows. The budget is asked before the limits below, so a retry they
                # then refuse still spends its token (as tenacity's order did): under failure,
                # fewer retries.
                asked = failure.retry_after_seconds
                if failure.outcome == "circuit_open" or (
                    asked is not None and asked > settings.retry_after_cap_seconds
                ):
                    raise
                if not self._budget.try_retry():
                    raise
                delay = retry_delay(attempt, asked, settings.retry_after_cap_seconds)
                deadline = cut.when() or math.inf
                if attempt >= attempts or loop.time() + delay >= deadline:
                    raise
            await asyncio.sleep(delay)
            attempt += 1

    async def _guarded_attempt(
        self, breaker: CircuitBreaker, app_user_id: str, query: UpstreamQuery, cut: asyncio.Timeout
    ) -> tuple[Any, float]:
        auth = self._credentials.authorization()  # before the breaker: no credentials is not an outage
        permit = breaker.allow()
        if permit is None:
            self._metrics.upstream_requests.labels(outcome="circuit_open").inc()
            raise UpstreamUnavailable(
                "the upstream is failing; calls are paused briefly",
                outcome="circuit_open",
                retry_after_seconds=breaker.opens_for(),
            )
        failed = True
        try:
            result = await self._attempt(auth, app_user_id, query, cut)
            failed = False
            return result
        except (UpstreamRejected, _CredentialsRefused):
            failed = False  # the upstream answered: not a sign of an outage
            raise
        finally:
            breaker.record(permit, failed=failed)

    def _authenticated_request(
        self, auth: UpstreamAuth, app_user_id: str, query: UpstreamQuery
    ) -> tuple[str, dict[str, str]]:
        """The request target (path and query, as signed) and headers of one attempt."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-App-UserId": app_user_id,
        }
        if isinstance(auth, IamToken):
            # Token mode: the token alone authenticates; no Authorization, X-Sdk-Date, X-Project-Id.
            headers["X-Auth-Token"] = auth.value
            return path_and_query(self._path, query), headers
        credentials = auth
        headers["X-Project-Id"] = self._settings.project_id
        if credentials.security_token:
            headers["X-Security-Token"] = credentials.security_token
        signed = sign(
            method="GET",
            host=self._host,
            path=self._path,
            query=query,
            headers=headers,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            timestamp=utc_datetime(int(self._clock.now())),  # whole seconds, as X-Sdk-Date: formatted once each
        )
        return signed.path_and_query, signed.headers  # sent as signed, byte for byte

    async def _attempt(
        self, auth: UpstreamAuth, app_user_id: str, query: UpstreamQuery, cut: asyncio.Timeout
    ) -> tuple[Any, float]:
        target, headers = self._authenticated_request(auth, app_user_id, query)
        started = time.perf_counter()
        try:
            answer = await self._connections.get(target, headers)
        except asyncio.CancelledError:
            if cut.expired():  # the deadline cut it: an attempt that timed out, logged and timed as one
                self._record("timeout", started)
            raise
        except UpstreamHttpError as exc:
            if exc.head is None or exc.head.status == 200:
                outcome, error = next((outcome, error) for kind, outcome, error in _OUTCOMES if isinstance(exc, kind))
                self._record(outcome, started)
                if isinstance(exc, UpstreamTlsFailed | UpstreamProxyRefused):  # why: the operator's first question
                    self._warnings.warn(f"{exc}; upstream calls fail as {outcome} until it is mended")
                raise error(outcome=outcome) from exc
            answer = exc.head  # an error answer whose body failed: its status decides, as its body is not used
        status = answer.status
        if status == 200:
            try:
                page = orjson.loads(answer.body)
            except orjson.JSONDecodeError as exc:
                self._record("invalid_body", started)  # a 200 of HTML (a proxy's, a WAF's) is no answer
                raise UpstreamRejected(outcome="invalid_body") from exc
            self._record("200", started)
            return page, self._clock.now()
        self._record(str(status), started)
        if status in (401, 403):
            code = _error_code(answer)
            raise _CredentialsRefused(auth, f"HTTP {status}" + (f", {code}" if code else ""))
        if status == 429 or (status >= 500 and status not in _PERMANENT_SERVER_ERRORS):
            retry_after = _retry_after_seconds(answer, self._clock.now())
            raise UpstreamUnavailable(outcome=str(status), retry_after_seconds=retry_after)
        raise UpstreamRejected(outcome=str(status))

    def _record(self, outcome: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        counter = self._outcome_counters.get(outcome)
        if counter is None:  # a few outcomes (statuses, timeout, connection_error): looked up once each
            counter = self._outcome_counters[outcome] = self._metrics.upstream_requests.labels(outcome=outcome)
        counter.inc()
        self._metrics.upstream_duration.observe(elapsed)
        note_upstream_attempt(outcome, elapsed)
