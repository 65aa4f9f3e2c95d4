"""Cache hits answered straight from the parsed request, below aiohttp's web layer.

A hit is the gateway's most frequent answer and the cheapest one: bytes already in memory.
Through aiohttp's web layer it costs a task, a ``Request``, routing, a ``Response`` and header
preparation, several times what deciding the answer costs. ``HitResponder.answer`` takes the
request line and headers as aiohttp's HTTP parser emits them (``gateway.fastpath.protocol`` offers each
one) and returns the response bytes, or ``None`` to send the request through the handler chain.

It answers only a plain hit: GET or HEAD over keep-alive HTTP/1.1 within the size limits; the
list route with a query string the chain has already validated, or one job with no query; a
known API key; a fresh entry with no re-fetch due; the tenant within its rate limit. Anything
else (errors, misses, stale answers, the refresh-ahead window, CORS preflight) takes the chain,
which decides afresh. Nothing is counted or consumed before the answer is certain, so a request
handed on is not counted twice. What is sent matches the chain's answer: the same
``represent`` headers, request id, CORS headers, metrics and access-log line.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from aiohttp.http import SERVER_SOFTWARE, HttpVersion11, RawRequestMessage

from gateway.admission.api_keys import TenantDirectory
from gateway.admission.rate_limit import TenantRateLimiter
from gateway.admission.request_limits import check_size
from gateway.cache.store import CacheEntry
from gateway.clock import Clock
from gateway.errors import InvalidParameter
from gateway.jobs.query import ParsedQueries, is_job_id
from gateway.jobs.service import TrainingJobService
from gateway.observability.accesslog import AccessLog, access_record, exception_record
from gateway.observability.metrics import Metrics
from gateway.tenant import Tenant
from gateway.web.cors import CorsPolicy
from gateway.web.representation import represent
from gateway.web.request_ids import RequestIds

LIST_ROUTE = "/v1/training-jobs"
JOB_ROUTE = "/v1/training-jobs/{job_id}"
_JOB_PREFIX = "/v1/training-jobs/"
_METHODS = frozenset({"GET", "HEAD"})
_STATUS_LINES = {200: "HTTP/1.1 200 OK\r\n", 304: "HTTP/1.1 304 Not Modified\r\n"}

Wire = tuple[bytes, bytes | None]
"""The response head (status line and headers) and the body to send after it, if any."""


class _HttpDate:
    """The ``Date`` header value, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._text = second, formatdate(second, usegmt=True)
        return self._text


class HitResponder:
    """Turns a parsed request into a cache hit's bytes, or declines it."""

    def __init__(
        self,
        *,
        service: TrainingJobService,
        tenants: TenantDirectory,
        rate_limiter: TenantRateLimiter,
        queries: ParsedQueries,
        cors: CorsPolicy,
        request_ids: RequestIds,
        metrics: Metrics,
        access_log: AccessLog,
        clock: Clock,
    ) -> None:
        self._service = service
        self._tenants = tenants
        self._rate_limiter = rate_limiter
        self._queries = queries
        self._cors = cors
        self._request_ids = request_ids
        self._stats = metrics.requests
        self._access_log = access_log
        self._clock = clock
        self._date = _HttpDate()
        self._trailer = f"Server: {SERVER_SOFTWARE}\r\n\r\n"

    def answer(self, message: RawRequestMessage) -> Wire | None:
        """The response to ``message`` if it is a plain cache hit, else ``None``. A failure here
        is logged (type and place only) and the request is handed on, never dropped."""
        try:
            return self._answer(message)
        except Exception as exc:
            self._access_log.write(exception_record(exc))
            return None

    def _answer(self, message: RawRequestMessage) -> Wire | None:
        started = time.perf_counter()
        method = message.method
        if method not in _METHODS or message.version != HttpVersion11 or message.should_close or message.upgrade:
            return None
        headers = message.headers
        tenant = self._tenants.find(headers.get("Authorization"))
        if tenant is None:
            return None
        target = message.path
        path, _, raw_query = target.partition("?")
        now = self._clock.now()
        route, entry = self._plain_hit(tenant, path, raw_query, now)
        if entry is None:
            return None
        try:
            check_size(target, message.raw_headers)
        except InvalidParameter:
            return None
        if self._rate_limiter.retry_after(tenant.id):
            return None
        # From here on the request is answered here.
        self._service.count_hit(entry, now)
        answer = represent(entry, "hit", now, headers.get("Accept-Encoding"), headers.get("If-None-Match"))
        request_id = self._request_ids.of(headers.get("X-Request-Id"))
        response_headers = answer.headers
        response_headers["X-Request-Id"] = request_id
        self._cors.decorate(headers.get("Origin"), response_headers)
        lines = [_STATUS_LINES[answer.status]]
        lines.extend(f"{name}: {value}\r\n" for name, value in response_headers.items())
        if answer.body is not None:
            lines.append(f"Content-Length: {len(answer.body)}\r\n")
        lines.append(f"Date: {self._date.now()}\r\n")
        lines.append(self._trailer)
        elapsed = time.perf_counter() - started
        self._stats.request(route, method, str(answer.status), tenant.id, elapsed)
        self._access_log.write(access_record(request_id, tenant.id, method, route, answer.status, "hit", elapsed))
        return "".join(lines).encode("latin-1"), None if method == "HEAD" else answer.body

    def _plain_hit(self, tenant: Tenant, path: str, raw_query: str, now: float) -> tuple[str, CacheEntry | None]:
        """The route template and the plain hit for this path and query, if there is one."""
        if path == LIST_ROUTE:
            query = self._queries.known(raw_query)
            return LIST_ROUTE, None if query is None else self._service.list_hit(tenant, query, now)
        if path.startswith(_JOB_PREFIX) and not raw_query and is_job_id(job_id := path[len(_JOB_PREFIX) :]):
            return JOB_ROUTE, self._service.job_hit(tenant, job_id, now)
        return "", None
