"""HTTP in and out only: authenticate, validate, call the service, write bytes."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.clock import Clock
from gateway.errors import InvalidParameter, MethodNotAllowed, NotFound
from gateway.jobs.query import ParsedQueries, check_job_id
from gateway.jobs.service import Served
from gateway.tenant import Tenant
from gateway.upstream.query import UpstreamQuery
from gateway.web.appkeys import ADMISSION, CORS, LIFECYCLE, REGISTRY, REQUEST_CONTEXT, SERVICE
from gateway.web.observe import ALLOWED_METHODS
from gateway.web.representation import represent

OPENAPI_SPEC = files("gateway").joinpath("openapi.yaml")


def _tenant(request: web.Request) -> Tenant:
    """The authenticated tenant, if within its rate limit (the same seam the fast path uses)."""
    admission = request.app[ADMISSION]
    tenant = admission.authenticate(request.headers.get("Authorization"))
    request[REQUEST_CONTEXT].tenant = tenant.id
    admission.pass_now(tenant)
    return tenant


def _job_id(request: web.Request) -> str:
    """The path's job id; these routes take no query parameters, so any given is refused by name."""
    given = next(iter(request.rel_url.query), None)
    if given is not None:
        raise InvalidParameter(given[:64], "is not a supported parameter")
    return check_job_id("job_id", request.match_info["job_id"])


def entry_response(request: web.Request, served: Served, clock: Clock) -> web.Response:
    """The cached entry as the client accepts it (gzip, or 304 when it holds it already)."""
    request[REQUEST_CONTEXT].cache = served.result
    headers = request.headers
    answer = represent(
        served.entry, served.result, clock.now(), headers.get("Accept-Encoding"), headers.get("If-None-Match")
    )
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


class JobHandlers:
    """The ``/v1/training-jobs`` endpoints."""

    def __init__(self, clock: Clock, queries: ParsedQueries) -> None:
        self._clock = clock
        self._queries = queries

    def _query(self, request: web.Request) -> UpstreamQuery:
        url = request.rel_url
        return self._queries.parse(url.raw_query_string, url.query.items)

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
    """Tenants are loaded, unexpired cloud credentials are held, and the gateway is not draining."""
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.ready and lifecycle.credentials_valid():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not_ready"}, status=503)


async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the app's registry."""
    return web.Response(body=generate_latest(request.app[REGISTRY]), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_spec(_request: web.Request) -> web.Response:
    """The OpenAPI description of this API."""
    return web.Response(body=OPENAPI_SPEC.read_bytes(), content_type="application/yaml")
