"""aiohttp's server connection, with plain cache hits answered as soon as they are parsed.

``GatewayRunner`` is ``web.AppRunner`` whose connections are ``HitServingRequestHandler``:
aiohttp's own ``RequestHandler`` (its C HTTP parser, keep-alive, flow control, graceful
shutdown, the whole web layer) plus one step. Each batch of requests the parser emits is offered
in order to ``HitResponder``; the leading requests it answers are written to the transport at
once, and the first one it declines, with everything after it, goes to aiohttp's queue as
usual. Responses stay in request order on a pipelined connection: nothing is answered early
while a request handed to aiohttp is still unanswered. Requests with a body, and any request
while the peer is not reading (the transport's write buffer is over its limit), are handed on.

This uses aiohttp 3.14 ``RequestHandler`` internals: ``_parser`` (wrapped), ``_loop``,
``_max_msg_queue_size`` (the parser pauses after emitting that many requests),
``_keepalive_timeout`` and ``_next_keepalive_close_time`` (so an answered request keeps an idle
connection alive as aiohttp would), and ``log_access`` being called once per answered request.
pyproject pins aiohttp below 3.15; ``tests/api/test_hit_path.py`` covers pipelining, keep-alive,
HTTP/1.0, bodies, flow control and equivalence with the handler chain on the pinned version.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiohttp import web
from aiohttp.http import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from gateway.fastpath.hits import HitResponder

Parsed = list[tuple[RawRequestMessage, StreamReader]]

HIT_RESPONDER = web.AppKey("hit_responder", HitResponder)
"""Set by the composition root when plain hits are answered from the connection."""


class _AnsweringParser:
    """aiohttp's request parser, with what it emits passed through ``HitServingRequestHandler``."""

    def __init__(self, parser: Any, connection: HitServingRequestHandler) -> None:
        self._parser = parser
        self._connection = connection

    def feed_data(self, data: bytes) -> tuple[Parsed, bool, bytes]:
        return self._connection.parse(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


class HitServingRequestHandler(web.RequestHandler):
    """A server connection that answers plain cache hits itself (see the module docstring)."""

    def __init__(self, manager: web.Server, *, responder: HitResponder, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._responder = responder
        self._handed_on = 0
        """Requests given to aiohttp's queue and not yet answered."""
        parser = self._parser
        assert parser is not None
        self._real_parser = parser
        self._parser = cast(Any, _AnsweringParser(parser, self))

    def parse(self, data: bytes) -> tuple[Parsed, bool, bytes]:
        """Parse ``data``; answer the leading plain hits; return the rest for aiohttp's queue.

        The parser stops after emitting its queue limit of requests and keeps the rest of the
        bytes; aiohttp resumes it when its queue drains, but requests answered here never enter
        that queue. So while the parser may be holding more, parse on: once one request is
        handed on, all later ones are, and aiohttp's queue fills and pauses reading as usual.
        """
        messages, upgraded, tail = self._real_parser.feed_data(data)
        handed_on = self._answer_leading(messages)
        while len(messages) >= self._max_msg_queue_size and not upgraded:
            messages, upgraded, tail = self._real_parser.feed_data(b"")
            handed_on += self._answer_leading(messages)
        return handed_on, upgraded, tail

    def _answer_leading(self, messages: Parsed) -> Parsed:
        """Answer the leading plain hits in ``messages``; the rest are handed on to aiohttp."""
        answered = 0
        if not self._handed_on:
            for message, payload in messages:
                transport = self.transport
                if payload is not EMPTY_PAYLOAD or transport is None or self.writing_paused:
                    break
                wire = self._responder.answer(message)
                if wire is None:
                    break
                head, body = wire
                transport.write(head if body is None else head + body)
                self._real_parser.message_consumed()
                answered += 1
        if answered:
            self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
            messages = messages[answered:]
        self._handed_on += len(messages)
        return messages

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse, time: float | None) -> None:
        # aiohttp calls this once per request it answered, after writing the response.
        self._handed_on -= 1
        super().log_access(request, response, time)


class _HitServingServer(web.Server):
    """``web.Server`` making ``HitServingRequestHandler`` connections."""

    def __init__(self, like: web.Server, responder: HitResponder) -> None:
        super().__init__(
            like.request_handler,
            request_factory=like.request_factory,
            handler_cancellation=like.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **like._kwargs,
        )
        self._responder = responder

    def __call__(self) -> web.RequestHandler:
        return HitServingRequestHandler(self, responder=self._responder, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` for the gateway: plain cache hits are answered by the connection when
    the app provides a ``HitResponder`` (``[server] fast_hit_path``, on by default)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        responder = self.app.get(HIT_RESPONDER)
        return server if responder is None else _HitServingServer(server, responder)
