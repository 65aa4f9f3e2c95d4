"""HTTP in and out only: authenticate, validate, call the service, write bytes."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web
from multidict import CIMultiDictProxy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.clock import Clock
from gateway.errors import InvalidParameter, MethodNotAllowed, NotFound
from gateway.jobs.image_links import LINK_PARAMETERS, CoverImageLinks
from gateway.jobs.query import ParsedQueries, check_job_id
from gateway.jobs.service import Served
from gateway.tenant import Tenant
from gateway.upstream.query import UpstreamQuery
from gateway.web.appkeys import ADMISSION, CORS, LIFECYCLE, REGISTRY, REQUEST_CONTEXT, SERVICE
from gateway.web.observe import ALLOWED_METHODS
from gateway.web.representation import represent
from gateway.web.tail import NO_STORE

OPENAPI_SPEC = files("gateway").joinpath("openapi.yaml")
COVER_REDIRECT_HEADERS = {"Referrer-Policy": "no-referrer", "Cross-Origin-Resource-Policy": "cross-origin"}
"""On every redirect to a cover: no page URL (nor the signed link itself) goes to the storage host
as a Referer, and a page on any origin may embed the image."""


async def _tenant(request: web.Request) -> Tenant:
    """The authenticated tenant, if within its rate limit (the same seam the fast path uses)."""
    admission = request.app[ADMISSION]
    tenant = await admission.authenticate(request.headers.get("Authorization"))
    request[REQUEST_CONTEXT].tenant = tenant.id
    admission.pass_now(tenant)
    return tenant


def _job_id(request: web.Request) -> str:
    """The path's job id; these routes take no query parameters, so any given is refused by name."""
    given = next(iter(request.rel_url.query), None)
    if given is not None:
        raise InvalidParameter(given[:64], "is not a supported parameter")
    return check_job_id("job_id", request.match_info["job_id"])


def cover_redirect(location: str, cache_control: str) -> web.Response:
    """302 to a live cover URL."""
    return web.Response(
        status=302, headers={"Location": location, "Cache-Control": cache_control, **COVER_REDIRECT_HEADERS}
    )


def entry_response(request: web.Request, served: Served, clock: Clock) -> web.Response:
    """The cached entry as the client accepts it (gzip, or 304 when it holds it already)."""
    request[REQUEST_CONTEXT].cache = served.result
    headers = request.headers
    answer = represent(
        served.entry, served.result, clock.now(), _list(headers, "Accept-Encoding"), _list(headers, "If-None-Match")
    )
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


def _list(headers: CIMultiDictProxy[str], name: str) -> str | None:
    """A list-valued header as one value, however many lines it came on (RFC 9110 5.3: a
    recipient may join them with commas); ``None`` if absent. Only the first line was read, so
    an ETag on the second line got a 200, not a 304."""
    values = headers.getall(name, ())
    return ", ".join(values) if values else None


class JobHandlers:
    """The ``/v1/training-jobs`` endpoints."""

    def __init__(self, clock: Clock, queries: ParsedQueries) -> None:
        self._clock = clock
        self._queries = queries

    def _query(self, request: web.Request) -> UpstreamQuery:
        url = request.rel_url
        return self._queries.parse(url.raw_query_string, url.query.items)

    async def list_jobs(self, request: web.Request) -> web.Response:
        tenant = await _tenant(request)
        query = self._query(request)
        served = await request.app[SERVICE].list_jobs(tenant, query)
        return entry_response(request, served, self._clock)

    async def get_job(self, request: web.Request) -> web.Response:
        tenant = await _tenant(request)
        served = await request.app[SERVICE].get_job(tenant, _job_id(request))
        return entry_response(request, served, self._clock)

    async def cover(self, request: web.Request) -> web.Response:
        tenant = await _tenant(request)
        location = await request.app[SERVICE].cover_location(tenant, _job_id(request))
        return cover_redirect(location, "private, no-store")


class CoverImageHandler:
    """``/v1/training-jobs/{job_id}/cover-image?tenant=&exp=&kid=&sig=``: a signed link that needs
    no header (an ``<img src>``). Its query is read here only: logs and metrics see the route template."""

    def __init__(self, links: CoverImageLinks, clock: Clock, margin_seconds: float) -> None:
        self._links = links
        self._clock = clock
        self._margin = margin_seconds

    async def redirect(self, request: web.Request) -> web.Response:
        """302 to a live cover for a genuine, unexpired link (403 if not genuine, 410 if expired).
        Browsers may reuse the redirect while both the link and the cover URL it leads to still work."""
        job_id = check_job_id("job_id", request.match_info["job_id"])
        query = request.rel_url.query
        for name in query:
            if name not in LINK_PARAMETERS:
                raise InvalidParameter(name[:64], "is not a supported parameter")
            if len(query.getall(name)) > 1:
                raise InvalidParameter(name, "may be given only once")
        tenant, seconds_left = self._links.check(job_id, query, self._clock.now())
        request[REQUEST_CONTEXT].tenant = tenant.id
        request.app[ADMISSION].pass_now(tenant)
        location = await request.app[SERVICE].cover_location(tenant, job_id)
        # The cover URL stays valid for more than the margin from now (cover_location's promise).
        return cover_redirect(location, f"private, max-age={int(min(seconds_left, self._margin))}")


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


NOT_STORED = {"Cache-Control": NO_STORE}
"""On answers about this moment (health, readiness, metrics): a cache in front (a CDN, a proxy)
may otherwise keep an answer without ``Cache-Control`` by its own heuristic (RFC 9111 4.2.2), and
serve a draining replica's "ready" or frozen metrics."""


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "ok"}, headers=NOT_STORED)


async def readyz(request: web.Request) -> web.Response:
    """Tenants are loaded, unexpired cloud credentials are held, and the gateway is not draining."""
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.ready and lifecycle.credentials_valid():
        return web.json_response({"status": "ready"}, headers=NOT_STORED)
    return web.json_response({"status": "not_ready"}, status=503, headers=NOT_STORED)


async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the app's registry."""
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, **NOT_STORED})


async def openapi_spec(_request: web.Request) -> web.Response:
    """The OpenAPI description of this API (revalidated: it changes with the gateway's version)."""
    body = OPENAPI_SPEC.read_bytes()
    return web.Response(body=body, content_type="application/yaml", headers={"Cache-Control": "no-cache"})
