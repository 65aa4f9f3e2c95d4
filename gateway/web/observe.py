"""Around every request: a request id, errors as the JSON envelope, CORS, metrics, the access log.

Applied by wrapping each route's handler once at start-up (``observe(route, handler)``), not as
an aiohttp middleware: aiohttp rebuilds a middleware chain (``functools.partial`` and
``update_wrapper``) on every request, which cost more than everything the wrapper does. Unknown
paths and methods reach catch-all routes that are wrapped the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import orjson
from aiohttp import web

from gateway.admission.request_limits import check_size
from gateway.errors import (
    AuthUnavailable,
    GatewayError,
    InvalidParameter,
    InvalidRequest,
    InvalidToken,
    MethodNotAllowed,
    RateLimited,
    Unauthenticated,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.observability.accesslog import CURRENT_REQUEST, AccessLog, RequestContext, exception_record
from gateway.web.appkeys import REQUEST_CONTEXT, Handler
from gateway.web.tail import SERVER, ResponseTail

ALLOWED_METHODS = "GET, HEAD, OPTIONS"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})


def check_request_shape(request: web.Request) -> None:
    """Refuse oversized targets and header sets, bodies on the read-only methods, and more than
    one ``Authorization`` header (which the size limit does not count, and which a proxy in
    front may read otherwise: the last where this would read the first)."""
    check_size(request.raw_path, request.raw_headers)
    if request.body_exists and request.method in _READ_METHODS:
        raise InvalidRequest(f"{request.method} requests take no body")
    if len(request.headers.getall("Authorization", ())) > 1:
        raise InvalidRequest("the request has more than one Authorization header")


def error_response(error: GatewayError, request_id: str) -> web.Response:
    """The JSON error envelope for ``error``."""
    body = {"error": {"code": error.code, "message": error.message, "request_id": request_id}}
    response = web.Response(status=error.status, body=orjson.dumps(body), content_type="application/json")
    if isinstance(error, RateLimited | AuthUnavailable):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    elif isinstance(error, UpstreamUnavailable | UpstreamTimeout) and error.retry_after_seconds is not None:
        # Until the gateway asks the upstream for this again (the key's backoff, an open circuit).
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_seconds)))
    elif isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = ALLOWED_METHODS
    elif isinstance(error, InvalidToken):  # RFC 6750: the reason, in fixed words of our own
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="metastudio-gateway", error="invalid_token", error_description="{error.reason}"'
        )
    elif isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="metastudio-gateway"'
    return response


def _translate_http_exception(exc: web.HTTPException) -> GatewayError:
    if exc.status < 500:  # a refusal of the request itself (aiohttp raises few)
        return InvalidParameter("request", exc.reason.lower())
    return GatewayError()


def method_label(method: str) -> str:
    """The method as a bounded metric label."""
    return method if method in _KNOWN_METHODS else "OTHER"


def make_observer(tail: ResponseTail, access_log: AccessLog) -> Callable[[str, Handler], Handler]:
    """Build ``observe(route, handler)``: the handler, with checks, errors as the envelope, and
    the response tail (request id, CORS, counters, log line) shared with the fast path."""

    def observe(route: str, handler: Handler) -> Handler:
        async def observed(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            request_id = tail.request_id(request.headers.get("X-Request-Id"))
            context = request[REQUEST_CONTEXT] = RequestContext(request_id)
            CURRENT_REQUEST.set(context)
            response: web.StreamResponse
            try:
                check_request_shape(request)
                response = await handler(request)
            except GatewayError as error:
                response = error_response(error, request_id)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = error_response(_translate_http_exception(exc), request_id)
            except Exception as exc:
                access_log.write(exception_record(exc, request_id=request_id))
                response = error_response(GatewayError(), request_id)
            seconds = time.perf_counter() - started
            response.headers["X-Request-Id"] = request_id
            response.headers["Server"] = SERVER
            tail.decorate(response.headers, request.headers.get("Origin"), response.status)
            tail.account(
                request_id,
                route,
                method_label(request.method),
                response.status,
                context.tenant,
                context.cache,
                seconds,
                context.attempts,
            )
            tail.settle()
            return response

        return observed

    return observe
