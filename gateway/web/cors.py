"""CORS for browser frontends: an origin allow-list, preflight answers, exposed headers.

Only listed origins get ``Access-Control-Allow-*`` headers (and ``Timing-Allow-Origin``, so the
page may read the Resource Timing of what it fetched); any other origin gets nothing, so the
browser refuses to hand the response to its page. When any origin is listed every answer says
``Vary: Origin``, since the headers depend on it. Bearer keys and JWTs travel in the
``Authorization`` header, which preflights approve by name (never ``*``), and never in cookies,
so credentials mode is never enabled (no ``Access-Control-Allow-Credentials``).

Hand-written rather than aiohttp-cors: the policy is one allow-list for every route, and it
must also decorate the error envelopes our middleware builds (aiohttp-cors configures routes
one by one and leaves unmatched-route errors alone). It is a dozen lines on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

ALLOWED_METHODS = "GET, HEAD"
_USED_REQUEST_HEADERS = ("Authorization", "If-None-Match", "X-Request-Id")
_IGNORED_REQUEST_HEADERS = ("Content-Type", "X-Requested-With", "traceparent", "tracestate", "baggage", "sentry-trace")
"""Headers frontends' libraries add to every call (a JSON ``Content-Type`` on a GET, jQuery's
marker, W3C trace context and baggage from OpenTelemetry, Sentry's trace): approved so that a
preflight asking for them is not refused, which fails every call of such a page; the gateway
reads none of them and sends none upstream."""
ALLOWED_REQUEST_HEADERS = frozenset(name.lower() for name in _USED_REQUEST_HEADERS + _IGNORED_REQUEST_HEADERS)
APPROVED_REQUEST_HEADERS = ", ".join(_USED_REQUEST_HEADERS + _IGNORED_REQUEST_HEADERS)
EXPOSED_HEADERS = "ETag, X-Cache, X-Request-Id, Age, Retry-After, WWW-Authenticate"


class CorsPolicy:
    """Which browser origins may call the gateway, and the headers that tell them so."""

    def __init__(self, allowed_origins: Iterable[str], max_age_seconds: int) -> None:
        self._origins = frozenset(allowed_origins)
        self._max_age = str(max_age_seconds)

    def decorate(self, origin: str | None, headers: MutableMapping[str, str]) -> None:
        """Add the CORS response headers for an allowed ``origin``; nothing otherwise."""
        if not self._origins:
            return
        vary = headers.get("Vary")
        headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        if origin in self._origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            headers["Timing-Allow-Origin"] = origin

    def preflight(
        self, origin: str | None, method: str | None, request_headers: str | None, headers: MutableMapping[str, str]
    ) -> None:
        """Add preflight approval when the origin, method and headers are all allowed."""
        if origin not in self._origins or method not in ("GET", "HEAD"):
            return
        asked = {name.strip().lower() for name in (request_headers or "").split(",") if name.strip()}
        if not asked <= ALLOWED_REQUEST_HEADERS:
            return
        headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        headers["Access-Control-Allow-Headers"] = APPROVED_REQUEST_HEADERS
        headers["Access-Control-Max-Age"] = self._max_age
