"""What operators see: metrics (valid for promtool), health endpoints, one JSON access-log line per request,
and never a secret."""

from __future__ import annotations

import asyncio
import shutil
from asyncio.subprocess import PIPE, STDOUT

import pytest

from tests.api.conftest import ACME, ACME_KEY, GLOBEX_KEY, SIM_AK, SIM_SK, Gateway

pytestmark = pytest.mark.asyncio


async def _traffic(gateway: Gateway) -> None:
    await gateway.client.get("/v1/training-jobs?limit=2", headers=ACME)
    await gateway.client.get("/v1/training-jobs?limit=2", headers=ACME)
    await gateway.client.get("/v1/training-jobs", headers={"Authorization": "Bearer nope"})
    await gateway.client.get("/no/such/path/12345")


@pytest.mark.prometheus
async def test_metrics_pass_promtool(gateway: Gateway) -> None:
    """/metrics is Prometheus text that `promtool check metrics` accepts."""
    await _traffic(gateway)
    response = await gateway.client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: the test command installs Debian's prometheus package"
    check = await asyncio.create_subprocess_exec(promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT)
    output, _ = await check.communicate(text.encode())
    assert check.returncode == 0, output.decode()


async def test_contract_metrics_are_exported(gateway: Gateway) -> None:
    """Every metric named in the contract is present in /metrics."""
    await _traffic(gateway)
    text = await (await gateway.client.get("/metrics")).text()
    for name in (
        "metastudio_gateway_http_requests_total",
        "metastudio_gateway_http_request_duration_seconds_bucket",
        "metastudio_gateway_upstream_requests_total",
        "metastudio_gateway_upstream_request_duration_seconds_bucket",
        "metastudio_gateway_cache_requests_total",
        "metastudio_gateway_cache_entries",
        "metastudio_gateway_cache_bytes",
        "metastudio_gateway_cover_refreshes_total",
        "metastudio_gateway_cover_earliest_expiry_timestamp_seconds",
        "metastudio_gateway_expired_covers_served_total",
        "metastudio_gateway_build_info",
    ):
        assert f"\n{name}" in text, name


async def test_request_metrics_use_route_templates_and_configured_tenants(gateway: Gateway) -> None:
    """Labels stay bounded: route templates, not raw paths; tenants from config or 'anonymous'."""
    await _traffic(gateway)
    ok = gateway.metric(
        "metastudio_gateway_http_requests_total",
        route="/v1/training-jobs",
        method="GET",
        status="200",
        tenant="acme",
    )
    assert ok == 2
    assert (
        gateway.metric(
            "metastudio_gateway_http_requests_total",
            route="unmatched",
            method="GET",
            status="404",
            tenant="anonymous",
        )
        == 1
    )
    text = await (await gateway.client.get("/metrics")).text()
    assert "12345" not in text
    assert gateway.metric("metastudio_gateway_cache_requests_total", result="hit") == 1
    assert gateway.metric("metastudio_gateway_cache_requests_total", result="miss") == 1
    assert gateway.metric("metastudio_gateway_upstream_requests_total", outcome="200") == 1


async def test_one_json_access_log_line_per_request(gateway: Gateway) -> None:
    """Each request logs time, request_id, tenant, method, route, status, cache result and duration."""
    await gateway.client.get("/v1/training-jobs?limit=2", headers={**ACME, "X-Request-Id": "trace-123"})
    await gateway.client.get("/v1/training-jobs?limit=2", headers=ACME)
    miss, hit = gateway.log_records()
    assert miss["request_id"] == "trace-123"
    for record, cache in ((miss, "miss"), (hit, "hit")):
        assert record["tenant"] == "acme"
        assert record["route"] == "/v1/training-jobs"
        assert record["method"] == "GET"
        assert record["status"] == 200
        assert record["cache"] == cache
        assert record["duration_ms"] >= 0
        assert record["time"].endswith("Z")
    assert miss["upstream_status"] == "200"
    assert miss["upstream_duration_ms"] > 0
    assert "upstream_status" not in hit


async def test_request_id_is_echoed_or_made(gateway: Gateway) -> None:
    """X-Request-Id is echoed when sent and generated when not."""
    echoed = await gateway.client.get("/healthz", headers={"X-Request-Id": "abc-1"})
    assert echoed.headers["X-Request-Id"] == "abc-1"
    made = await gateway.client.get("/healthz")
    assert len(made.headers["X-Request-Id"]) >= 16


async def test_health_and_readiness(gateway: Gateway) -> None:
    """/healthz and /readyz answer 200 without auth on a running gateway."""
    assert (await gateway.client.get("/healthz")).status == 200
    ready = await gateway.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ready"


async def test_openapi_spec_is_served(gateway: Gateway) -> None:
    """/openapi.yaml serves the OpenAPI document."""
    response = await gateway.client.get("/openapi.yaml")
    assert response.status == 200
    assert (await response.text()).startswith("openapi: 3.1")


async def test_no_secret_in_logs_bodies_or_metrics(gateway: Gateway) -> None:
    """AK, SK and API keys never appear in access logs, response bodies, headers or metrics."""
    seen = bytearray()
    for path, headers in (
        ("/v1/training-jobs?limit=2", ACME),
        ("/v1/training-jobs?colour=1", ACME),
        ("/v1/training-jobs", {"Authorization": f"Bearer {GLOBEX_KEY}x"}),
        ("/v1/training-jobs/nope", ACME),
        ("/metrics", {}),
    ):
        response = await gateway.client.get(path, headers=headers)
        seen += await response.read() + str(dict(response.headers)).encode()
    seen += gateway.log.getvalue()
    for secret in (ACME_KEY, GLOBEX_KEY, SIM_AK, SIM_SK):
        assert secret.encode() not in seen, secret
