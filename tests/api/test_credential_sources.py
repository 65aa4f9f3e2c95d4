"""Cloud credentials without long-lived keys, over real HTTP: every source obtains credentials from
the simulator's fake cloud and signs requests its MetaStudio route accepts; renewal runs ahead of
expiry, single-flight, behind the requests; failures never fail a request while valid credentials
are held; the IAM token mode sends a token and no signature."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.credentials.chain import select_credentials
from gateway.credentials.holder import FORCED_RENEWAL_SECONDS, CredentialsHolder
from gateway.credentials.providers import IMDS_TOKEN_TTL_SECONDS
from gateway.simulator import RunningSimulator
from gateway.simulator.cloud import POD_IDENTITY_PATH
from gateway.simulator.faults import Fault
from tests.api.conftest import ACME, Gateway, GatewayFactory
from tests.leaks import register_secrets

pytestmark = pytest.mark.asyncio

POD_TOKEN = "pod-service-account-token-never-logged"
ID_TOKEN = "oidc-id-token-never-logged"
IAM_PASSWORD = "iam-password-never-logged"
register_secrets([POD_TOKEN, ID_TOKEN, IAM_PASSWORD])
LIFETIME = 3600.0
RENEWAL_POINT = LIFETIME / 2  # min(40 min, half of 1 h) before expiry


def _secret_file(directory: Path, name: str, value: str) -> str:
    path = directory / name
    path.write_text(value + "\n")
    return str(path)


def source_env(source: str, simulator: RunningSimulator, directory: Path) -> dict[str, str]:
    """The environment an operator sets for ``source``, pointed at the simulator's fake cloud."""
    base = simulator.base_url
    simulator.cloud.pod_identity_token = POD_TOKEN
    simulator.cloud.id_token = ID_TOKEN
    simulator.cloud.iam_users = {("sim-domain", "sim-user"): IAM_PASSWORD}
    if source == "pod-identity":
        return {
            "HC_CONTAINER_CREDENTIALS_FULL_URI": base + POD_IDENTITY_PATH,
            "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE": _secret_file(directory, "pod-token", POD_TOKEN),
        }
    if source == "metadata":
        return {"METASTUDIO_CREDENTIALS_SOURCE": "metadata", "METASTUDIO_METADATA_ENDPOINT": base}
    if source == "oidc":
        return {
            "HUAWEICLOUD_OIDC_PROVIDER_URN": "iam::sim:identity-provider:ci",
            "HUAWEICLOUD_OIDC_AGENCY_URN": "iam::sim:agency:gateway",
            "HUAWEICLOUD_OIDC_TOKEN_FILE": _secret_file(directory, "oidc-token", ID_TOKEN),
            "HUAWEICLOUD_SDK_STS_ENDPOINT": base,
        }
    if source == "federation":
        return {
            "HUAWEICLOUD_SDK_IDP_ID": "sim-idp",
            "HUAWEICLOUD_SDK_ID_TOKEN_FILE": _secret_file(directory, "id-token", ID_TOKEN),
            "HUAWEICLOUD_SDK_IAM_ENDPOINT": base,
        }
    if source == "profile":
        token_file = _secret_file(directory, "id-token", ID_TOKEN)
        profile = directory / "credentials"
        profile.write_text(f"[basic]\nidp_id = sim-idp\nid_token_file = {token_file}\niam_endpoint = {base}\n")
        return {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(profile)}
    login = {
        "METASTUDIO_AUTH_MODE": "token",
        "METASTUDIO_IAM_DOMAIN": "sim-domain",
        "METASTUDIO_IAM_USER": "sim-user",
        "METASTUDIO_IAM_PASSWORD_FILE": _secret_file(directory, "iam-password", IAM_PASSWORD),
        "METASTUDIO_PROJECT_ID": simulator.project_id,
        "HUAWEICLOUD_SDK_IAM_ENDPOINT": base,
    }
    if source == "iam-agency":
        login |= {"METASTUDIO_IAM_AGENCY_DOMAIN": "sim-domain", "METASTUDIO_IAM_AGENCY_NAME": "sim-agency"}
    return login


