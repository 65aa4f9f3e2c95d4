"""aiohttp's server connection, with list and job answers given as soon as their head is whole.

``GatewayRunner`` is ``web.AppRunner`` whose connections are ``HitServingRequestHandler``:
aiohttp's own ``RequestHandler`` (its C HTTP parser, keep-alive, flow control, graceful
shutdown, the whole web layer) plus one step in front of its parser. The bytes received are cut
into request heads (at each blank line) and each whole head is offered in order to
``HitResponder``, which reads it with llhttp (``gateway.fastpath.heads``, a strict subset of
HTTP/1.1) and answers it if it is a plain hit. Under load the answers are held until the loop
has run the turn's reads and written then, every connection's in turn
(``gateway.fastpath.turn_writes``: this costs less CPU per hit than a ``send`` between hits; a
quiet server writes each at once), and the batch work of their counters and log lines
(``HitResponder.end_turn``) is done after them, so no answer waits for it. A
connection writes what it holds before anything else is written or closed on it: before
handing bytes to aiohttp, before a fetched answer, on ``force_close`` (which a shutdown and a
lost connection call too), and at once past ``turn_writes.HOLD_AT_MOST`` bytes.

For a list or job request the service has to fetch for (a miss, a coalesced or stale answer),
``HitResponder`` gives a ``Fetched`` coroutine: the connection runs it as a task and
holds that request's head and everything received after it (reading pauses past
``MAX_HELD_BYTES``) until the answer is written, then reads on. A failure
is answered as the chain answers it (its error envelope, its 500); when there is nothing to
send (the load was cancelled under it), or the connection's own work around the answer fails
(logged, type and place only), the connection is closed, as aiohttp closes one whose handler
ends so. While an answer is fetched the connection is not idle for the keep-alive timer, and a
graceful shutdown waits for it as aiohttp waits for its handlers, within the shutdown timeout,
then calls it off (nothing sent, nothing logged), as aiohttp cancels its handler; the requests
held behind it are not served, as aiohttp serves nothing new once shutdown starts.

The first head ``HitResponder`` declines, with everything after it, goes to aiohttp's parser
and queue as usual, so aiohttp never sees the answered requests and never builds a message for
them. An incomplete head is kept for the next read while it can still become a plain one (up to
``MAX_PLAIN_HEAD_BYTES``, and with a plain request line as far as it goes:
``heads.could_begin_plain_head``); anything else goes to aiohttp's parser, which judges it as it
comes (a TLS handshake or a non-HTTP probe gets its 400 at once, not a connection held open).
Requests with a body, and any request while the peer is not reading (the transport's write
buffer is over its limit), are handed on.

Responses stay in request order on a pipelined connection: nothing is answered here while a
request handed to aiohttp is still unanswered. Once aiohttp has answered everything it was
given, heads are read here again, unless aiohttp's parser may hold bytes (it was given an
incomplete head, a body, an upgrade, or kept a head back because its queue was full): then
the connection stays with aiohttp.

What aiohttp is given is fed to its parser one request head at a time (cut after each blank
line), so a malformed request costs only itself and what follows it: the requests before it are
answered (here, or by aiohttp when handed on), then aiohttp answers 400 and closes the
connection; nothing after the malformed request is answered, in the same read or a later one.
(Fed in one piece, aiohttp's parser raises for the whole batch and the requests before the bad
one are lost.) Likewise, once aiohttp has answered a request it then closes the connection on
(HTTP/1.0, ``Connection: close``), what arrives before it closes is left to aiohttp, which drops
it.

This uses aiohttp 3.14 internals: on ``RequestHandler``, ``_parser`` (wrapped; its
``feed_data`` returning ``(messages, upgraded, tail)``), ``_loop``, ``_force_close`` and
``_close`` (``data_received`` ignores bytes once they are set), ``_keepalive_timeout`` and
``_next_keepalive_close_time`` (so an answered request keeps an idle connection alive as aiohttp
would; the connection cap closes the one idle longest by it), ``_waiter`` (pending while the
connection waits for a request: idle), ``_process_keepalive`` and ``_keepalive_handle`` (the
timer, which a fetched answer defers) and ``shutdown(timeout)`` (which waits for it),
``handle_error(request, status, exc, message)`` (``gateway.fastpath.refusals``), ``log_access``
being called once per answered request, ``data_received`` calling
``_parser.feed_data``; on ``web.Server``, ``_kwargs`` (the handler arguments) and ``_loop``;
``web.AppRunner._make_server``; and ``web_protocol._ErrInfo`` (the queue entry aiohttp answers
with a 400). ``writing_paused``, ``transport``, ``request_handler``, ``request_factory`` and
``handler_cancellation`` are public but checked too.

The fast path fails closed. ``GatewayRunner.setup`` first runs ``missing_internals`` (attribute
presence and shape, plus a probe: a ``RequestHandler`` built for a dummy ``web.Server``, no
transport, fed one request). If anything is missing it serves with stock aiohttp, every request
through the handler chain (and a request aiohttp's parser refuses answered with its own text,
which quotes the request), and logs one warning naming what is missing. With
``fast_hit_path = false`` connections are ``RedactingRequestHandler``: every request through the
handler chain, refusals redacted. The app's
``FAST_PATH_STATUS`` gauge, when the composition root sets one, reads 1 when connections answer
plain hits and 0 when they do not (fallen back, or ``[server] fast_hit_path = false``). The
check is passed in (``GatewayRunner(app, internals_check=...)``), so a test can run it against
a stand-in class that lacks an internal.

pyproject pins aiohttp below 3.15; ``tests/api/test_hit_path.py`` covers pipelining, keep-alive,
HTTP/1.0, bodies, flow control and equivalence with the handler chain on the pinned version, and
``tests/api/test_fast_path_fallback.py`` the fallback and malformed requests in a batch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from aiohttp import web, web_protocol
from aiohttp.http import HttpProcessingError, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from prometheus_client import Counter, Gauge

from gateway.clock import SystemClock
from gateway.fastpath.heads import MAX_PLAIN_HEAD_BYTES, could_begin_plain_head
from gateway.fastpath.hits import Fetched, HitResponder, Wire
from gateway.fastpath.refusals import END_OF_HEAD, RedactingRequestHandler
from gateway.fastpath.turn_writes import HOLD_AT_MOST, TurnWrites
from gateway.observability.throttled import ThrottledWarnings
from gateway.web.appkeys import NOT_ROUTED, Handler

logger = logging.getLogger(__name__)

Parsed = list[tuple[Any, StreamReader]]
"""What aiohttp's parser emits: (``RawRequestMessage``, payload) pairs, here and there an
error entry for aiohttp's queue."""

