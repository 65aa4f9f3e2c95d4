"""Every way the upstream can misbehave maps to a documented error (never a 500), within the deadline."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config.settings import CircuitBreakerSettings
from gateway.simulator.faults import Fault
from tests.api.conftest import ACME, GLOBEX, GatewayFactory
from tests.certificates import private_ca
from tests.scripted_upstream import Server, serving

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault("reset"), 503, "upstream_unavailable"),
        (Fault("truncated"), 503, "upstream_unavailable"),
        (Fault("not_json"), 502, "upstream_error"),
        (Fault("wrong_shape"), 502, "upstream_error"),
        (Fault("huge"), 502, "upstream_error"),
        (Fault("status", status=403), 502, "upstream_error"),
        (Fault("status", status=429, retry_after=1), 503, "upstream_unavailable"),
        (Fault("status", status=502), 503, "upstream_unavailable"),
        (Fault("status", status=501), 502, "upstream_error"),
        (Fault("status", status=505), 502, "upstream_error"),
        (Fault("latency", seconds=1.0), 504, "upstream_timeout"),
        (Fault("slow_drip", seconds=0.5), 504, "upstream_timeout"),
    ],
    ids=lambda value: (
        value.kind + (f"-{value.status}" if value.kind == "status" else "") if isinstance(value, Fault) else None
    ),
)
async def test_upstream_fault_maps_to_a_documented_error(
    make_gateway: GatewayFactory, fault: Fault, status: int, code: str
) -> None:
    """Each fault gives its documented status and error code, in the envelope."""
    gateway = await make_gateway(
        timeout_seconds=0.6,
        upstream={"read_timeout_seconds": 0.3, "max_body_bytes": 1024 * 1024, "retry_after_cap_seconds": 0.05},
    )
    gateway.simulator.state.faults.append(fault)
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


@pytest.mark.parametrize("status", [501, 505])
async def test_a_5xx_that_says_asking_again_will_not_help_is_not_retried(
    make_gateway: GatewayFactory, status: int
) -> None:
    """501 Not Implemented and 505 HTTP Version Not Supported are no outage (RFC 9110 15.6.2,
    15.6.6): one upstream call and a 502, where they were retried as 5xx (three calls, a 503)."""
    gateway = await make_gateway(upstream={"retry_budget_ratio": 1.0})
    gateway.simulator.state.faults.append(Fault("status", status=status))
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert (response.status, gateway.upstream_calls) == (502, 1)


async def test_a_200_that_is_not_json_is_recorded_as_invalid_body(make_gateway: GatewayFactory) -> None:
    """A 200 whose body is not JSON (a proxy's or a WAF's HTML page) is outcome invalid_body in
    the metric and the access log, not "200": alerts on the upstream's errors see it."""
    gateway = await make_gateway(max_attempts=1)
    gateway.simulator.state.faults.append(Fault("not_json"))
    assert (await gateway.client.get("/v1/training-jobs", headers=ACME)).status == 502
    outcomes = "metastudio_gateway_upstream_requests_total"
    assert (gateway.metric(outcomes, outcome="invalid_body"), gateway.metric(outcomes, outcome="200")) == (1, 0)
    (line,) = [orjson.loads(raw) for raw in gateway.log.getvalue().splitlines() if b'"route"' in raw]
    assert line["upstream_status"] == "invalid_body"


async def test_one_tenants_trouble_leaves_another_healthy(make_gateway: GatewayFactory) -> None:
    """A fault aimed at acme's app user id fails acme only; globex is served normally."""
    gateway = await make_gateway()
    gateway.simulator.state.faults.append(Fault("status", status=500, app_user_id="acme-web"))
    assert (await gateway.client.get("/v1/training-jobs", headers=ACME)).status == 503
    assert (await gateway.client.get("/v1/training-jobs", headers=GLOBEX)).status == 200


async def test_faults_can_be_limited_in_number(make_gateway: GatewayFactory) -> None:
    """A fault with remaining=1 hits once, then the upstream answers normally (the retry succeeds)."""
    gateway = await make_gateway()
    gateway.simulator.state.faults.append(Fault("reset", remaining=1))
    assert (await gateway.client.get("/v1/training-jobs", headers=ACME)).status == 200
    assert not gateway.simulator.state.faults


