"""The composition root: ``create_app`` is the one place that wires the gateway together."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import IO, Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import __version__
from gateway.admission.api_keys import TenantDirectory
from gateway.admission.rate_limit import TenantRateLimiter, tenant_limits
from gateway.cache.store import ResponseCache
from gateway.clock import Clock, SystemClock
from gateway.config.settings import Settings
from gateway.credentials.static import CredentialSource
from gateway.fastpath.hits import JOB_ROUTE, LIST_ROUTE, HitResponder
from gateway.fastpath.protocol import HIT_RESPONDER
from gateway.jobs.query import ParsedQueries
from gateway.jobs.service import TrainingJobService
from gateway.observability.accesslog import AccessLog
from gateway.observability.metrics import Metrics
from gateway.upstream.client import MetaStudioClient
from gateway.web.appkeys import CORS, LIFECYCLE, RATE_LIMITER, REGISTRY, SERVICE, TENANTS, Lifecycle
from gateway.web.cors import CorsPolicy
from gateway.web.handlers import (
    JobHandlers,
    healthz,
    method_not_allowed,
    not_found,
    openapi_spec,
    options,
    prometheus_metrics,
    readyz,
)
from gateway.web.observe import UNMATCHED_ROUTE, make_observer
from gateway.web.request_ids import RequestIds

# aiohttp's own parser limits: a backstop above the middleware's limits, which answer in JSON.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 16384


def create_app(
    settings: Settings,
    *,
    credentials: CredentialSource,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    encode: Callable[[Any], bytes] = orjson.dumps,
    log_stream: IO[bytes] | None = None,
    log_flush_interval: float = 0.5,
) -> web.Application:
    """Build the gateway application. Collaborators are passed in; nothing is global."""
    clock = clock or SystemClock()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry)
    cache = ResponseCache(max_bytes=settings.cache.max_bytes, clock=clock)
    metrics.cache_entries.set_function(lambda: cache.entry_count)
    metrics.cache_bytes.set_function(lambda: cache.byte_count)
    metrics.cover_earliest_expiry.set_function(lambda: cache.earliest_cover_expiry() or 0.0)
    access_log = AccessLog(log_stream or sys.stdout.buffer, flush_interval=log_flush_interval)
    cors = CorsPolicy(settings.cors.allowed_origins, settings.cors.max_age_seconds)

    app = web.Application(handler_args={"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE})
    request_ids = RequestIds()
    observe = make_observer(metrics, access_log, cors, request_ids)
    queries = ParsedQueries()
    tenants = app[TENANTS] = TenantDirectory(settings.tenants)
    rate_limiter = app[RATE_LIMITER] = TenantRateLimiter(tenant_limits(settings.tenants, settings.rate_limit), clock)
    app[REGISTRY] = registry
    app[LIFECYCLE] = Lifecycle()

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        # One session per app; DummyCookieJar: a shared jar would leak cookies across tenants.
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=settings.upstream.connect_timeout_seconds,
                sock_read=settings.upstream.read_timeout_seconds,
            ),
            headers={"User-Agent": f"metastudio-gateway/{__version__}"},
            auto_decompress=True,
        ) as session:
            client = MetaStudioClient(
                session=session,
                settings=settings.upstream,
                breaker_policy=settings.circuit_breaker,
                credentials=credentials,
                clock=clock,
                metrics=metrics,
            )
            for tenant in settings.tenants:
                metrics.circuit_state.labels(tenant=tenant.id).set_function(
                    client.breaker(tenant.app_user_id).state_value
                )
            service = app[SERVICE] = TrainingJobService(
                client=client, cache=cache, settings=settings, clock=clock, metrics=metrics, encode=encode
            )
            if settings.server.fast_hit_path:
                app[HIT_RESPONDER] = HitResponder(
                    service=service,
                    tenants=tenants,
                    rate_limiter=rate_limiter,
                    queries=queries,
                    cors=cors,
                    request_ids=request_ids,
                    metrics=metrics,
                    access_log=access_log,
                    clock=clock,
                )
            app[LIFECYCLE].ready = True
            yield
            app[LIFECYCLE].ready = False
            await cache.close()

    async def access_log_flusher(_app: web.Application) -> AsyncIterator[None]:
        if access_log.flush_interval <= 0:
            yield
            return
        flusher = asyncio.create_task(access_log.flush_periodically())
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher

    async def stop_being_ready(app: web.Application) -> None:
        app[LIFECYCLE].ready = False

    app.cleanup_ctx.append(access_log_flusher)
    app.cleanup_ctx.append(upstream_session)
    app.on_shutdown.append(stop_being_ready)

    app[CORS] = cors
    jobs = JobHandlers(clock, queries)
    for path, handler in (
        (LIST_ROUTE, jobs.list_jobs),
        (JOB_ROUTE, jobs.get_job),
        (f"{JOB_ROUTE}/cover", jobs.cover),
        ("/healthz", healthz),
        ("/readyz", readyz),
        ("/metrics", prometheus_metrics),
        ("/openapi.yaml", openapi_spec),
    ):
        resource = app.router.add_resource(path)
        resource.add_route("GET", observe(path, handler))
        resource.add_route("HEAD", observe(path, handler))
        resource.add_route("OPTIONS", observe(path, options))
        resource.add_route("*", observe(path, method_not_allowed))
    app.router.add_route("*", "/{path:.*}", observe(UNMATCHED_ROUTE, not_found))
    return app