HIT_RESPONDER = web.AppKey("hit_responder", HitResponder)
"""Set by the composition root when plain hits are answered from the connection."""

FAST_PATH_STATUS = web.AppKey("fast_path_status", Gauge)
"""Set by the composition root: the gauge ``GatewayRunner`` sets to 1 or 0 (see the module docstring)."""

CONNECTIONS_TURNED_AWAY = web.AppKey("connections_turned_away", Counter)
"""Set by the composition root: counts the connections closed at once for being past the cap."""

_ERROR_ENTRY: Any = getattr(web_protocol, "_ErrInfo", None)
"""aiohttp's queue entry for a request it answers with an error status (checked at start-up)."""

MAX_HELD_BYTES = 65536
"""Bytes held while an answer is fetched beyond which the connection stops reading until it is sent."""
_PROBE_REQUEST = b"GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n"
_PROBE_MALFORMED = b"NOT AN HTTP REQUEST\r\n\r\n"

InternalsCheck = Callable[[asyncio.AbstractEventLoop], Sequence[str]]
"""Returns the names of the aiohttp internals this module needs that are missing (none: all there)."""


class _RecordingParser:
    """Wraps a parser to see whether ``data_received`` feeds it, and what it returns."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.results: list[Any] = []

    def feed_data(self, data: bytes) -> Any:
        result = self.parser.feed_data(data)
        self.results.append(result)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


async def _probe_handler(_request: web.BaseRequest) -> web.StreamResponse:
    return web.Response()  # pragma: no cover - never called: the probe has no transport


def missing_internals(
    loop: asyncio.AbstractEventLoop,
    *,
    handler_class: type[web.RequestHandler] = web.RequestHandler,
    server_class: type[web.Server] = web.Server,
    runner_class: type[web.BaseRunner] = web.AppRunner,
) -> list[str]:
    """The aiohttp internals this module relies on that the given classes lack; empty if none.

    Checks attribute presence and shape, then probes: builds ``server_class`` (no transport)
    and a ``handler_class`` connection for it, feeds it one request through ``data_received``
    and a malformed one to a second connection's parser. Nothing is sent or listened on.
    """
    missing: list[str] = []
    if not inspect.iscoroutinefunction(getattr(runner_class, "_make_server", None)):
        missing.append("AppRunner._make_server")
    if _ERROR_ENTRY is None:
        missing.append("web_protocol._ErrInfo")
    else:
        try:
            _ERROR_ENTRY(status=400, exc=HttpProcessingError(), message="probe")
        except TypeError:
            missing.append("web_protocol._ErrInfo(status, exc, message)")
    try:
        handle_error = list(inspect.signature(handler_class.handle_error).parameters)
    except (AttributeError, TypeError, ValueError):
        handle_error = []
    if handle_error != ["self", "request", "status", "exc", "message"]:
        missing.append("RequestHandler.handle_error(request, status, exc, message)")
    if not callable(getattr(handler_class, "_process_keepalive", None)):
        missing.append("RequestHandler._process_keepalive")
    shutdown = getattr(handler_class, "shutdown", None)
    if not (inspect.iscoroutinefunction(shutdown) and "timeout" in inspect.signature(shutdown).parameters):
        missing.append("RequestHandler.shutdown(timeout)")
    try:
        log_access = inspect.signature(handler_class.log_access)
    except (AttributeError, TypeError, ValueError):
        missing.append("RequestHandler.log_access")
    else:
        if list(log_access.parameters) != ["self", "request", "response", "time"]:
            missing.append("RequestHandler.log_access(request, response, time)")
    try:
        server = server_class(
            _probe_handler, request_factory=None, handler_cancellation=False, loop=loop, max_line_size=8190
        )
    except TypeError:
        return [*missing, "Server(handler, request_factory=, handler_cancellation=, loop=, **kwargs)"]
    missing += _missing_attributes(
        "Server",
        server,
        {
            "_kwargs": lambda value: value == {"max_line_size": 8190},
            "_loop": lambda value: value is loop,
            "request_handler": lambda value: value is _probe_handler,
            "request_factory": callable,
            "handler_cancellation": lambda value: value is False,
        },
    )
    try:
        connection = handler_class(server, loop=loop)
        spare = handler_class(server, loop=loop)
    except TypeError:
        return [*missing, "RequestHandler(manager, loop=, **kwargs)"]
    missing += _missing_attributes(
        "RequestHandler",
        connection,
        {
            "_loop": lambda value: value is loop,
            "_force_close": lambda value: value is False,
            "_close": lambda value: value is False,
            "_keepalive_timeout": lambda value: isinstance(value, int | float),
            "_next_keepalive_close_time": lambda value: isinstance(value, int | float),
            "_keepalive_handle": lambda value: value is None,
            "_waiter": lambda value: value is None,
            "_task_handler": lambda value: value is None,
            "transport": lambda value: value is None,
            "writing_paused": lambda value: value is False,
            "_parser": lambda value: callable(getattr(value, "feed_data", None)),
        },
    )
    if missing:
        return missing
    return _missing_from_probe(connection, spare)


def _missing_attributes(owner: str, instance: object, shapes: dict[str, Callable[[Any], bool]]) -> list[str]:
    missing = []
    for name, fits in shapes.items():
        try:
            value = getattr(instance, name)
        except AttributeError:
            missing.append(f"{owner}.{name}")
            continue
        if not fits(value):
            missing.append(f"{owner}.{name} (unexpected shape)")
    return missing


def _missing_from_probe(connection: web.RequestHandler, spare: web.RequestHandler) -> list[str]:
    """Feed one request through ``data_received`` and a malformed one to a parser."""
    handler = cast(Any, connection)
    recorder = _RecordingParser(handler._parser)
    try:
        handler._parser = recorder
        connection.data_received(_PROBE_REQUEST)
    except Exception:  # any failure of the probe means the internals changed
        return ["RequestHandler.data_received (probe failed)"]
    if len(recorder.results) != 1:
        return ["RequestHandler.data_received -> _parser.feed_data"]
    result = recorder.results[0]
    if not (isinstance(result, tuple) and len(result) == 3):
        return ["parser.feed_data -> (messages, upgraded, tail)"]
    messages, upgraded, tail = result
    if not (
        isinstance(messages, Sequence)
        and len(messages) == 1
        and isinstance(messages[0][0], RawRequestMessage)
        and messages[0][1] is EMPTY_PAYLOAD
        and upgraded is False
        and isinstance(tail, bytes)
    ):
        return ["parser.feed_data -> (messages, upgraded, tail)"]
    try:
        cast(Any, spare)._parser.feed_data(_PROBE_MALFORMED)
    except HttpProcessingError:
        return []
    except Exception:
        return ["parser.feed_data (probe failed)"]
    return ["parser.feed_data raising HttpProcessingError for a malformed request"]


class _AnsweringParser:
    """aiohttp's request parser, with what it emits passed through ``HitServingRequestHandler``."""

    def __init__(self, parser: Any, connection: HitServingRequestHandler) -> None:
        self._parser = parser
        self._connection = connection

    def feed_data(self, data: bytes) -> tuple[Parsed, bool, bytes]:
        return self._connection.parse(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


class HitServingRequestHandler(RedactingRequestHandler):
    """A server connection that answers plain cache hits itself (see the module docstring)."""

    def __init__(self, manager: web.Server, *, responder: HitResponder, turn_writes: TurnWrites, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._responder = responder
        self._turn_writes = turn_writes
        self._held_answers: list[bytes] = []
        """Answers made in this turn of the loop and not yet written (``TurnWrites``)."""
        self._held_answer_bytes = 0
        self._head_reader = responder.head_reader()
        self._handed_on = 0
        """Requests given to aiohttp's queue and not yet answered."""
        self._reads_heads = True
        """aiohttp's parser holds no bytes (everything it was fed was whole bodyless request
        heads, each emitted), so the next request head may be read here. False for good once
        aiohttp is to close the connection: it met a malformed request, or answered one it closes
        on; what arrives meanwhile is its to drop."""
        self._partial_head = b""
        """The start of a request head not yet complete, kept while heads are read here."""
        self._rejected = False
        """The parser met a malformed request: aiohttp answers it with 400 and closes; nothing
        after it is parsed."""
        self._awaited: asyncio.Task[None] | None = None
        """The answer being fetched (``Fetched``), if any: what arrives meanwhile is held."""
        self._held = b""
        """The head of the request whose answer is fetched and the bytes received after it, read
        once it is sent."""
        self._held_too_much = False
        """Reading was paused here: more than ``MAX_HELD_BYTES`` arrived while an answer was fetched."""
        parser = self._parser
        assert parser is not None
        self._real_parser = parser
        self._parser = cast(Any, _AnsweringParser(parser, self))

    def data_received(self, data: bytes) -> None:
        if self._awaited is not None:  # later requests wait behind the answer being fetched
            self._held += data
            if len(self._held) > MAX_HELD_BYTES and self.transport is not None and not self._held_too_much:
                self._held_too_much = True
                self.transport.pause_reading()
            return
        if self._reads_heads and not self._handed_on and not (self._force_close or self._close):
            data = self._answer_heads(self._partial_head + data if self._partial_head else data)
            if not data:
                return
            self.write_held()  # before aiohttp answers what follows
        super().data_received(data)

    def _answer_heads(self, data: bytes) -> bytes:
        """Answer the leading plain hits in ``data`` and keep a trailing incomplete head; return
        the bytes from the first request not answered here on, for aiohttp's parser."""
        transport = self.transport
        position = 0
        while True:
            cut = data.find(END_OF_HEAD, position)
            if cut < 0:
                rest = data[position:]
                if rest and (len(rest) > MAX_PLAIN_HEAD_BYTES or not could_begin_plain_head(rest)):
                    self._partial_head = b""
                    return rest  # it cannot become a plain hit: aiohttp's parser judges it as it comes
                self._partial_head = rest
                break
            end = cut + len(END_OF_HEAD)
            wire = (
                None
                if transport is None or self.writing_paused
                else self._responder.answer(data[position:end], self._head_reader)
            )
            if wire is None:
                self._partial_head = b""
                return data[position:]
            if not isinstance(wire, tuple):
                self._await(wire, data[position:])
                return b""
            head, body = wire
            self._hold(head if body is None else head + body)
            position = end
        if position:  # something was answered
            self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
        return b""

    def _hold(self, answer: bytes) -> None:
        """Write ``answer`` at the end of this turn of the loop, with the turn's other answers, if
        ``TurnWrites`` holds this turn's (under load), else at once; at once too once this
        connection holds ``HOLD_AT_MOST`` bytes."""
        turn_writes = self._turn_writes
        turn_writes.answered(self)
        if not turn_writes.holding:
            cast(asyncio.Transport, self.transport).write(answer)
            return
        self._held_answers.append(answer)
        self._held_answer_bytes += len(answer)
        if self._held_answer_bytes >= HOLD_AT_MOST:
            self.write_held()

    def write_held(self) -> None:
        """Write the answers held for the end of the turn, in order (dropped if the client left)."""
        if not self._held_answers:
            return
        held, self._held_answers, self._held_answer_bytes = self._held_answers, [], 0
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(b"".join(held))  # one answer: the same bytes object, not a copy

    def force_close(self) -> None:
        self.write_held()  # answered before the close: sent before it (the transport flushes its buffer)
        super().force_close()

    def _await(self, fetched: Fetched, held: bytes) -> None:
        """Send ``fetched`` when it is ready; hold ``held`` (its request's head and what follows)
        and what arrives meanwhile until then."""
        self.write_held()
        self._partial_head, self._held = b"", held
        self._awaited = asyncio.ensure_future(self._send_when_fetched(fetched))
        self._awaited.add_done_callback(lambda _: fetched.close())  # never awaited if called off at once

    async def _send_when_fetched(self, fetched: Fetched) -> None:
        """Await ``fetched`` and send it, in the same task: a done callback would send it a turn
        of the loop later."""
        try:
            wire = await fetched
        except asyncio.CancelledError:  # called off (a shutdown past its grace)
            self._awaited = None
            self.force_close()
            raise
        except Exception as exc:  # not even the 500 could be built: close, as aiohttp would
            self._awaited = None
            self.force_close()
            self._responder.failed(exc)
            return
        self._awaited = None
        try:
            self._send(wire)
        except Exception as exc:  # nothing more can be answered in order: close, as aiohttp would
            self.force_close()
            self._responder.failed(exc)

    def _send(self, wire: Wire | None) -> None:
        """Write the fetched answer, then read what was held behind it; close the connection if
        there is nothing to send (``Fetched`` gave ``None``)."""
        if wire is None:
            self.force_close()
            return
        transport = self.transport
        if transport is None or transport.is_closing():  # the client left: nothing to send
            return
        held, self._held = self._held, b""
        if self._held_too_much:
            self._held_too_much = False
            transport.resume_reading()
        head, body = wire
        transport.write(head if body is None else head + body)
        self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
        if self._keepalive_handle is None and self._keepalive_timeout > 0:  # it stopped while fetching
            self._keepalive_handle = self._loop.call_at(self._next_keepalive_close_time, self._process_keepalive)
        self._responder.settle()
        rest = held[held.index(END_OF_HEAD) + len(END_OF_HEAD) :]
        if rest:
            self.data_received(rest)

    def _process_keepalive(self) -> None:
        if self._awaited is not None:  # not idle: the timer starts again when the answer is sent
            self._keepalive_handle = None
            return
        super()._process_keepalive()

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 (aiohttp's signature)
        # aiohttp waits for the request its handler is answering; an answer fetched here is
        # waited for the same way, then aiohttp closes the connection, all within ``timeout``.
        # One not ready by then is called off (it logs nothing), as aiohttp cancels its handler.
        awaited = self._awaited
        if awaited is not None:
            self.close()  # as Server.pre_shutdown does: nothing held behind the answer is read any more
            started = self._loop.time()
            _done, pending = await asyncio.wait({awaited}, timeout=timeout)
            if pending:
                awaited.cancel()
            if timeout is not None:
                timeout = max(0.0, timeout - (self._loop.time() - started))
        await super().shutdown(timeout)

    def parse(self, data: bytes) -> tuple[Parsed, bool, bytes]:
        """Parse ``data`` for aiohttp's queue, one request head at a time.

        When the parser raises for a malformed request, the requests before it are already
        parsed: they are handed on, followed by aiohttp's 400 entry, and the bytes after it
        are dropped. Heads are read here again once aiohttp has answered what it was given,
        unless the parser may hold bytes (an incomplete head, a body, an upgrade, or a head
        it kept back because its queue is full).
        """
        if self._rejected:
            return [], False, b""
        handed_on: Parsed = []
        position = 0
        while True:
            cut = data.find(END_OF_HEAD, position)
            end = len(data) if cut < 0 else cut + len(END_OF_HEAD)
            segment = data[position:end]
            try:
                messages, upgraded, tail = self._real_parser.feed_data(segment)
            except HttpProcessingError as exc:
                self._rejected, self._reads_heads = True, False
                if not handed_on:
                    raise  # aiohttp queues its 400 entry itself
                return [*handed_on, (_ERROR_ENTRY(status=400, exc=exc, message=exc.message), EMPTY_PAYLOAD)], False, b""
            if segment and (cut < 0 or len(messages) != 1 or messages[0][1] is not EMPTY_PAYLOAD or upgraded):
                self._reads_heads = False
            self._handed_on += len(messages)
            handed_on += messages
            position = end
            if upgraded:
                return handed_on, True, tail + data[position:]
            if position >= len(data):
                return handed_on, False, tail

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse, time: float | None) -> None:
        # aiohttp calls this once per request it answered, after writing the response.
        self._handed_on -= 1
        if not response.keep_alive:  # aiohttp closes the connection next
            self._reads_heads = False
        super().log_access(request, response, time)


def _every_target_observed(
    handle: Callable[[web.BaseRequest], Any], not_routed: Handler | None
) -> Callable[[web.BaseRequest], Any]:
    """The app's handling, but a request whose target is no path (``*``, ``host:port``), which
    no route matches, goes to ``not_routed`` (the app's observed 404): aiohttp answered it with a
    plain-text 404 outside the handlers' wrapper (no request id, ``nosniff``, count or log line).
    A plain function returning the awaitable: no frame added to the chain's requests."""
    if not_routed is None:
        return handle
    return lambda request: handle(request) if request.path.startswith("/") else not_routed(cast(web.Request, request))


class _TurnedAway(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is made, nothing read or answered."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _idle(connection: web.RequestHandler) -> bool:
    """Whether a connection is between requests (waiting for one, or for the rest of its head),
    nothing being answered: aiohttp's own test in ``_process_keepalive``, and no fetched answer."""
    waiter = cast(Any, connection)._waiter
    return waiter is not None and not waiter.done() and getattr(connection, "_awaited", None) is None


class _GatewayServer(web.Server):
    """``web.Server`` making ``HitServingRequestHandler`` connections, or with no responder
    (``fast_hit_path = false``) ``RedactingRequestHandler`` ones; see ``_every_target_observed``.

    At most ``max_connections`` are open (0: no cap), counted from ``connection_made`` to
    ``connection_lost`` (aiohttp's own list keeps a connection until its handler ends, after the
    client left). A new connection past the cap first makes room: the tenth of the open ones that
    have been idle longest (between requests, or with only part of a head in) are closed, as a
    load balancer's pooled connections or a slow client's may be; only when none is idle is the
    new one closed at once, counted (``turned_away``) and, at most once a minute, logged."""

    def __init__(
        self,
        like: web.Server,
        responder: HitResponder | None,
        not_routed: Handler | None,
        *,
        max_connections: int = 0,
        turned_away: Counter | None = None,
    ) -> None:
        super().__init__(
            _every_target_observed(like.request_handler, not_routed),
            request_factory=like.request_factory,
            handler_cancellation=like.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **like._kwargs,
        )
        self._hits = (
            None if responder is None else (responder, TurnWrites(self._loop, responder.end_turn, responder.failed))
        )
        """What the connections answering plain hits share (none with ``fast_hit_path = false``)."""
        self._max_connections = max_connections
        self._turned_away = turned_away
        self._warnings = ThrottledWarnings(logger, SystemClock())
        self._open: dict[web.RequestHandler, None] = {}
        """The connections made and not yet lost, oldest first."""

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        self._open[handler] = None
        super().connection_made(handler, transport)

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        super().connection_lost(handler, exc)

    def __call__(self) -> web.RequestHandler:
        if self._max_connections and len(self._open) >= self._max_connections and not self._made_room():
            if self._turned_away is not None:
                self._turned_away.inc()
            self._warnings.warn(
                f"{self._max_connections} connections open ([server] max_connections), none idle: new ones are"
                " closed at once"
            )
            return cast(web.RequestHandler, _TurnedAway())  # the event loop takes any protocol
        if self._hits is None:
            return RedactingRequestHandler(self, loop=self._loop, **self._kwargs)
        responder, turn_writes = self._hits
        return HitServingRequestHandler(
            self, responder=responder, turn_writes=turn_writes, loop=self._loop, **self._kwargs
        )

    def _made_room(self) -> bool:
        """Close the tenth of the open connections idle longest (at least one); whether any was.
        They leave at the loop's next turns: one scan makes room for that many new ones."""
        idle = sorted(
            (connection for connection in self._open if _idle(connection)),
            key=lambda connection: cast(Any, connection)._next_keepalive_close_time,
        )
        for connection in idle[: max(1, self._max_connections // 10)]:
            self._open.pop(connection, None)  # it is going: room for the new one now
            connection.force_close()
        return bool(idle)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` for the gateway: plain cache hits are answered by the connection when
    the app provides a ``HitResponder`` (``[server] fast_hit_path``, on by default) and
    ``internals_check`` finds every aiohttp internal in place; without a ``HitResponder``, its
    connections only redact refusals (``gateway.fastpath.refusals``); with an internal missing,
    stock aiohttp serves (and ``max_connections`` does not hold)."""

    def __init__(
        self,
        app: web.Application,
        *,
        internals_check: InternalsCheck = missing_internals,
        max_connections: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._internals_check = internals_check
        self._max_connections = max_connections
        self._missing: Sequence[str] = ()

    async def setup(self) -> None:
        self._missing = self._internals_check(asyncio.get_running_loop())
        await super().setup()
        responder = self.app.get(HIT_RESPONDER)
        answers_hits = responder is not None and not self._missing
        if self._missing and responder is not None:
            logger.warning(
                "fast hit path off: aiohttp internals missing (%s); every request takes the handler chain",
                ", ".join(self._missing),
            )
        status = self.app.get(FAST_PATH_STATUS)
        if status is not None:
            status.set(1 if answers_hits else 0)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        if self._missing:
            return server
        return _GatewayServer(
            server,
            self.app.get(HIT_RESPONDER),
            self.app.get(NOT_ROUTED),
            max_connections=self._max_connections,
            turned_away=self.app.get(CONNECTIONS_TURNED_AWAY),
        )

    def cut_short(self) -> None:
        """Call off every request in flight and close its connection, so that ``cleanup`` need
        not wait out the shutdown grace for them (a second signal). With stock aiohttp serving
        (an internal missing), nothing is called off: the grace runs its course."""
        server = self.server
        if server is None or self._missing:
            return
        for connection in server.connections:
            awaited = getattr(connection, "_awaited", None)  # a miss the fast path is answering
            if awaited is not None:
                awaited.cancel()
            task = cast(Any, connection)._task_handler  # aiohttp's loop over the connection's requests
            if task is not None:
                task.cancel()
            connection.force_close()
