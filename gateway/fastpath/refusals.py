"""aiohttp's server connection, with its answer to a request its parser refuses redacted.

aiohttp answers a request its parser refuses (a bad byte in a header, a space before a colon, a
folded line, a line too long) with a plain-text 400 whose body quotes the offending bytes: an
``Authorization`` line's API key or whole JWT among them, sent back to the client, where a proxy,
an error reporter or a browser extension may keep it. ``RedactingRequestHandler`` answers the same
status with the kind of error only (``BadHttpMessage``, ``LineTooLong``...), the words the
process log uses for it (``gateway.observability.logs.RedactParseErrors``), and the headers every
error of the gateway's carries (``nosniff``, ``no-store``). It overrides
``handle_error(request, status, exc, message)``, which ``missing_internals`` checks with the rest.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web

from gateway.web.tail import NO_STORE, NOSNIFF, SERVER


def refusal_text(status: int, exc: BaseException) -> str:
    """What a client is told of a request aiohttp's parser refused: the status and the error's
    kind, nothing of the request."""
    return f"{status} {HTTPStatus(status).phrase}\n\nmalformed HTTP request ({type(exc).__name__})"


class RedactingRequestHandler(web.RequestHandler):
    """aiohttp's ``RequestHandler``, quoting nothing of a refused request in its answer."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if exc is None or status >= 500:
            response = super().handle_error(request, status, exc, message)
        else:  # a parser's refusal: its message quotes the request
            response = super().handle_error(request, status, exc, refusal_text(status, exc))
        # Headers as every error of ours has.
        response.headers["X-Content-Type-Options"] = NOSNIFF
        response.headers["Cache-Control"] = NO_STORE
        response.headers["Server"] = SERVER
        return response
