"""Typed keys for what the application and each request carry (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.admission.api_keys import TenantDirectory
from gateway.admission.rate_limit import TenantRateLimiter
from gateway.jobs.service import TrainingJobService
from gateway.observability.accesslog import RequestContext
from gateway.web.cors import CorsPolicy


@dataclass(slots=True)
class Lifecycle:
    """Readiness: set when the app is serving, cleared the moment it starts draining."""

    ready: bool = False


SERVICE = web.AppKey("service", TrainingJobService)
TENANTS = web.AppKey("tenants", TenantDirectory)
RATE_LIMITER = web.AppKey("rate_limiter", TenantRateLimiter)
CORS = web.AppKey("cors", CorsPolicy)
REGISTRY = web.AppKey("registry", CollectorRegistry)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)

REQUEST_CONTEXT = web.RequestKey("request_context", RequestContext)