# The cloud route each source's renewals go to.
FETCH_ROUTE = {
    "pod-identity": "pod-identity",
    "metadata": "metadata",
    "oidc": "oidc",
    "federation": "securitytokens",
    "profile": "securitytokens",
    "iam-password": "iam-token",
    "iam-agency": "iam-token",
}


def holder_for(
    source: str, directory: Path, clock: ManualClock, prepare: Callable[[RunningSimulator], None] = lambda _: None
) -> Callable[[RunningSimulator], CredentialsHolder]:
    """The ``holder=`` of ``make_gateway``: the chain's choice for ``source``'s environment."""

    def build(simulator: RunningSimulator) -> CredentialsHolder:
        env = source_env(source, simulator, directory)
        prepare(simulator)
        return select_credentials(env, clock=clock)

    return build


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``check`` holds: the renewal runs behind the requests."""
    for _ in range(500):
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def ready(gateway: Gateway) -> bool:
    async with gateway.client.get("/readyz") as response:
        return response.status == 200


async def list_status(gateway: Gateway, offset: int = 0) -> int:
    async with gateway.client.get(f"/v1/training-jobs?offset={offset}", headers=ACME) as response:
        await response.read()
        return response.status


async def started(
    make_gateway: GatewayFactory,
    source: str,
    tmp_path: Path,
    clock: ManualClock,
    prepare: Callable[[RunningSimulator], None] = lambda _: None,
) -> Gateway:
    """A gateway on ``source`` (cache TTL 1 s), once ready."""
    gateway = await make_gateway(ttl_seconds=1, holder=holder_for(source, tmp_path, clock, prepare))
    await eventually(lambda: ready(gateway), "ready")
    return gateway


def fetches(gateway: Gateway, source: str) -> int:
    """Successful fetches from ``source``'s credential route (IAM answers 201 Created)."""
    route = FETCH_ROUTE[source]
    return gateway.simulator.cloud.count(route, 201 if route in ("securitytokens", "iam-token") else 200)


def access_key_of(headers: Mapping[str, str]) -> str:
    return headers["Authorization"].split("Access=")[1].split(",")[0]


@pytest.mark.parametrize("source", list(FETCH_ROUTE))
async def test_each_source_obtains_credentials_the_upstream_accepts(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock, source: str
) -> None:
    """Each source's credentials authenticate a list call; temporary AK/SK carry their security
    token, signed; the IAM token goes in X-Auth-Token with no signature headers."""
    gateway = await started(make_gateway, source, tmp_path, clock)
    assert await list_status(gateway) == 200
    sent = gateway.simulator.state.request_log[-1]
    assert sent.status == 200
    if source.startswith("iam"):
        assert "X-Auth-Token" in sent.headers
        assert not {"Authorization", "X-Sdk-Date", "X-Project-Id", "X-Security-Token"} & set(sent.headers)
    else:
        assert "x-security-token" in sent.headers["Authorization"].split("SignedHeaders=")[1]
        assert gateway.simulator.cloud.keys[access_key_of(sent.headers)].route == FETCH_ROUTE[source]
    assert (
        gateway.metric("metastudio_gateway_credential_refreshes_total", source=gateway_source(source), result="success")
        == 1
    )


def gateway_source(source: str) -> str:
    return {"profile": "federation", "iam-password": "iam-token", "iam-agency": "iam-token"}.get(source, source)


