"""The gateway under test, over real HTTP, in front of a real simulator sharing one fake clock."""

from __future__ import annotations

import gc
import io
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.admission.api_keys import hash_key
from gateway.app import create_app
from gateway.clock import ManualClock
from gateway.config.settings import (
    CacheSettings,
    CircuitBreakerSettings,
    CorsSettings,
    CoverSettings,
    OidcSettings,
    RateLimitSettings,
    ServerSettings,
    Settings,
    Tenant,
    UpstreamSettings,
)
from gateway.config.url_signing import UrlSigningKey
from gateway.credentials.holder import CredentialsHolder
from gateway.credentials.static import CredentialSource
from gateway.fastpath.protocol import GatewayRunner
from gateway.outbound import Proxies
from gateway.simulator import RunningSimulator, running_simulator
from tests.leaks import record, register_secrets

ACME_KEY = "acme-secret-api-key-0001"
GLOBEX_KEY = "globex-secret-api-key-0002"
SIM_AK = "SIMULATOR-AK-7f3e"
SIM_SK = "SIMULATOR-SK-9b1c-do-not-leak"
TENANTS = (
    Tenant("acme", "acme-web", (hash_key(ACME_KEY),)),
    Tenant("globex", "globex-app", (hash_key(GLOBEX_KEY),)),
)
ACME = {"Authorization": f"Bearer {ACME_KEY}"}
GLOBEX = {"Authorization": f"Bearer {GLOBEX_KEY}"}
URL_SIGNING_SECRET = "cover-image-link-signing-secret-for-api-tests-0001"
URL_SIGNING_KEYS = (UrlSigningKey("test-k1", URL_SIGNING_SECRET.encode()),)
register_secrets([SIM_AK, SIM_SK, ACME_KEY, GLOBEX_KEY, URL_SIGNING_SECRET])
LONG_IMAGE_LINKS = {"image_url_ttl_seconds": 7 * 86400}
"""``covers=`` for tests of entries living many hours: cover-image links that outlive them."""
APP = "http://app.example.test:3000"
"""The browser origin ``cors_gateway`` allows."""
EVIL = "http://evil.example.test"
"""An origin no gateway here allows."""


@dataclass
class Gateway:
    """A running gateway, its simulator, clock, registry and captured access log."""

    client: GatewayClient
    app: web.Application
    simulator: RunningSimulator
    clock: ManualClock
    registry: CollectorRegistry
    log: io.BytesIO
    encoded: list[Any] = field(default_factory=list)
    chain_statuses: list[int] = field(default_factory=list)
    """The status of each response the aiohttp handler chain prepared (hits answered by the
    connection never reach it)."""

    @property
    def upstream_calls(self) -> int:
        return len(self.simulator.state.request_log)

    def log_records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.log.getvalue().splitlines()]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


GatewayFactory = Callable[..., Awaitable[Gateway]]


async def _record_response(request: web.Request, response: web.StreamResponse) -> None:
    body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
    record(f"{response.status} {dict(response.headers)}".encode() + b"\n" + body, "response (handler chain)")


