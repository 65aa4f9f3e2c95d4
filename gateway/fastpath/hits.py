"""List and job answers given straight from the request head, below aiohttp's parser and web layer.

A hit is the gateway's most frequent answer and the cheapest one: bytes already in memory.
Through aiohttp it costs a parsed message (a multidict, a URL), a task, a ``Request``, routing,
a ``Response`` and header preparation, several times what deciding the answer costs. On a miss
the same layer is about a seventh of what the gateway adds to the upstream call (measured:
``benchmarks/miss_pieces.py``). ``HitResponder.answer`` takes one whole request head as received
(``gateway.fastpath.protocol`` offers each one), reads it (``gateway.fastpath.heads``) and
returns the response bytes of a plain hit; for any other list or job request it may answer, a
``Fetched`` coroutine the connection awaits (the service's answer: a miss, a coalesced or stale
answer, the refresh-ahead window, or the service's error); else ``None`` to send the request
through aiohttp and the handler chain.

It answers only GET or HEAD over keep-alive HTTP/1.1 within the size limits (the subset
``gateway.fastpath.heads`` reads); the list route with a valid query string (validated by the
chain's code: ``ParsedQueries``, the pairs decoded by yarl as aiohttp decodes them), or one job
with no query; a caller the admission seam knows (a JWT it has not verified yet goes to the
chain); the tenant within its rate limit. Anything else (an invalid query, an unknown caller, a
rate-limited one, CORS preflight, other routes) takes the chain, which decides afresh. Nothing
is counted or consumed before the request is taken, so a request handed on is not counted
twice. What is sent matches the chain's answer because both paths call the same code:
``Admission`` (who, and may they pass), the service, ``represent`` (status, headers, body),
``error_response`` (the error envelope) and ``ResponseTail`` (request id, CORS, counters, log).
A fetched answer's upstream calls are noted on its own ``RequestContext``, so its log line
names them as the chain's does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from yarl import URL

from gateway.admission.gate import Admission
from gateway.cache.entry import CacheEntry
from gateway.clock import Clock
from gateway.errors import GatewayError
from gateway.fastpath.heads import HeadReader, PlainHead, PlainHeads
from gateway.jobs.query import ParsedQueries, is_job_id
from gateway.jobs.service import Served, TrainingJobService
from gateway.observability.accesslog import CURRENT_REQUEST, AccessLog, RequestContext, exception_record
from gateway.tenant import Tenant
from gateway.upstream.query import UpstreamQuery
from gateway.web.observe import error_response
from gateway.web.representation import represent
from gateway.web.routes import JOB_PREFIX, JOB_ROUTE, LIST_ROUTE
from gateway.web.tail import SERVER, ResponseTail

_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus}
"""Each status line as aiohttp writes it (its reason phrases are ``HTTPStatus``'s)."""

Wire = tuple[bytes, bytes | None]
"""The response head (status line and headers) and the body to send after it, if any."""

Fetched = Coroutine[Any, Any, Wire | None]
"""An answer the service has to fetch first (a miss, a coalesced or stale answer): the
connection awaits it, and the requests behind it wait for it. ``None``: there is nothing to
send (see ``HitResponder._fetched``); the connection closes."""

_Head = tuple[str, float, bytes, bool]
"""A kept head (always a 200's: a request that could get a 304 is never answered from the
memo): the entry's etag and fetch time (which entry it was built for, without keeping the entry
alive past its eviction), the head bytes, and whether the body is gzip."""

_PlainHit = Callable[[Tenant, Any, float], CacheEntry | None]
"""``TrainingJobService.list_hit`` or ``job_hit``, as ``_wanted`` pairs it with what is wanted."""

HEADS_KEPT = 1024
"""Heads kept for reuse (then all forgotten at once): a client cannot grow the memo past this
by varying Accept-Encoding or Origin."""
VARIANT_BYTES_KEPT = 256
"""The longest Accept-Encoding and Origin, together, of a head kept: browsers send a few dozen
bytes; kept with 16 KB of Accept-Encoding each, the memo held 16 MiB."""


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
            self._second, self._bytes = second, f"Date: {date}\r\nServer: {SERVER}\r\n\r\n".encode("latin-1")
        return self._bytes


class HitResponder:
    """Turns one request head's bytes into a cache hit's bytes or a fetch of its answer, or declines it."""

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
        self._list_hit: _PlainHit = service.list_hit
        self._job_hit: _PlainHit = service.job_hit
        self.settle = tail.settle
        """Does the batch work of the answers written (``ResponseTail.settle``): the connection
        calls it after writing a fetched answer."""
        self.end_turn = tail.end_turn
        """Does the batch work at the end of a turn whose hits were just written
        (``ResponseTail.end_turn``): ``TurnWrites`` calls it."""

    def failed(self, exc: Exception) -> None:
        """Log a failure of the connection's own work around an answer (type and place only)."""
        self._access_log.write(exception_record(exc))

    def head_reader(self) -> HeadReader:
        """A reader of request heads for one connection, to pass to ``answer``."""
        return self._heads.reader()

    def answer(self, head: bytes, reader: HeadReader) -> Wire | Fetched | None:
        """The response to the request with this ``head`` (request line to blank line, read by
        the connection's ``reader``): its bytes if it is a plain cache hit; an awaitable of them
        if it is a list or job request the service has to fetch for (see ``Fetched``); else
        ``None``. A failure here is logged (type and place only) and the request is handed on,
        never dropped."""
        try:
            return self._answer(head, reader)
        except Exception as exc:
            self.failed(exc)
            return None

    def _answer(self, head: bytes, reader: HeadReader) -> Wire | Fetched | None:
        started = time.perf_counter()
        request = reader.read(head)
        if request is None:
            return None
        route, wanted, plain_hit = self._wanted(request.path, request.query)
        if wanted is None:  # not a route answered here, or a query the chain must refuse
            return None
        # Only now the caller: a token is not verified (and counted) for a request the chain
        # takes, which would verify and count it again.
        tenant = self._admission.caller(request.authorization)
        if tenant is None:
            return None
        now = self._clock.now()
        entry = plain_hit(tenant, wanted, now)
        if self._admission.retry_after(tenant):
            return None
        # From here on the request is answered here.
        if entry is None:
            return self._fetched(route, wanted, tenant, request, started)
        self._service.count_hit(entry, now)
        status, response_head, body = self._hit_head(entry, now, request)
        request_id = self._tail.request_id(request.request_id)
        method = request.method
        self._tail.account(request_id, route, method, status, tenant.id, "hit", time.perf_counter() - started)
        return self._wire(response_head, request_id), None if method == "HEAD" else body

    def _wire(self, response_head: bytes, request_id: str) -> bytes:
        """The head with the request id, ``Date`` and ``Server`` added."""
        return b"%sX-Request-Id: %s\r\n%s" % (response_head, request_id.encode(), self._head_end.now())

    async def _fetched(
        self, route: str, wanted: UpstreamQuery | str, tenant: Tenant, request: PlainHead, started: float
    ) -> Wire | None:
        """The answer the service fetches for the list query or job id ``wanted``, or its error,
        as the chain would send it; any other failure (the service's or in building the answer)
        is logged (type and place only) and answered with the chain's 500. The connection awaits
        this in a task of its own: the request's context is set here, where the upstream calls made
        for it are noted, and unset once it is answered (the task goes on to read the requests
        held behind it). ``None`` (nothing to send: close the connection, as aiohttp does for
        a handler that ends so): the load was cancelled under it (the service is closing). If
        even the 500 cannot be built, the failure ends the task and the connection closes too.
        The request's rate-limit token is already taken, so it is never handed to the chain,
        which would take another."""
        request_id = self._tail.request_id(request.request_id)
        context = RequestContext(request_id, tenant=tenant.id)
        request_set = CURRENT_REQUEST.set(context)
        try:
            try:
                served = await self._serve(wanted, tenant)
            except GatewayError as error:
                status, response_head, body = self._error_head(error, request_id, request)
            else:
                context.cache = served.result
                now = self._clock.now()
                status, response_head, body = self._built_head(served.entry, served.result, now, request)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this answer was called off (a shutdown past its grace): nothing is logged
            return None
        except Exception as exc:
            self._access_log.write(exception_record(exc, request_id=request_id))
            context.cache = None
            status, response_head, body = self._error_head(GatewayError(), request_id, request)
        CURRENT_REQUEST.reset(request_set)
        method = request.method
        seconds = time.perf_counter() - started
        self._tail.account(request_id, route, method, status, tenant.id, context.cache, seconds, context.attempts)
        return self._wire(response_head, request_id), None if method == "HEAD" else body

    async def _serve(self, wanted: UpstreamQuery | str, tenant: Tenant) -> Served:
        if isinstance(wanted, str):
            return await self._service.get_job(tenant, wanted)
        return await self._service.list_jobs(tenant, wanted)

    def _hit_head(self, entry: CacheEntry, now: float, request: PlainHead) -> tuple[int, bytes, bytes | None]:
        """``_built_head`` of a hit, kept for the next hits that would get the same bytes: same
        entry, same Age and max-age, same Accept-Encoding and Origin (as received: only a miss of
        the memo decodes them)."""
        key = (id(entry), int(entry.fresh_until - now), int(now - entry.fetched_at), request.variant)
        could_be_304 = request.conditional
        known = None if could_be_304 else self._built.get(key)
        if known is not None and known[0] == entry.etag and known[1] == entry.fetched_at:
            return 200, known[2], entry.gzip_body if known[3] else entry.body
        status, wire_head, body = self._built_head(entry, "hit", now, request)
        encoding, origin = request.variant
        if not could_be_304 and len(encoding or b"") + len(origin or b"") <= VARIANT_BYTES_KEPT:
            if len(self._built) >= HEADS_KEPT:
                self._built.clear()
            gzipped = body is not None and body is entry.gzip_body
            self._built[key] = (entry.etag, entry.fetched_at, wire_head, gzipped)
        return status, wire_head, body

    def _built_head(
        self, entry: CacheEntry, result: str, now: float, request: PlainHead
    ) -> tuple[int, bytes, bytes | None]:
        """The status, the head (status line and every header but the request id, ``Date`` and
        ``Server``) and the body of ``entry`` served as ``result`` for this request. Built by
        ``represent`` and the tail's ``decorate``, as the chain builds its answer."""
        answer = represent(entry, result, now, request.header(b"accept-encoding"), request.header(b"if-none-match"))
        self._tail.decorate(answer.headers, request.header(b"origin"), answer.status)
        return answer.status, _wire_head(answer.status, answer.headers, answer.body), answer.body

    def _error_head(self, error: GatewayError, request_id: str, request: PlainHead) -> tuple[int, bytes, bytes | None]:
        """The chain's error envelope for ``error`` (``error_response``), decorated as the chain
        decorates it."""
        response = error_response(error, request_id)
        self._tail.decorate(response.headers, request.header(b"origin"), response.status)
        body = response.body
        assert isinstance(body, bytes)  # error_response's body is bytes
        return response.status, _wire_head(response.status, response.headers, body), body

    def _wanted(self, path: str, raw_query: str) -> tuple[str, UpstreamQuery | str | None, _PlainHit]:
        """The route template, what is wanted (the validated list query or the job id; ``None``
        if the request is not answered here) and the service's look-up of its plain hit."""
        if path == LIST_ROUTE:
            query = self._queries.known(raw_query)
            return LIST_ROUTE, self._new_query(raw_query) if query is None else query, self._list_hit
        if path.startswith(JOB_PREFIX) and not raw_query and is_job_id(job_id := path[len(JOB_PREFIX) :]):
            return JOB_ROUTE, job_id, self._job_hit
        return "", None, self._list_hit

    def _new_query(self, raw_query: str) -> UpstreamQuery | None:
        """A query string not seen before, validated as the chain validates it (decoded by
        yarl, as aiohttp decodes it); ``None`` if invalid, so the chain answers it."""
        try:
            return self._queries.parse(raw_query, URL.build(query_string=raw_query, encoded=True).query.items)
        except GatewayError:
            return None


def _wire_head(status: int, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """A response head as aiohttp writes it, but for the request id, ``Date`` and ``Server``."""
    lines = [_STATUS_LINES[status]]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    return "".join(lines).encode("latin-1")
