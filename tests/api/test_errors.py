"""Every error a caller can meet arrives in the JSON envelope with its documented status and code."""

from __future__ import annotations

import socket
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse

from tests.api.conftest import ACME, SIM_AK, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio


async def _error(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status
    assert response.content_type == "application/json"
    error: dict[str, Any] = (await response.json())["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-Id"]
    assert error["message"]
    return error


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Basic YWNtZTp4"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "unknown-key", "not-bearer", "empty-bearer"],
)
async def test_missing_or_unknown_api_key_is_401(gateway: Gateway, headers: dict[str, str]) -> None:
    """Without a known bearer key every /v1 route answers 401 unauthenticated, and nothing goes upstream."""
    for path in ("/v1/training-jobs", "/v1/training-jobs/abc", "/v1/training-jobs/abc/cover"):
        await _error(await gateway.client.get(path, headers=headers), 401, "unauthenticated")
    assert gateway.upstream_calls == 0


async def test_unknown_route_is_404(gateway: Gateway) -> None:
    """A path the gateway does not serve answers 404 not_found in the envelope."""
    await _error(await gateway.client.get("/v2/anything", headers=ACME), 404, "not_found")


async def test_other_methods_are_405_with_allow(gateway: Gateway) -> None:
    """POST/PUT/DELETE on a route answer 405 method_not_allowed with an Allow header."""
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = await gateway.client.request(method, "/v1/training-jobs", headers=ACME)
        await _error(response, 405, "method_not_allowed")
        assert "GET" in response.headers["Allow"]


async def test_malformed_job_id_is_400(gateway: Gateway) -> None:
    """A job id outside [A-Za-z0-9_-]{1,64} answers 400 naming job_id."""
    error = await _error(
        await gateway.client.get("/v1/training-jobs/" + "x" * 65, headers=ACME), 400, "invalid_parameter"
    )
    assert "job_id" in error["message"]


async def test_upstream_refusing_our_credentials_is_502(make_gateway: GatewayFactory) -> None:
    """Upstream 401 (wrong secret key) gives callers 502 upstream_error without upstream text."""
    gateway = await make_gateway(env={"HUAWEICLOUD_SDK_AK": SIM_AK, "HUAWEICLOUD_SDK_SK": "wrong-secret"})
    error = await _error(await gateway.client.get("/v1/training-jobs", headers=ACME), 502, "upstream_error")
    assert "APIGW" not in error["message"]
    assert "signature" not in error["message"].lower()
    assert {r.status for r in gateway.simulator.state.request_log} == {401}


async def test_unreachable_upstream_is_503(make_gateway: GatewayFactory) -> None:
    """Connection refused on every attempt answers 503 upstream_unavailable."""
    gateway = await make_gateway(endpoint=f"http://127.0.0.1:{_closed_port()}")
    await _error(await gateway.client.get("/v1/training-jobs", headers=ACME), 503, "upstream_unavailable")
    assert gateway.metric("metastudio_gateway_upstream_requests_total", outcome="connection_error") == 3


async def test_upstream_5xx_after_retries_is_503(gateway: Gateway) -> None:
    """Upstream 500s are retried up to max_attempts, each freshly signed, then 503."""
    gateway.simulator.state.fail_next.extend([500, 500, 500])
    await _error(await gateway.client.get("/v1/training-jobs", headers=ACME), 503, "upstream_unavailable")
    assert [r.status for r in gateway.simulator.state.request_log] == [500, 500, 500]


async def test_transient_upstream_failure_is_retried_transparently(gateway: Gateway) -> None:
    """One 503 then success: the caller gets 200."""
    gateway.simulator.state.fail_next.append(503)
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.status == 200
    assert [r.status for r in gateway.simulator.state.request_log] == [503, 200]


async def test_slow_upstream_is_504_within_the_deadline(make_gateway: GatewayFactory) -> None:
    """An upstream slower than timeout_seconds answers 504 upstream_timeout; the attempt the
    deadline cut is counted, timed and logged as a timed-out attempt (it was counted only: no
    duration observed, and the 504's log line named no upstream attempt)."""
    gateway = await make_gateway(timeout_seconds=0.2)
    gateway.simulator.state.response_delay_seconds = 2.0
    await _error(await gateway.client.get("/v1/training-jobs", headers=ACME), 504, "upstream_timeout")
    assert gateway.metric("metastudio_gateway_upstream_requests_total", outcome="timeout") == 1
    assert gateway.metric("metastudio_gateway_upstream_request_duration_seconds_count") == 1
    (logged,) = [record for record in gateway.log_records() if record.get("status") == 504]
    assert (logged["upstream_status"], logged["upstream_attempts"]) == ("timeout", 1)
    assert 150 <= logged["upstream_duration_ms"] <= logged["duration_ms"]


async def test_internal_failure_is_500_without_a_traceback(make_gateway: GatewayFactory) -> None:
    """A bug inside the gateway answers 500 internal_error; no traceback or exception text leaks."""

    def broken_encoder(_value: Any) -> bytes:
        raise TypeError("secret internal detail")

    gateway = await make_gateway(encode=broken_encoder)
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    error = await _error(response, 500, "internal_error")
    raw = orjson.dumps(error) + gateway.log.getvalue()
    assert b"secret internal detail" not in raw
    assert b"Traceback" not in raw


async def test_head_answers_like_get_without_a_body(gateway: Gateway) -> None:
    """HEAD on a route gives GET's status and headers, no body."""
    response = await gateway.client.head("/v1/training-jobs", headers=ACME)
    assert response.status == 200
    assert response.headers["X-Cache"] in ("MISS", "HIT")
    assert await response.read() == b""


async def test_options_is_counted_under_its_route(gateway: Gateway) -> None:
    """OPTIONS answers 204 with Allow, and is labelled with the route template, not 'unmatched'."""
    response = await gateway.client.options("/v1/training-jobs")
    assert response.status == 204
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    labels = {"route": "/v1/training-jobs", "method": "OPTIONS", "status": "204", "tenant": "anonymous"}
    assert gateway.metric("metastudio_gateway_http_requests_total", **labels) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": b"{}"}, "GET requests take no body"),
        ({"params": {"name": "x" * 5000}}, "the request target is longer than 4096 bytes"),
        (
            {"headers": {**ACME, **{f"X-Filler-{i}": "y" for i in range(120)}}},
            "the request has more than 100 headers or more than 16384 bytes of them",
        ),
        (
            {"headers": {**ACME, "X-Big": "z" * 9000, "X-Big-2": "z" * 9000}},
            "the request has more than 100 headers or more than 16384 bytes of them",
        ),
    ],
    ids=["body-on-get", "long-url", "too-many-headers", "too-many-header-bytes"],
)
async def test_oversized_or_bodied_requests_are_refused(gateway: Gateway, kwargs: dict[str, Any], message: str) -> None:
    """A body on GET, a target over 4 KiB, or more than 100 headers / 16 KiB of them: 400 saying what, no upstream."""
    request_kwargs = {"headers": ACME, **kwargs}
    response = await gateway.client.get("/v1/training-jobs", **request_kwargs)
    error = await _error(response, 400, "invalid_parameter")
    assert error["message"] == message
    assert gateway.upstream_calls == 0