def _recording_trace() -> aiohttp.TraceConfig:
    """Records what the client receives, body decoded: hits answered by the connection never
    reach ``on_response_prepare``, and a gzip body says nothing there. The body is read here
    (``read()`` keeps it for the test), so answers a test does not read are searched too."""
    trace = aiohttp.TraceConfig()

    async def on_end(_session: Any, _context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        response = params.response
        head = f"{response.status} {dict(response.headers)}".encode()
        try:
            body = await response.read()
        except aiohttp.ClientError:
            body = b""
        record(head + b"\n" + body)

    trace.on_request_end.append(on_end)
    return trace


@dataclass(frozen=True)
class Address:
    host: str
    port: int


class GatewayClient:
    """The app served as production serves it (``GatewayRunner``, no aiohttp access log) on a
    loopback port, and a client session whose relative URLs go to it."""

    def __init__(self, app: web.Application, **runner_options: Any) -> None:
        self.runner = GatewayRunner(app, **{"access_log": None, **runner_options})
        self.server = Address("127.0.0.1", 0)
        self._session: aiohttp.ClientSession | None = None

    async def start_server(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.server.host, 0)
        await site.start()
        self.server = Address(self.server.host, self.runner.addresses[0][1])
        self._session = aiohttp.ClientSession(
            base_url=f"http://{self.server.host}:{self.server.port}", trace_configs=[_recording_trace()]
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "start_server() first"
        return self._session

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.session.get(path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        return self.session.head(path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Any:
        return self.session.options(path, **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.runner.cleanup()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_gateway(clock: ManualClock) -> AsyncIterator[GatewayFactory]:
    """Build a gateway (settings overridable) in front of a fresh simulator."""
    stack: list[Any] = []
    built: list[Gateway] = []

    async def build(
        *,
        ttl_seconds: float = 60.0,
        margin_seconds: float = 3600.0,
        max_bytes: int = 64 * 1024 * 1024,
        env: dict[str, str] | None = None,
        endpoint: str | None = None,
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        simulator_options: dict[str, Any] | None = None,
        holder: Callable[[RunningSimulator], CredentialsHolder] | None = None,
        encode: Callable[[Any], bytes] = orjson.dumps,
        cors_origins: tuple[str, ...] = (),
        tenants: tuple[Tenant, ...] = TENANTS,
        upstream: dict[str, Any] | None = None,
        cache: dict[str, Any] | None = None,
        circuit_breaker: CircuitBreakerSettings | None = None,
        rate_limit: RateLimitSettings | None = None,
        fast_hit_path: bool = True,
        runner_options: dict[str, Any] | None = None,
        covers: dict[str, Any] | None = None,
        public_base_url: str = "",
        url_signing_keys: tuple[UrlSigningKey, ...] = URL_SIGNING_KEYS,
        oidc: OidcSettings | None = None,
        log_stream: io.BytesIO | None = None,
        log_flush_interval: float = 0,
        proxies: Proxies | None = None,
        upstream_host: str | None = None,
    ) -> Gateway:
        sim_cm = running_simulator(access_key=SIM_AK, secret_key=SIM_SK, clock=clock, **(simulator_options or {}))
        simulator = await sim_cm.__aenter__()
        stack.append(sim_cm)
        if upstream_host is not None:  # the simulator by another name (a forward proxy resolves it)
            endpoint = simulator.base_url.replace("127.0.0.1", upstream_host)
        settings = Settings(
            upstream=UpstreamSettings(
                endpoint=endpoint or simulator.base_url,
                project_id=simulator.project_id,
                timeout_seconds=timeout_seconds,
                max_attempts=max_attempts,
                **(upstream or {}),
            ),
            tenants=tenants,
            cache=CacheSettings(ttl_seconds=ttl_seconds, max_bytes=max_bytes, **(cache or {})),
            covers=CoverSettings(refresh_margin_seconds=margin_seconds, **(covers or {})),
            cors=CorsSettings(allowed_origins=cors_origins),
            circuit_breaker=circuit_breaker or CircuitBreakerSettings(),
            rate_limit=rate_limit or RateLimitSettings(),
            server=ServerSettings(fast_hit_path=fast_hit_path, public_base_url=public_base_url),
            oidc=oidc or OidcSettings(),
            proxies=proxies or Proxies(),
        )
        credentials = (
            holder(simulator)
            if holder is not None
            else CredentialSource(env or {"HUAWEICLOUD_SDK_AK": SIM_AK, "HUAWEICLOUD_SDK_SK": SIM_SK}, clock=clock)
        )
        registry = CollectorRegistry()
        log = io.BytesIO() if log_stream is None else log_stream
        encoded: list[Any] = []

        def counting_encoder(value: Any) -> bytes:
            encoded.append(value)
            return encode(value)

        register_secrets([SIM_AK, SIM_SK, ACME_KEY, GLOBEX_KEY, *(env or {}).values()])
        app = create_app(
            settings,
            credentials=credentials,
            clock=clock,
            registry=registry,
            encode=counting_encoder,
            log_stream=log,
            log_flush_interval=log_flush_interval,
            url_signing_keys=url_signing_keys,
        )
        app.on_response_prepare.append(_record_response)
        chain_statuses: list[int] = []

        async def note_status(_request: web.Request, response: web.StreamResponse) -> None:
            chain_statuses.append(response.status)

        app.on_response_prepare.append(note_status)
        client = GatewayClient(app, **(runner_options or {}))
        await client.start_server()
        stack.append(client)
        gateway = Gateway(client, app, simulator, clock, registry, log, encoded, chain_statuses)
        built.append(gateway)
        return gateway

    yield build
    for gateway in built:
        record(gateway.log.getvalue(), "access log")
        register_secrets(gateway.simulator.cloud.secrets())  # what its fake cloud issued
    for resource in reversed(stack):
        if isinstance(resource, GatewayClient):
            await resource.close()
        else:
            await resource.__aexit__(None, None, None)


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    """A gateway with default settings."""
    return await make_gateway()


@pytest.fixture
async def cors_gateway(make_gateway: GatewayFactory) -> Gateway:
    """A gateway whose CORS allows the origin ``APP``."""
    return await make_gateway(cors_origins=(APP,))


def held_by_the_gateway() -> int:
    """Bytes allocated by the gateway's own code and still held (``tracemalloc`` must be
    tracing): what a test sent, kept or recorded is not counted."""
    gc.collect()
    ours = [tracemalloc.Filter(inclusive=True, filename_pattern="*/gateway/*")]
    return sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(ours).statistics("filename"))
