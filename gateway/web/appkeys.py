"""Typed keys for what the application and each request carry (no module globals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.admission.gate import Admission
from gateway.jobs.service import TrainingJobService
from gateway.observability.accesslog import RequestContext
from gateway.web.cors import CorsPolicy


def _always() -> bool:
    return True


@dataclass(slots=True)
class Lifecycle:
    """Readiness: set when the app is serving, cleared the moment it starts draining; and
    ``credentials_valid`` says whether unexpired cloud credentials are held now."""

    ready: bool = False
    credentials_valid: Callable[[], bool] = _always


SERVICE = web.AppKey("service", TrainingJobService)
ADMISSION = web.AppKey("admission", Admission)
CORS = web.AppKey("cors", CorsPolicy)
REGISTRY = web.AppKey("registry", CollectorRegistry)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""A route's handler."""

NOT_ROUTED: web.AppKey[Handler] = web.AppKey("not_routed")
"""The observed 404 for a request target no route can match, not even the catch-all (``*`` of
``OPTIONS *``, ``host:port`` of ``CONNECT``): the connection hands such requests to it."""

REQUEST_CONTEXT = web.RequestKey("request_context", RequestContext)