async def test_a_body_cut_short_is_retried_as_a_connection_failure(make_gateway: GatewayFactory) -> None:
    """The upstream closing the connection halfway through a 200's body is a connection failure:
    the next attempt is made (a 200 for the caller), and the circuit breaker counts it as a
    failure, so cut bodies alone open the circuit. (Until stop 29 it was a 502 at once, never
    retried, and counted as the upstream answering.)"""
    gateway = await make_gateway()
    gateway.simulator.state.faults.append(Fault("truncated", remaining=1))
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.status == 200
    assert gateway.upstream_calls == 2
    assert gateway.metric("metastudio_gateway_upstream_requests_total", outcome="truncated_body") == 1

    breaker = CircuitBreakerSettings(window_seconds=30, min_calls=4, failure_ratio=0.5, open_seconds=10)
    gateway = await make_gateway(max_attempts=1, circuit_breaker=breaker)
    gateway.simulator.state.faults.append(Fault("truncated"))
    for offset in range(4):  # distinct keys: each goes upstream once, and its body is cut
        response = await gateway.client.get(f"/v1/training-jobs?offset={offset}", headers=ACME)
        assert (response.status, (await response.json())["error"]["code"]) == (503, "upstream_unavailable")
    assert gateway.metric("metastudio_gateway_circuit_state", tenant="acme") == 2


@pytest.mark.parametrize(
    ("answer", "then_close"),
    [
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 50\r\n\r\n{", True),
        (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: \xb2\r\nContent-Length: 2\r\n\r\n{}", False),
    ],
    ids=["503-with-its-body-cut-short", "429-with-a-retry-after-of-0xb2"],
)
async def test_an_odd_error_answer_goes_by_its_status(
    make_gateway: GatewayFactory, answer: bytes, then_close: bool
) -> None:
    """An error answer odd in another way is retried for its status, then 503 upstream_unavailable:
    a 503 whose body is cut short is not a broken 200 (502), as error bodies are not used; a 429
    whose Retry-After is 0xB2 (Latin-1 "²", a digit to str.isdigit but not a number to float) is
    an ordinary 429, not a 500."""

    async def script(server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_head(reader)
            writer.write(answer)
            if then_close:
                return

    async with serving(script) as (upstream, url):
        gateway = await make_gateway(endpoint=url, max_attempts=3)
        response = await gateway.client.get("/v1/training-jobs", headers=ACME)
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "upstream_unavailable"
    assert len(upstream.heads) == 3


async def test_an_upstream_certificate_not_trusted_is_a_tls_error_saying_why(
    make_gateway: GatewayFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream's certificate is from a CA the system does not trust (a new TLS-inspecting
    proxy, a private CA): the caller gets the 503 envelope as for other outages, and the operator
    sees it for what it is: outcome tls_error, and one warning naming OpenSSL's reason (it was a
    connection_error, and nothing was logged)."""
    caplog.set_level(logging.WARNING, logger="gateway.upstream.client")
    _ca, certificate, key = private_ca(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate, key)

    async def never_reached(_server: Server, _number: int, _reader: Any, _writer: Any) -> None:
        return None

    async with serving(never_reached, tls=tls) as (_server, url):
        gateway = await make_gateway(endpoint=url)
        for offset in range(2):
            response = await gateway.client.get(f"/v1/training-jobs?offset={offset}", headers=ACME)
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "upstream_unavailable"
    assert gateway.metric("metastudio_gateway_upstream_requests_total", outcome="tls_error") >= 2
    assert gateway.metric("metastudio_gateway_upstream_requests_total", outcome="connection_error") == 0
    warnings = [record.getMessage() for record in caplog.records if record.name == "gateway.upstream.client"]
    assert warnings == [
        "TLS with the upstream failed: unable to get local issuer certificate;"
        " upstream calls fail as tls_error until it is mended"
    ]
