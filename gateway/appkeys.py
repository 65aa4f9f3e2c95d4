"""Typed keys for what the application and each request carry (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.accesslog import RequestContext
from gateway.cors import CorsPolicy
from gateway.hits import HitResponder
from gateway.ratelimit import TenantRateLimiter
from gateway.service import TrainingJobService
from gateway.tenants import TenantDirectory


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
HIT_RESPONDER = web.AppKey("hit_responder", HitResponder)

REQUEST_CONTEXT = web.RequestKey("request_context", RequestContext)
