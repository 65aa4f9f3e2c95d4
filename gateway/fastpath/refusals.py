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
"""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.web.request_ids import RequestIds
from gateway.web.tail import NO_STORE, NOSNIFF, SERVER


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
