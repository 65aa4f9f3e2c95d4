"""HTTP in and out only: authenticate, validate, call the service, write bytes."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web
from cachetools import LRUCache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.appkeys import CORS, LIFECYCLE, RATE_LIMITER, REGISTRY, REQUEST_CONTEXT, SERVICE, TENANTS
from gateway.clock import Clock
from gateway.config import Tenant
from gateway.errors import MethodNotAllowed, NotFound, RateLimited
from gateway.middlewares import ALLOWED_METHODS
from gateway.query import UpstreamQuery, check_job_id, parse_list_query
from gateway.service import Served

_X_CACHE = {"hit": "HIT", "miss": "MISS", "coalesced": "MISS", "stale": "STALE"}
OPENAPI_SPEC = files("gateway").joinpath("openapi.yaml")
QUERY_CACHE_SIZE = 4096


def _tenant(request: web.Request) -> Tenant:
    """The authenticated tenant, if within its rate limit."""
    tenant = request.app[TENANTS].authenticate(request.headers.get("Authorization"))
    request[REQUEST_CONTEXT].tenant = tenant.id
    retry_after = request.app[RATE_LIMITER].retry_after(tenant.id)
    if retry_after:
        raise RateLimited(retry_after)
    return tenant


def _job_id(request: web.Request) -> str:
    return check_job_id("job_id", request.match_info["job_id"])


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in candidates or etag in candidates


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value admits gzip (``gzip;q=0`` refuses it)."""
    if "gzip" not in accept_encoding:
        return False
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip().lower()
            return not quality.startswith("q=") or quality[2:].strip() not in ("0", "0.0", "0.00", "0.000")
    return False


def entry_response(request: web.Request, served: Served, clock: Clock) -> web.Response:
    """The cached body (gzip-compressed when the client accepts it), or 304, with caching headers."""
    entry = served.entry
    request[REQUEST_CONTEXT].cache = served.result
    now = clock.now()
    gzipped = entry.gzip_body is not None and accepts_gzip(request.headers.get("Accept-Encoding", ""))
    etag = entry.gzip_etag if gzipped else entry.etag
    headers = {
        "Content-Type": "application/json",
        "ETag": etag,
        "X-Cache": _X_CACHE[served.result],
        "Cache-Control": f"private, max-age={max(0, int(entry.fresh_until - now))}",
        "Vary": "Authorization, Accept-Encoding",
    }
    if served.result in ("hit", "stale"):
        headers["Age"] = str(max(0, int(now - entry.fetched_at)))
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=entry.gzip_body if gzipped else entry.body, headers=headers)


class JobHandlers:
    """The ``/v1/training-jobs`` endpoints."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Raw query string -> normalised query: popular lists skip parsing and validation.
        self._queries: LRUCache[str, UpstreamQuery] = LRUCache(maxsize=QUERY_CACHE_SIZE)

    def _query(self, request: web.Request) -> UpstreamQuery:
        raw = request.rel_url.raw_query_string
        query = self._queries.get(raw)
        if query is None:
            query = self._queries[raw] = parse_list_query(request.rel_url.query.items())
        return query

    async def list_jobs(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        query = self._query(request)
        served = await request.app[SERVICE].list_jobs(tenant, query)
        return entry_response(request, served, self._clock)

    async def get_job(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        served = await request.app[SERVICE].get_job(tenant, _job_id(request))
        return entry_response(request, served, self._clock)

    async def cover(self, request: web.Request) -> web.Response:
        tenant = _tenant(request)
        location = await request.app[SERVICE].cover_location(tenant, _job_id(request))
        return web.Response(status=302, headers={"Location": location, "Cache-Control": "private, no-store"})


async def options(request: web.Request) -> web.Response:
    """OPTIONS on a route: the allowed methods, and CORS preflight approval where the policy allows."""
    response = web.Response(status=204, headers={"Allow": ALLOWED_METHODS})
    request.app[CORS].preflight(
        request.headers.get("Origin"),
        request.headers.get("Access-Control-Request-Method"),
        request.headers.get("Access-Control-Request-Headers"),
        response.headers,
    )
    return response


async def method_not_allowed(request: web.Request) -> web.Response:
    """Any other method on a known route."""
    raise MethodNotAllowed(f"method {request.method[:16]} not allowed; allowed: {ALLOWED_METHODS}")


async def not_found(_request: web.Request) -> web.Response:
    """Any path the gateway does not serve."""
    raise NotFound("no such route")


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Credentials and tenants are loaded and the gateway is not draining."""
    if request.app[LIFECYCLE].ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not_ready"}, status=503)


async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the app's registry."""
    return web.Response(body=generate_latest(request.app[REGISTRY]), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_spec(_request: web.Request) -> web.Response:
    """The OpenAPI description of this API."""
    return web.Response(body=OPENAPI_SPEC.read_bytes(), content_type="application/yaml")
