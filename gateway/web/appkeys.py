"""Typed keys for what the application and each request carry (no module globals)."""

from __future__ import annotations

from collections.abc import Callable
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

REQUEST_CONTEXT = web.RequestKey("request_context", RequestContext)
