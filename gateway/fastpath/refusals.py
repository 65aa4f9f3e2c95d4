"""aiohttp's server connection, with its answer to a request its parser refuses redacted.

aiohttp answers a request its parser refuses (a bad byte in a header, a space before a colon, a
folded line, a line too long) with a plain-text 400 whose body quotes the offending bytes: an
``Authorization`` line's API key or whole JWT among them, sent back to the client, where a proxy,
an error reporter or a browser extension may keep it. ``RedactingRequestHandler`` answers the same
status with the gateway's JSON error envelope (``invalid_parameter``, naming the kind of error
only: ``BadHttpMessage``, ``LineTooLong``..., the words the process log uses for it,
``gateway.observability.logs.RedactParseErrors``; aiohttp's own 500 as ``internal_error``), a new
request id, and the headers every error of the gateway's carries (``nosniff``, ``no-store``). It overrides
``handle_error(request, status, exc, message)``, which ``missing_internals`` checks with the rest.

It also bounds a request head that has not ended: past ``MAX_HEAD_BYTES`` the request is
refused (``HeadTooLarge``, the same 400) and the connection closed. aiohttp's parser alone kept up
to 128 fields of up to 32 KiB each, 4 MiB a connection, for a head that never ends, while no
head over about 29 KB passes the request limits (``gateway.admission.request_limits``) once whole.
The parser is wrapped (``_parser``, whose ``feed_data`` aiohttp's ``data_received`` calls and
whose ``HttpProcessingError`` it answers with its 400); with the keep-alive timeout, which
closes a connection whose head has not ended as idle, an unended head costs a bounded amount
for a bounded time.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.streams import EMPTY_PAYLOAD

from gateway.web.request_ids import RequestIds
from gateway.web.tail import NO_STORE, NOSNIFF, SERVER

MAX_HEAD_BYTES = 32768
"""The most of one request head (its line and headers) taken before it ends: no longer head
passes the request limits (a 4 KiB target, 16 KiB of headers and an 8 KiB token: about 29 KB)."""
END_OF_HEAD = b"\r\n\r\n"
"""The blank line that ends a request head."""


class HeadTooLarge(BadHttpMessage):
    """A request head still not ended past ``MAX_HEAD_BYTES``."""

    def __init__(self) -> None:
        super().__init__(f"the request head is longer than {MAX_HEAD_BYTES} bytes")


class HeadCappedParser:
    """aiohttp's request parser, refusing a head still unended past ``MAX_HEAD_BYTES``.

    What follows the last blank line fed (the end of a head), unless a body is being read, is the
    start of the next head: its bytes are counted, and a read that would take them past the bound
    is refused before it is fed, whatever else it holds. The blank line is looked for across
    reads (a head's last CRLF may come in the next one).
    """

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self._unended = 0
        self._last_body: Any = EMPTY_PAYLOAD
        self._carried = b""
        """The last bytes fed, which a blank line may begin in."""

    def feed_data(self, data: bytes) -> Any:
        seen = self._carried + data
        ended = seen.rfind(END_OF_HEAD)
        unended = self._unended + len(data) if ended < 0 else len(seen) - ended - len(END_OF_HEAD)
        if self._last_body.is_eof() and unended > MAX_HEAD_BYTES:
            raise HeadTooLarge
        result = self._parser.feed_data(data)
        messages = result[0]
        if messages:
            self._last_body = messages[-1][1]
        self._unended = unended if self._last_body.is_eof() else 0  # a body being read is no head
        self._carried = seen[-len(END_OF_HEAD) + 1 :]
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def refusal_body(status: int, exc: BaseException | None, request_id: str) -> bytes:
    """The error envelope a client gets for a request aiohttp's parser refused (the error's kind,
    nothing of the request), or for aiohttp's own 500."""
    if status >= 500:
        code, message = "internal_error", "internal error"
    else:
        code, message = "invalid_parameter", "malformed HTTP request" + (f" ({type(exc).__name__})" if exc else "")
    return orjson.dumps({"error": {"code": code, "message": message, "request_id": request_id}})


class RedactingRequestHandler(web.RequestHandler):
    """aiohttp's ``RequestHandler``, quoting nothing of a refused request in its answer."""

    _refusal_ids = RequestIds()
    """The ids of these answers (the request, unread, sent none): one sequence per process."""

    def __init__(self, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._parser = cast(Any, HeadCappedParser(self._parser))

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, None)  # its message may quote the request
        if not isinstance(response, web.Response):  # aiohttp's is a Response; nothing else is replaced
            return response
        # The envelope every error of ours has, instead of a text that quotes the request, and
        # the headers.
        request_id = self._refusal_ids.of(None)
        response.body = refusal_body(response.status, exc, request_id)
        response.content_type = "application/json"
        response.headers["X-Request-Id"] = request_id
        response.headers["X-Content-Type-Options"] = NOSNIFF
        response.headers["Cache-Control"] = NO_STORE
        response.headers["Server"] = SERVER
        return response
