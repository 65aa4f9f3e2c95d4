"""Request rules a new user meets: combined state filters, query strings on the job routes, and
the exact size limits of a request (the gateway's JSON 400s and aiohttp's plain-text ones)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.jobs.states import STATE_GROUPS
from tests.api.conftest import ACME, ACME_KEY, GLOBEX_KEY, Gateway

pytestmark = pytest.mark.asyncio


async def _first_job(gateway: Gateway) -> dict[str, Any]:
    body = await (await gateway.client.get("/v1/training-jobs?state_group=completed&limit=1", headers=ACME)).json()
    job: dict[str, Any] = body["jobs"][0]
    return job


async def test_state_and_state_group_together_return_the_jobs_in_both(gateway: Gateway) -> None:
    """Both filters apply: only jobs whose state is in both sets come back; only the intersection is asked for."""
    response = await gateway.client.get(
        "/v1/training-jobs?state=TRAINING,JOB_SUCCESS,JOB_REJECT&state_group=completed,training&limit=100", headers=ACME
    )
    assert response.status == 200
    body = await response.json()
    assert body["count"] > 0
    assert {job["state"] for job in body["jobs"]} <= {"TRAINING", "JOB_SUCCESS"}
    (recorded,) = gateway.simulator.state.request_log
    assert dict(recorded.query)["state"] == "JOB_SUCCESS,TRAINING"
    expected = [
        job
        for job in gateway.simulator.state.jobs
        if job.get("app_user_id") == "acme-web" and job["state"] in {"TRAINING", "JOB_SUCCESS"}
    ]
    assert body["count"] == len(expected)


async def test_state_and_state_group_with_nothing_in_common_are_an_empty_page(gateway: Gateway) -> None:
    """No state in both sets: 200 {"count":0,"offset":..,"limit":..,"jobs":[]} and no upstream call."""
    assert "TRAINING" not in STATE_GROUPS["completed"]
    for method in ("GET", "HEAD"):
        response = await gateway.client.request(
            method, "/v1/training-jobs?state=TRAINING&state_group=completed&offset=20&limit=5", headers=ACME
        )
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["ETag"]
        if method == "GET":
            assert await response.json() == {"count": 0, "offset": 20, "limit": 5, "jobs": []}
    assert gateway.simulator.state.request_log == []


@pytest.mark.parametrize("suffix", ["", "/cover"], ids=["job", "cover"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_job_routes_refuse_any_query_parameter_by_name(gateway: Gateway, suffix: str, method: str) -> None:
    """/v1/training-jobs/{id}?foo=1 and /cover?foo=1: 400 invalid_parameter naming foo (GET and HEAD)."""
    job_id = (await _first_job(gateway))["job_id"]
    calls = gateway.upstream_calls
    for query, name in (("foo=1", "foo"), ("limit=5", "limit"), ("bar", "bar")):
        response = await gateway.client.request(
            method, f"/v1/training-jobs/{job_id}{suffix}?{query}", headers=ACME, allow_redirects=False
        )
        assert response.status == 400, query
        assert response.headers["Content-Type"].startswith("application/json")
        if method == "GET":
            error = (await response.json())["error"]
            assert error["code"] == "invalid_parameter"
            assert f"'{name}'" in error["message"]
    assert gateway.upstream_calls == calls
    # Without a query string the same routes answer as before.
    plain = await gateway.client.request(
        method, f"/v1/training-jobs/{job_id}{suffix}", headers=ACME, allow_redirects=False
    )
    assert plain.status == (302 if suffix else 200)


async def _raw(gateway: Gateway, request: bytes) -> tuple[int, str, bytes]:
    """Send one raw request; the status, the content type and the body of the answer."""
    server = gateway.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers.get("content-type", ""), body
    finally:
        writer.close()


def _request(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: localhost", f"Authorization: Bearer {ACME_KEY}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _target_of(length: int) -> str:
    prefix = "/v1/no-such-route-"
    return prefix + "x" * (length - len(prefix))


async def test_request_target_limits_are_4096_in_json_and_8190_in_the_parser(gateway: Gateway) -> None:
    """Target of 4096 bytes: routed (here 404); up to 8190: the gateway's JSON 400 saying so; over
    8190: aiohttp's parser refuses it, answered in the same JSON envelope, naming the kind only."""
    status, content_type, _ = await _raw(gateway, _request(_target_of(4096)))
    assert (status, content_type) == (404, "application/json")
    for length in (4097, 8190):
        status, content_type, body = await _raw(gateway, _request(_target_of(length)))
        assert (status, content_type) == (400, "application/json"), length
        assert b"the request target is longer than 4096 bytes" in body
    status, content_type, body = await _raw(gateway, _request(_target_of(8191)))
    assert (status, content_type) == (400, "application/json")
    assert b'"code":"invalid_parameter","message":"malformed HTTP request (LineTooLong)"' in body


async def test_a_header_value_is_parsed_up_to_32768_bytes(gateway: Gateway) -> None:
    """A 12 KiB header is served; a 16384-byte value reaches the gateway's JSON 400 (16 KiB of headers in all,
    Authorization aside); a 32768-byte value still does; a 32769-byte value: aiohttp's parser's
    400, in the same JSON envelope."""
    status, _, _ = await _raw(gateway, _request("/v1/training-jobs", "X-Big: " + "z" * 12 * 1024))
    assert status == 200
    status, content_type, body = await _raw(gateway, _request("/v1/training-jobs", "X-Big: " + "z" * 16384))
    assert (status, content_type) == (400, "application/json")
    assert b"more than 100 headers or more than 16384 bytes of them" in body
    status, content_type, _ = await _raw(gateway, _request("/v1/training-jobs", "X-Big: " + "z" * 32768))
    assert (status, content_type) == (400, "application/json")
    status, content_type, body = await _raw(gateway, _request("/v1/training-jobs", "X-Big: " + "z" * 32769))
    assert (status, content_type) == (400, "application/json")
    assert b"malformed HTTP request (" in body


async def test_authorization_given_twice_is_refused_whichever_comes_first(gateway: Gateway) -> None:
    """Two ``Authorization`` headers are a 400 saying so, nothing asked upstream: the gateway read
    the first, a proxy in front may read the last, and the size limit counted neither. (It used
    to answer as the first key's tenant.)"""
    await gateway.client.get("/v1/training-jobs", headers=ACME)  # a hit is ready: the fast path declines such heads
    calls = gateway.upstream_calls
    for first, second in ((GLOBEX_KEY, ACME_KEY), (ACME_KEY, GLOBEX_KEY), (ACME_KEY, ACME_KEY)):
        lines = ["GET /v1/training-jobs HTTP/1.1", "Host: localhost"]
        lines += [f"Authorization: Bearer {first}", f"authorization: Bearer {second}"]
        status, content_type, body = await _raw(gateway, ("\r\n".join(lines) + "\r\n\r\n").encode())
        assert (status, content_type) == (400, "application/json")
        assert b"the request has more than one Authorization header" in body
    assert gateway.upstream_calls == calls


@pytest.mark.parametrize("credential", [b"caf\xe9", b"\xff", b"a.b.\xff"], ids=["latin-1", "0xff", "jwt-shaped"])
async def test_a_credential_that_is_not_utf8_is_an_unknown_key(gateway: Gateway, credential: bytes) -> None:
    """A key whose bytes are not UTF-8 is a 401 like any unknown key (it was a 500: hashing it
    raised)."""
    request = b"GET /v1/training-jobs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + credential + b"\r\n\r\n"
    status, content_type, body = await _raw(gateway, request)
    assert (status, content_type) == (401, "application/json")
    assert b"unknown API key" in body
