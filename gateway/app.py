"""The composition root: ``create_app`` is the one place that wires the gateway together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import IO, Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import __version__
from gateway.admission.api_keys import TenantDirectory
from gateway.admission.gate import Admission
from gateway.admission.jwks import IssuerKeys, JwksKeepers
from gateway.admission.rate_limit import RateLimiter, TenantRateLimiter, tenant_limits
from gateway.admission.tokens import TokenAuthenticator
from gateway.cache.backoff import KeyBackoff
from gateway.cache.cover_links import LocalCoverLinks
from gateway.cache.protocols import Backoff, CoverLinks, SingleFlight
from gateway.cache.single_flight import LocalSingleFlight
from gateway.cache.store import LocalEntryStore
from gateway.clock import Clock, SystemClock
from gateway.config.settings import Settings
from gateway.config.url_signing import VARIABLE as URL_SIGNING_KEYS_VARIABLE
from gateway.config.url_signing import UrlSigningKey, random_url_signing_keys
from gateway.credentials.holder import CredentialsHolder, StaticHolder
from gateway.credentials.static import CredentialSource
from gateway.fastpath.hits import HitResponder
from gateway.fastpath.protocol import CONNECTIONS_TURNED_AWAY, FAST_PATH_STATUS, HIT_RESPONDER
from gateway.jobs.image_links import CoverImageLinks
from gateway.jobs.query import ParsedQueries
from gateway.jobs.service import TrainingJobService
from gateway.observability.accesslog import AccessLog
from gateway.observability.logs import log_event
from gateway.observability.metrics import Metrics
from gateway.outbound import Outbound
from gateway.shared.backoff import SharedBackoff
from gateway.shared.cover_links import SharedCoverLinks
from gateway.shared.flights import LeasedSingleFlight
from gateway.shared.rate_limit import SharedRateLimiter
from gateway.shared.tier import RedisTier
from gateway.upstream.client import MetaStudioClient
from gateway.upstream.connections import UpstreamConnections
from gateway.web.appkeys import ADMISSION, CORS, LIFECYCLE, NOT_ROUTED, REGISTRY, SERVICE, Lifecycle
from gateway.web.cors import CorsPolicy
from gateway.web.handlers import (
    CoverImageHandler,
    JobHandlers,
    healthz,
    method_not_allowed,
    not_found,
    openapi_spec,
    options,
    prometheus_metrics,
    readyz,
)
from gateway.web.observe import make_observer
from gateway.web.routes import COVER_IMAGE_ROUTE, COVER_ROUTE, JOB_ROUTE, LIST_ROUTE, UNMATCHED_ROUTE
from gateway.web.tail import ResponseTail

# aiohttp's own parser limits: a backstop above the middleware's limits, which answer in JSON.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 32768
# Credential and JWKS endpoints' answers (the aiohttp session): an IAM token in X-Subject-Token
# is about 9 KB.
UPSTREAM_MAX_FIELD_SIZE = 32768
UPSTREAM_MAX_HEAD_BYTES = 65536
"""The header fields of a MetaStudio answer, names and values together (``UpstreamConnections``)."""
_log = logging.getLogger("gateway.app")


def create_app(
    settings: Settings,
    *,
    credentials: CredentialsHolder | CredentialSource,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    encode: Callable[[Any], bytes] = orjson.dumps,
    log_stream: IO[bytes] | None = None,
    log_flush_interval: float = 0.5,
    url_signing_keys: Sequence[UrlSigningKey] | None = None,
) -> web.Application:
    """Build the gateway application. Collaborators are passed in; nothing is global.
    Without ``url_signing_keys`` a random key signs cover-image links (a warning says so)."""
    clock = clock or SystemClock()
    if not url_signing_keys:
        _log.warning(
            f"{URL_SIGNING_KEYS_VARIABLE} is not set: cover_image_url links are signed with a random key"
            " and work only on this replica until it restarts"
        )
        url_signing_keys = random_url_signing_keys()
    image_links = CoverImageLinks(
        url_signing_keys,
        settings.tenants,
        ttl_seconds=settings.covers.image_url_ttl_seconds,
        base_url=settings.server.public_base_url,
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry)
    store = LocalEntryStore(
        max_bytes=settings.cache.max_bytes, max_bytes_per_tenant=settings.cache.max_bytes_per_tenant, clock=clock
    )
    limits = tenant_limits(settings.tenants, settings.rate_limit)
    # Local or shared: with a Redis URL, L1 stays this store and the rest goes through Redis.
    tier = RedisTier(settings.shared, metrics) if settings.shared.redis_url else None
    flights: SingleFlight
    backoff: Backoff
    cover_links: CoverLinks
    rate_limiter: RateLimiter
    if tier is None:
        flights, backoff, cover_links = LocalSingleFlight(store), KeyBackoff(clock), LocalCoverLinks()
        rate_limiter = TenantRateLimiter(limits, clock)
    else:
        backoff = shared_backoff = SharedBackoff(KeyBackoff(clock), clock)
        flights = LeasedSingleFlight(
            store=store,
            tier=tier,
            backoff=shared_backoff,
            clock=clock,
            wait_seconds=settings.upstream.timeout_seconds,
            fresh_seconds=settings.cache.ttl_seconds,
            kept_seconds=settings.cache.ttl_seconds
            + max(settings.cache.stale_if_error_seconds, settings.cache.stale_while_revalidate_seconds),
        )
        cover_links = SharedCoverLinks(tier, LocalCoverLinks(), clock)
        rate_limiter = SharedRateLimiter(limits, tier, clock)
    metrics.cache_entries.set_function(lambda: store.entry_count)
    metrics.cache_bytes.set_function(lambda: store.byte_count)
    metrics.cover_earliest_expiry.set_function(lambda: store.earliest_cover_expiry() or 0.0)
    access_log = AccessLog(log_stream or sys.stdout.buffer, flush_interval=log_flush_interval)
    cors = CorsPolicy(settings.cors.allowed_origins, settings.cors.max_age_seconds)

    app = web.Application(handler_args={"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE})
    tail = ResponseTail(cors=cors, stats=metrics.requests, access_log=access_log)
    observe = make_observer(tail, access_log)
    queries = ParsedQueries()
    # End-user JWTs: each issuer's keys are a local front, fed by a keeper on the session below.
    issuer_keys = [IssuerKeys(issuer, clock, metrics) for issuer in settings.oidc.issuers]
    tokens = TokenAuthenticator(issuer_keys, settings.tenants, clock, metrics) if issuer_keys else None
    jwks_keepers = JwksKeepers(issuer_keys)
    admission = app[ADMISSION] = Admission(TenantDirectory(settings.tenants), rate_limiter, tokens)
    app[REGISTRY] = registry
    app[FAST_PATH_STATUS] = metrics.fast_path_enabled
    app[CONNECTIONS_TURNED_AWAY] = metrics.connections_turned_away
    holder = StaticHolder(credentials) if isinstance(credentials, CredentialSource) else credentials
    app[LIFECYCLE] = Lifecycle(credentials_valid=holder.valid)

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        if settings.proxies.by_scheme:  # the operator's first question when outbound calls fail
            log_event(_log, settings.proxies.describe(), event="outbound_proxy")
        # The MetaStudio calls go on their own keep-alive connections; the aiohttp session serves
        # the credential and JWKS endpoints. DummyCookieJar: a shared jar would leak cookies across tenants.
        async with (
            contextlib.aclosing(
                UpstreamConnections(
                    settings.upstream.endpoint,
                    connect_timeout=settings.upstream.connect_timeout_seconds,
                    read_timeout=settings.upstream.read_timeout_seconds,
                    max_body_bytes=settings.upstream.max_body_bytes,
                    max_head_bytes=UPSTREAM_MAX_HEAD_BYTES,
                    proxy=settings.proxies.for_url(settings.upstream.endpoint),
                )
            ) as connections,
            aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=settings.upstream.connect_timeout_seconds,
                    sock_read=settings.upstream.read_timeout_seconds,
                ),
                headers={"User-Agent": f"metastudio-gateway/{__version__}"},
                auto_decompress=True,
                max_field_size=UPSTREAM_MAX_FIELD_SIZE,
            ) as session,
            holder.running(outbound := Outbound(session, settings.proxies), metrics),
            jwks_keepers.running(outbound),
        ):
            client = MetaStudioClient(
                connections=connections,
                settings=settings.upstream,
                breaker_policy=settings.circuit_breaker,
                credentials=holder,
                clock=clock,
                metrics=metrics,
            )
            for tenant in settings.tenants:
                metrics.circuit_state.labels(tenant=tenant.id).set_function(
                    client.breaker(tenant.app_user_id).state_value
                )
            service = app[SERVICE] = TrainingJobService(
                client=client,
                store=store,
                flights=flights,
                backoff=backoff,
                cover_links=cover_links,
                image_links=image_links,
                settings=settings,
                clock=clock,
                metrics=metrics,
                encode=encode,
            )
            if settings.server.fast_hit_path:
                app[HIT_RESPONDER] = HitResponder(
                    service=service,
                    admission=admission,
                    queries=queries,
                    tail=tail,
                    access_log=access_log,
                    clock=clock,
                )
            app[LIFECYCLE].ready = True
            yield
            app[LIFECYCLE].ready = False
            await flights.close()

    async def access_log_flusher(_app: web.Application) -> AsyncIterator[None]:
        if access_log.flush_interval <= 0:
            yield
            return
        flusher = asyncio.create_task(access_log.flush_periodically())
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher

    async def shared_tier(_app: web.Application) -> AsyncIterator[None]:
        if tier is None:
            yield
            return
        await tier.start()
        yield
        await tier.close()

    async def stop_being_ready(app: web.Application) -> None:
        app[LIFECYCLE].ready = False

    app.cleanup_ctx.append(access_log_flusher)
    app.cleanup_ctx.append(shared_tier)
    app.cleanup_ctx.append(upstream_session)
    app.on_shutdown.append(stop_being_ready)

    app[CORS] = cors
    jobs = JobHandlers(clock, queries)
    cover_images = CoverImageHandler(image_links, clock, settings.covers.refresh_margin_seconds)
    for path, handler in (
        (LIST_ROUTE, jobs.list_jobs),
        (JOB_ROUTE, jobs.get_job),
        (COVER_ROUTE, jobs.cover),
        (COVER_IMAGE_ROUTE, cover_images.redirect),
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
    app[NOT_ROUTED] = observe(UNMATCHED_ROUTE, not_found)
    app.router.add_route("*", "/{path:.*}", app[NOT_ROUTED])
    return app