async def test_renewal_comes_ahead_of_expiry_not_per_request(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """Many requests use one fetch; past min(40 min, half the lifetime) one renewal comes, behind a
    request that is served with the old credentials; then requests use the new ones."""
    gateway = await started(make_gateway, "pod-identity", tmp_path, clock)
    for offset in range(5):
        assert await list_status(gateway, offset) == 200
    clock.advance(RENEWAL_POINT - 1)
    assert await list_status(gateway, 10) == 200
    assert fetches(gateway, "pod-identity") == 1
    clock.advance(2)
    assert await list_status(gateway, 11) == 200
    await eventually(lambda: fetches(gateway, "pod-identity") == 2, "one renewal")
    for offset in range(20, 25):
        assert await list_status(gateway, offset) == 200
    assert fetches(gateway, "pod-identity") == 2
    assert len({access_key_of(entry.headers) for entry in gateway.simulator.state.request_log}) == 2


async def test_concurrent_requests_at_the_renewal_point_cause_one_fetch(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """200 concurrent requests (distinct pages, so each goes upstream) at the renewal point, with a
    slow credential endpoint: exactly one renewal, and every request succeeds."""
    gateway = await started(make_gateway, "pod-identity", tmp_path, clock)
    gateway.simulator.cloud.controls["pod-identity"].latency_seconds = 0.3
    clock.advance(RENEWAL_POINT + 1)
    statuses = await asyncio.gather(*(list_status(gateway, offset) for offset in range(200)))
    assert statuses == [200] * 200
    await eventually(lambda: fetches(gateway, "pod-identity") == 2, "the renewal")
    assert gateway.simulator.cloud.count("pod-identity") == 2


async def test_a_failing_endpoint_inside_the_validity_fails_no_request(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """The credential endpoint fails several times past the renewal point: requests keep being served
    with the held credentials; renewal retries with backoff and succeeds once the endpoint recovers."""
    gateway = await started(make_gateway, "pod-identity", tmp_path, clock)
    cloud = gateway.simulator.cloud
    cloud.controls["pod-identity"].fail = [500, 503, 500, 502]
    clock.advance(RENEWAL_POINT + 1)
    offset = 0
    for _ in range(5):  # four failures, then the success
        tries = cloud.count("pod-identity")
        for _ in range(3):
            offset += 1
            assert await list_status(gateway, offset) == 200
        await eventually(lambda: cloud.count("pod-identity") > tries, "another try")  # noqa: B023
        clock.advance(61)  # past the longest backoff
    await eventually(lambda: fetches(gateway, "pod-identity") == 2, "renewed after recovery")
    assert gateway.metric("metastudio_gateway_credential_refreshes_total", source="pod-identity", result="failure") == 4
    assert {entry.status for entry in gateway.simulator.state.request_log} == {200}


@pytest.mark.parametrize("endless", ["flood", "drip"])
async def test_an_endpoint_answering_without_end_is_given_up_while_requests_go_on(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock, endless: str
) -> None:
    """At the renewal point the metadata service answers 200 with a body that never ends, as fast
    as it is read (flood) or a byte a second (drip): the renewal is given up, past 1 MiB or at the
    call's 10 s deadline, while requests are served with the held credentials; once the service
    answers normally the next try renews them."""
    gateway = await started(make_gateway, "metadata", tmp_path, clock)
    cloud = gateway.simulator.cloud
    cloud.controls["metadata"].endless = endless
    clock.advance(RENEWAL_POINT + 1)
    failures = {"source": "metadata", "result": "failure"}
    deadline = time.monotonic() + 20
    offset = 0
    while gateway.metric("metastudio_gateway_credential_refreshes_total", **failures) == 0:
        assert time.monotonic() < deadline, "the renewal was never given up"
        offset += 1
        assert await list_status(gateway, offset) == 200
        await asyncio.sleep(0.5)
    cloud.controls["metadata"].endless = ""
    clock.advance(61)  # past the longest backoff
    successes = {"source": "metadata", "result": "success"}
    await eventually(
        lambda: gateway.metric("metastudio_gateway_credential_refreshes_total", **successes) == 2, "renewed"
    )
    assert await list_status(gateway, offset + 1) == 200


async def test_a_failed_renewal_is_tried_again_after_its_backoff_whatever_the_clock_did(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """A renewal fails (the next try is due 1 s later); the wall clock steps back an hour and 2 s
    pass: the next try renews the credentials, not an hour later, when the held ones may have
    expired."""
    gateway = await started(make_gateway, "pod-identity", tmp_path, clock)
    gateway.simulator.cloud.controls["pod-identity"].fail = [500]
    clock.advance(RENEWAL_POINT + 1)
    assert await list_status(gateway, 1) == 200
    failures = {"source": "pod-identity", "result": "failure"}
    await eventually(
        lambda: gateway.metric("metastudio_gateway_credential_refreshes_total", **failures) == 1, "the failed try"
    )
    clock.advance(-3600)
    clock.advance(2)
    await eventually(lambda: fetches(gateway, "pod-identity") == 2, "renewed after the backoff")


async def test_an_endpoint_failing_from_start_up_keeps_readyz_503_until_it_recovers(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """No credentials yet: /readyz 503 and a list request 503 upstream_unavailable; once the endpoint
    answers (after the backoff), /readyz 200 and requests succeed."""

    def failing(simulator: RunningSimulator) -> None:
        simulator.cloud.controls["metadata"].fail = [503] * 100

    gateway = await make_gateway(ttl_seconds=1, holder=holder_for("metadata", tmp_path, clock, failing))
    await eventually(lambda: gateway.simulator.cloud.count("metadata") >= 1, "a first try")
    assert not await ready(gateway)
    async with gateway.client.get("/v1/training-jobs", headers=ACME) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "upstream_unavailable"
    gateway.simulator.cloud.controls["metadata"].fail = []
    clock.advance(61)
    await eventually(lambda: ready(gateway), "ready after recovery")
    assert await list_status(gateway) == 200


async def test_metadata_takes_a_session_token_again_after_a_passing_failure_of_the_token_service(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """An instance that requires IMDS v2, whose token service answers 503 once: the fetch goes on
    without a session token (v1), is refused, and asks for a session token again. It used to stay
    on v1 for good: every renewal refused until the credentials expired."""

    def v2_required_and_a_passing_failure(simulator: RunningSimulator) -> None:
        simulator.cloud.imds_v1_refused = True
        simulator.cloud.controls["metadata-token"].fail = [503]

    gateway = await started(make_gateway, "metadata", tmp_path, clock, v2_required_and_a_passing_failure)
    assert await list_status(gateway) == 200
    assert gateway.simulator.cloud.count("metadata-token") == 2
    assert gateway.simulator.cloud.count("metadata", 401) == 1


async def test_metadata_takes_a_new_session_token_when_the_held_one_has_expired(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """The IMDS v2 session token is kept until the service refuses it, as the SDK does; past its
    6 h the service does (the simulator's tokens now expire), and the renewal takes a new one and
    asks once more: one 401, two tokens in all, credentials renewed."""
    gateway = await started(make_gateway, "metadata", tmp_path, clock)
    assert gateway.simulator.cloud.count("metadata-token") == 1
    clock.advance(IMDS_TOKEN_TTL_SECONDS + 1)
    await list_status(gateway)  # the credentials expired long ago: this starts their renewal
    await eventually(lambda: fetches(gateway, "metadata") == 2, "renewed with a new session token")
    assert gateway.simulator.cloud.count("metadata-token") == 2
    assert gateway.simulator.cloud.count("metadata", 401) == 1
    assert await list_status(gateway, 1) == 200


async def test_an_instance_without_an_agency_is_said_so_without_a_new_session_token(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The metadata service's 401 saying that no agency is attached (the SDK's own test of the
    body): the fetch fails naming that, and does not take a new session token and ask again, as
    it would for a 401 of an expired token. /readyz stays 503."""

    def no_agency(simulator: RunningSimulator) -> None:
        simulator.cloud.instance_has_agency = False

    with caplog.at_level(logging.WARNING, logger="gateway.credentials.holder"):
        gateway = await make_gateway(ttl_seconds=1, holder=holder_for("metadata", tmp_path, clock, no_agency))
        await eventually(lambda: gateway.simulator.cloud.count("metadata", 401) >= 1, "a first try")
        assert not await ready(gateway)
    assert gateway.simulator.cloud.count("metadata-token") == 1
    assert gateway.simulator.cloud.count("metadata", 401) == 1
    assert any("no agency is attached to this instance" in record.getMessage() for record in caplog.records)


async def test_auto_mode_gives_metadata_renewals_the_full_time_limits(
    make_gateway: GatewayFactory, clock: ManualClock
) -> None:
    """Auto mode tries the metadata service last, with 2-second limits at start-up; a renewal
    later gets the 10 s (3 s a read) metadata calls always get. Before, a renewal answered in
    1.5 s failed in auto mode, and only there."""
    holder = lambda simulator: select_credentials(  # noqa: E731
        {"METASTUDIO_METADATA_ENDPOINT": simulator.base_url}, clock=clock
    )
    gateway = await make_gateway(ttl_seconds=1, holder=holder)
    await eventually(lambda: ready(gateway), "ready")
    gateway.simulator.cloud.controls["metadata"].latency_seconds = 1.5
    clock.advance(RENEWAL_POINT + 1)
    await eventually(lambda: fetches(gateway, "metadata") == 2, "renewed, answered in 1.5 s")
    assert gateway.metric("metastudio_gateway_credential_refreshes_total", source="metadata", result="failure") in (
        None,
        0,
    )


@pytest.mark.parametrize("form", ["6-digit", "3-digit", "no-fraction", "offset"])
async def test_every_expiry_form_is_understood(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock, form: str
) -> None:
    """Expiry with 6 or 3 fraction digits, none, or +00:00: read as the same UTC instant."""

    def formatted(simulator: RunningSimulator) -> None:
        simulator.cloud.controls["pod-identity"].expiry_format = form

    gateway = await started(make_gateway, "pod-identity", tmp_path, clock, formatted)
    assert await list_status(gateway) == 200
    assert gateway.metric("metastudio_gateway_credential_expiry_timestamp_seconds") == clock.now() + LIFETIME


async def test_refused_temporary_credentials_are_renewed_and_the_call_retried(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """The upstream stops accepting the held credentials (revoked): one renewal, one retry, 200."""
    gateway = await started(make_gateway, "pod-identity", tmp_path, clock)
    gateway.simulator.cloud.keys.clear()
    assert await list_status(gateway) == 200
    assert [entry.status for entry in gateway.simulator.state.request_log] == [401, 200]
    assert fetches(gateway, "pod-identity") == 2


@pytest.mark.parametrize("source", ["pod-identity", "iam-password"])
async def test_a_refusal_renewing_does_not_cure_forces_one_renewal_per_interval(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock, source: str
) -> None:
    """The upstream goes on refusing fresh credentials too (the identity lacks a MetaStudio
    permission): one forced renewal and retry, then refusals answered as such, without a
    credential fetch (a login, in token mode) and a second upstream call each, until the
    interval has passed."""
    gateway = await started(make_gateway, source, tmp_path, clock)
    gateway.simulator.state.faults.append(Fault("status", status=403))
    statuses = [await list_status(gateway, offset) for offset in range(10)]
    assert statuses == [502] * 10
    assert fetches(gateway, source) == 2  # start-up, and the one forced renewal
    assert len(gateway.simulator.state.request_log) == 11  # ten calls and the one retry
    assert gateway.metric("metastudio_gateway_credential_reloads_total", trigger="upstream_auth_failure") == 1
    clock.advance(FORCED_RENEWAL_SECONDS)
    assert await list_status(gateway, 10) == 502
    assert fetches(gateway, source) == 3
    assert len(gateway.simulator.state.request_log) == 13


async def test_token_files_are_read_again_on_every_renewal(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """The projected service-account token rotates: the renewal sends the new one."""
    gateway = await started(make_gateway, "pod-identity", tmp_path, clock)
    gateway.simulator.cloud.pod_identity_token = "rotated-pod-token-never-logged"
    register_secrets(["rotated-pod-token-never-logged"])
    _secret_file(tmp_path, "pod-token", "rotated-pod-token-never-logged")
    clock.advance(RENEWAL_POINT + 1)
    assert await list_status(gateway) == 200
    await eventually(lambda: fetches(gateway, "pod-identity") == 2, "renewed with the rotated token")


async def test_token_mode_renews_the_token_at_once_on_a_401(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock
) -> None:
    """A revoked IAM token draws a 401: a new token is taken and the call retried, with no signature."""
    gateway = await started(make_gateway, "iam-password", tmp_path, clock)
    assert await list_status(gateway) == 200
    gateway.simulator.cloud.revoke_tokens()
    assert await list_status(gateway, 1) == 200
    assert [entry.status for entry in gateway.simulator.state.request_log] == [200, 401, 200]
    assert fetches(gateway, "iam-password") == 2
    assert all("Authorization" not in entry.headers for entry in gateway.simulator.state.request_log)


async def test_static_keys_export_no_expiry(gateway: Gateway) -> None:
    """Static keys never expire: the expiry metric is absent, the gateway ready."""
    assert await ready(gateway)
    assert gateway.registry.get_sample_value("metastudio_gateway_credential_expiry_timestamp_seconds") is None
