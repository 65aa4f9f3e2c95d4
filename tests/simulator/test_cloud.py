"""The simulator's fake cloud checks what the real services check (CREDENTIALS.md §9), and its
MetaStudio route accepts only what that cloud issued, unexpired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.clock import ManualClock
from gateway.simulator import RunningSimulator, running_simulator
from gateway.simulator.cloud import AGENCY_MISSING_TEXT, IAM_TOKEN_CHARACTERS, POD_IDENTITY_PATH
from tests.leaks import register_secrets

pytestmark = pytest.mark.asyncio
JOBS = "/v1/{project}/digital-human-training-manage/user/jobs"


@pytest.fixture
async def simulator(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    async with running_simulator(clock=clock) as running:
        yield running
        register_secrets(running.cloud.secrets())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def http(simulator: RunningSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=simulator.base_url, max_field_size=32768) as session:
        yield session


async def _password_token(
    http: aiohttp.ClientSession, password: str = "sim-password", **scope: Any
) -> aiohttp.ClientResponse:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"domain": {"name": "sim-domain"}, "name": "sim-user", "password": password}},
            },
            "scope": scope or {"project": {"name": "cn-north-4"}},
        }
    }
    async with http.post("/v3/auth/tokens?nocatalog=true", json=body) as response:
        await response.read()
        return response


async def test_pod_identity_wants_the_token_exactly_without_bearer(http: aiohttp.ClientSession) -> None:
    """A ``Bearer`` prefix is refused; the bare token gets credentials under ``credentials``."""
    async with http.post(POD_IDENTITY_PATH, json={}, headers={"Authorization": "Bearer sim-pod-identity-token"}) as bad:
        assert bad.status == 401
    async with http.post(POD_IDENTITY_PATH, json={}, headers={"Authorization": "sim-pod-identity-token"}) as good:
        assert good.status == 200
        assert set((await good.json())["credentials"]) == {
            "accessKeyId",
            "secretAccessKey",
            "securityToken",
            "expiration",
        }


async def test_metadata_session_token_needs_the_ttl_header_and_v1_can_be_required_off(
    http: aiohttp.ClientSession, simulator: RunningSimulator
) -> None:
    """The PUT needs its TTL header; a wrong session token is a 401; without v2 the PUT is a 404 and
    v1 (no token) is served; an instance without agency answers the agency text."""
    async with http.put("/meta-data/latest/api/token") as no_ttl:
        assert no_ttl.status == 400
    async with http.get("/openstack/latest/securitykey", headers={"X-Metadata-Token": "forged"}) as forged:
        assert forged.status == 401
        assert AGENCY_MISSING_TEXT not in await forged.text()
    simulator.cloud.imds_v1_refused = True
    async with http.get("/openstack/latest/securitykey") as v1_refused:
        assert v1_refused.status == 401
    simulator.cloud.imds_v1_refused = False
    simulator.cloud.imds_v2 = False
    async with http.put("/meta-data/latest/api/token", headers={"X-Metadata-Token-Ttl-Seconds": "21600"}) as put:
        assert put.status == 404
    async with http.get("/openstack/latest/securitykey") as v1:
        assert v1.status == 200
    simulator.cloud.instance_has_agency = False
    async with http.get("/openstack/latest/securitykey") as no_agency:
        assert no_agency.status == 401  # as the SDK reads it: a 401 whose body says so
        assert AGENCY_MISSING_TEXT in await no_agency.text()


async def test_iam_tokens_are_nine_kilobytes_and_the_password_must_match(http: aiohttp.ClientSession) -> None:
    """A wrong password is a 401; the right one gets a 201 with a ~9 KB X-Subject-Token."""
    assert (await _password_token(http, password="wrong")).status == 401
    response = await _password_token(http)
    assert response.status == 201
    assert len(response.headers["X-Subject-Token"]) >= IAM_TOKEN_CHARACTERS - 4


async def test_metastudio_accepts_its_own_project_scoped_unexpired_tokens_only(
    http: aiohttp.ClientSession, simulator: RunningSimulator, clock: ManualClock
) -> None:
    """An issued token works for its project until it expires; unknown tokens never."""
    token = (await _password_token(http)).headers["X-Subject-Token"]
    path = JOBS.format(project=simulator.project_id)
    async with http.get(path, headers={"X-Auth-Token": token}) as accepted:
        assert accepted.status == 200
    async with http.get(path, headers={"X-Auth-Token": "MIIforged"}) as forged:
        assert forged.status == 401
    clock.advance(24 * 3600)
    async with http.get(path, headers={"X-Auth-Token": token}) as expired:
        assert expired.status == 401
    assert [entry.rejection for entry in simulator.state.request_log] == [
        None,
        "unknown IAM token",
        "IAM token expired",
    ]


async def test_federation_needs_the_idp_header_and_a_live_unscoped_token(http: aiohttp.ClientSession) -> None:
    """No X-Idp-Id: refused; with it, an unscoped token that securitytokens accepts in the body or the header."""
    exchange = {"auth": {"id_token": {"id": "any-id-token"}}}
    async with http.post("/v3.0/OS-AUTH/id-token/tokens", json=exchange) as no_idp:
        assert no_idp.status == 400
    async with http.post("/v3.0/OS-AUTH/id-token/tokens", json=exchange, headers={"X-Idp-Id": "sim-idp"}) as ok:
        assert ok.status == 201
        unscoped = ok.headers["X-Subject-Token"]
    in_body = {"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped, "duration_seconds": 900}}}}
    async with http.post("/v3.0/OS-CREDENTIAL/securitytokens", json=in_body) as by_body:
        assert by_body.status == 201
    in_header = {"auth": {"identity": {"methods": ["token"], "token": {"duration_seconds": 900}}}}
    async with http.post(
        "/v3.0/OS-CREDENTIAL/securitytokens", json=in_header, headers={"X-Auth-Token": unscoped}
    ) as by_header:
        assert by_header.status == 201


async def test_controls_over_http_fail_n_times_then_succeed(http: aiohttp.ClientSession) -> None:
    """PUT /_simulator/cloud sets a route's next statuses and expiry format; GET counts requests."""
    async with http.put(
        "/_simulator/cloud", json={"pod-identity": {"fail": [503, 500], "expiry_format": "offset"}}
    ) as put:
        assert put.status == 200
    statuses = []
    for _ in range(3):
        async with http.post(
            POD_IDENTITY_PATH, json={}, headers={"Authorization": "sim-pod-identity-token"}
        ) as response:
            statuses.append(response.status)
            body = await response.json()
    assert statuses == [503, 500, 200]
    assert body["credentials"]["expiration"].endswith("+00:00")
    async with http.get("/_simulator/cloud") as counts:
        assert (await counts.json())["requests"] == {
            "pod-identity 503": 1,
            "pod-identity 500": 1,
            "pod-identity 200": 1,
        }
    async with http.put("/_simulator/cloud", json={"pod-identity": {"colour": 1}}) as bad:
        assert bad.status == 400
