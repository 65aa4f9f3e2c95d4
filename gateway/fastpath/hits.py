"""Cache hits answered straight from the request head, below aiohttp's parser and web layer.

A hit is the gateway's most frequent answer and the cheapest one: bytes already in memory.
Through aiohttp it costs a parsed message (a multidict, a URL), a task, a ``Request``, routing,
a ``Response`` and header preparation, several times what deciding the answer costs.
``HitResponder.answer`` takes one whole request head as received (``gateway.fastpath.protocol``
offers each one), reads it (``gateway.fastpath.heads``) and returns the response bytes, or
``None`` to send the request through aiohttp and the handler chain.

It answers only a plain hit: GET or HEAD over keep-alive HTTP/1.1 within the size limits (the
subset ``gateway.fastpath.heads`` reads); the list route with a query string the chain has
already validated, or one job with no query; a caller the admission seam knows; a fresh entry
with no re-fetch due; the tenant within its rate limit. Anything else (errors, misses, stale
answers, the refresh-ahead window, CORS preflight) takes the chain, which decides afresh.
Nothing is counted or consumed before the answer is certain, so a request handed on is not
counted twice. What is sent matches the chain's answer because both paths call the same code:
``Admission`` (who, and may they pass), ``represent`` (status, headers, body) and
``ResponseTail`` (request id, CORS, counters, log).
"""

from __future__ import annotations

import time
from email.utils import formatdate

from aiohttp.http import SERVER_SOFTWARE

from gateway.admission.gate import Admission
from gateway.cache.entry import CacheEntry
from gateway.clock import Clock
from gateway.fastpath.heads import PlainHead, PlainHeads
from gateway.jobs.query import ParsedQueries, is_job_id
from gateway.jobs.service import TrainingJobService
from gateway.observability.accesslog import AccessLog, exception_record
from gateway.tenant import Tenant
from gateway.web.representation import represent
from gateway.web.routes import JOB_PREFIX, JOB_ROUTE, LIST_ROUTE
from gateway.web.tail import ResponseTail

_STATUS_LINES = {200: "HTTP/1.1 200 OK\r\n", 304: "HTTP/1.1 304 Not Modified\r\n"}

Wire = tuple[bytes, bytes | None]
"""The response head (status line and headers) and the body to send after it, if any."""

_Head = tuple[str, float, bytes, bool]
"""A kept head (always a 200's: a request that could get a 304 is never answered from the
memo): the entry's etag and fetch time (which entry it was built for, without keeping the entry
alive past its eviction), the head bytes, and whether the body is gzip."""

HEADS_KEPT = 1024
"""Heads kept for reuse (then all forgotten at once): a client cannot grow the memo past this
by varying Accept-Encoding or Origin."""


class _HeadEnd:
    """The last lines of every hit's head, ``Date`` (formatted once a second), ``Server`` and
    the blank line, as bytes."""

    def __init__(self) -> None:
        self._second = -1
        self._bytes = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            date = formatdate(second, usegmt=True)
            self._second, self._bytes = second, f"Date: {date}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n".encode("latin-1")
        return self._bytes


class HitResponder:
    """Turns one request head's bytes into a cache hit's bytes, or declines it."""

    def __init__(
        self,
        *,
        service: TrainingJobService,
        admission: Admission,
        queries: ParsedQueries,
        tail: ResponseTail,
        access_log: AccessLog,
        clock: Clock,
    ) -> None:
        self._service = service
        self._admission = admission
        self._queries = queries
        self._tail = tail
        self._access_log = access_log
        self._clock = clock
        self._head_end = _HeadEnd()
        self._heads = PlainHeads()
        self._built: dict[tuple[int, int, int, tuple[bytes | None, bytes | None]], _Head] = {}
        self.settle = tail.settle
        """Does the batch work of the hits answered (``ResponseTail.settle``): the connection
        calls it after writing their answers."""

    def answer(self, head: bytes) -> Wire | None:
        """The response to the request with this ``head`` (request line to blank line) if it
        is a plain cache hit, else ``None``. A failure here is logged (type and place only) and
        the request is handed on, never dropped."""
        try:
            return self._answer(head)
        except Exception as exc:
            self._access_log.write(exception_record(exc))
            return None

    def _answer(self, head: bytes) -> Wire | None:
        started = time.perf_counter()
        request = self._heads.read(head)
        if request is None:
            return None
        tenant = self._admission.caller(request.authorization)
        if tenant is None:
            return None
        now = self._clock.now()
        route, entry = self._plain_hit(tenant, request.path, request.query, now)
        if entry is None or self._admission.retry_after(tenant):
            return None
        # From here on the request is answered here.
        self._service.count_hit(entry, now)
        status, response_head, body = self._response_head(entry, now, request)
        request_id = self._tail.request_id(request.request_id)
        wire = b"%sX-Request-Id: %s\r\n%s" % (response_head, request_id.encode(), self._head_end.now())
        method = request.method
        self._tail.account(request_id, route, method, status, tenant.id, "hit", time.perf_counter() - started)
        return wire, None if method == "HEAD" else body

    def _response_head(self, entry: CacheEntry, now: float, request: PlainHead) -> tuple[int, bytes, bytes | None]:
        """The status, the head (status line and every header but the request id, ``Date`` and
        ``Server``) and the body of a hit on ``entry`` for this request. Built by ``represent``
        and the tail's ``decorate``, as the chain builds its answer, and kept for the next hits
        that would get the same bytes: same entry, same Age and max-age, same Accept-Encoding and
        Origin (as received: only a miss of the memo decodes them)."""
        key = (id(entry), int(entry.fresh_until - now), int(now - entry.fetched_at), request.variant)
        could_be_304 = request.conditional
        known = None if could_be_304 else self._built.get(key)
        if known is not None and known[0] == entry.etag and known[1] == entry.fetched_at:
            return 200, known[2], entry.gzip_body if known[3] else entry.body
        origin = request.header(b"origin")
        answer = represent(entry, "hit", now, request.header(b"accept-encoding"), request.header(b"if-none-match"))
        response_headers = answer.headers
        self._tail.decorate(response_headers, origin, answer.status)
        lines = [_STATUS_LINES[answer.status]]
        lines.extend(f"{name}: {value}\r\n" for name, value in response_headers.items())
        if answer.body is not None:
            lines.append(f"Content-Length: {len(answer.body)}\r\n")
        wire_head = "".join(lines).encode("latin-1")
        if not could_be_304:
            if len(self._built) >= HEADS_KEPT:
                self._built.clear()
            gzipped = answer.body is not None and answer.body is entry.gzip_body
            self._built[key] = (entry.etag, entry.fetched_at, wire_head, gzipped)
        return answer.status, wire_head, answer.body

    def _plain_hit(self, tenant: Tenant, path: str, raw_query: str, now: float) -> tuple[str, CacheEntry | None]:
        """The route template and the plain hit for this path and query, if there is one."""
        if path == LIST_ROUTE:
            query = self._queries.known(raw_query)
            return LIST_ROUTE, None if query is None else self._service.list_hit(tenant, query, now)
        if path.startswith(JOB_PREFIX) and not raw_query and is_job_id(job_id := path[len(JOB_PREFIX) :]):
            return JOB_ROUTE, self._service.job_hit(tenant, job_id, now)
        return "", None
