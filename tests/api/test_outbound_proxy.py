"""The gateway behind a forward proxy (``HTTP_PROXY``, a real proxy on loopback): the upstream, a
credential endpoint and an identity provider's keys are reached by names only the proxy resolves,
so a call made around it could not arrive; the proxy's credentials go to the proxy alone, never
to the services, and never into the log."""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from gateway.clock import ManualClock
from gateway.config.settings import OidcSettings
from gateway.credentials.chain import select_credentials
from gateway.credentials.holder import CredentialsHolder
from gateway.credentials.issued import FetchFailed
from gateway.credentials.providers import PodIdentity
from gateway.outbound import Outbound, Proxies, proxies_from_environment
from gateway.simulator import RunningSimulator
from gateway.simulator.idp import running_idp
from tests.api.conftest import ACME, GatewayFactory
from tests.api.test_credential_sources import eventually, ready, source_env
from tests.api.test_jwt_auth import ACME_CLAIM, ALICE, answer, bearer, issuer_settings, oidc_tenants
from tests.forward_proxy import ForwardProxy
from tests.leaks import register_secrets

pytestmark = pytest.mark.asyncio

PASSWORD = "egress-proxy-password-never-logged"
register_secrets([PASSWORD])
NAMES = {"metastudio.test": "127.0.0.1", "cloud.test": "127.0.0.1", "idp.test": "127.0.0.1"}
"""Names under the reserved .test domain: nothing resolves them but the proxy."""


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy(credentials=("egress", PASSWORD), hosts=NAMES) as running:
        yield running


def proxies_to(proxy: ForwardProxy) -> Proxies:
    """The proxies the gateway reads from ``ALL_PROXY`` naming ``proxy`` with its credentials."""
    found, problems = proxies_from_environment({"ALL_PROXY": f"http://egress:{PASSWORD}@127.0.0.1:{proxy.port}"})
    assert problems == []
    return found


def oidc_through_cloud_test(directory: Path, clock: ManualClock) -> Callable[[RunningSimulator], CredentialsHolder]:
    """The OIDC source, its STS endpoint the simulator's fake cloud named ``cloud.test``."""

    def build(simulator: RunningSimulator) -> CredentialsHolder:
        env = source_env("oidc", simulator, directory)
        env["HUAWEICLOUD_SDK_STS_ENDPOINT"] = simulator.base_url.replace("127.0.0.1", "cloud.test")
        return select_credentials(env, clock=clock)

    return build


async def test_the_upstream_and_the_credential_endpoint_are_reached_through_the_proxy_only(
    make_gateway: GatewayFactory, tmp_path: Path, clock: ManualClock, proxy: ForwardProxy
) -> None:
    gateway = await make_gateway(
        proxies=proxies_to(proxy), upstream_host="metastudio.test", holder=oidc_through_cloud_test(tmp_path, clock)
    )
    await eventually(lambda: ready(gateway), "ready")
    async with gateway.client.get("/v1/training-jobs?limit=3", headers=ACME) as response:
        assert response.status == 200
        assert len((await response.json())["jobs"]) == 3
    port = gateway.simulator.base_url.rpartition(":")[2]
    targets = [seen.target for seen in proxy.seen]
    assert any(target.startswith(f"http://cloud.test:{port}/") for target in targets)  # the OIDC exchange
    assert any(target.startswith(f"http://metastudio.test:{port}/v1/") for target in targets)
    assert all(seen.headers.get("Proxy-Authorization", "").startswith("Basic ") for seen in proxy.seen)
    upstream_call = gateway.simulator.state.request_log[-1]
    assert upstream_call.status == 200  # the signature the simulator checked covered Host metastudio.test
    assert not {name.lower() for name in upstream_call.headers} & {"proxy-authorization", "proxy-connection"}
    assert PASSWORD.encode() not in gateway.log.getvalue()


async def test_a_refusing_proxy_is_an_outage_whose_reason_names_the_proxy(
    make_gateway: GatewayFactory, proxy: ForwardProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong proxy credentials: every upstream attempt fails to connect (a 503 to the caller, as
    any outage), and the process log says the proxy refused, and why, once."""
    wrong, _ = proxies_from_environment({"HTTP_PROXY": f"http://egress:n0t-it@127.0.0.1:{proxy.port}"})
    gateway = await make_gateway(proxies=wrong, upstream_host="metastudio.test", max_attempts=2)
    async with gateway.client.get("/v1/training-jobs", headers=ACME) as response:
        assert response.status == 503
        body = await response.text()
    assert "proxy" not in body  # the caller is told of an outage, not of the gateway's network
    assert gateway.simulator.state.request_log == []
    assert len(proxy.seen) == 2  # one per attempt, each answered 407
    assert gateway.metric("metastudio_gateway_upstream_requests_total", outcome="connection_error") == 2
    said = [record.getMessage() for record in caplog.records if record.name == "gateway.upstream.client"]
    assert said == [
        f"could not reach the upstream through the proxy {proxy.url}: the proxy wants credentials (407): the"
        " proxy URL's user and password are missing or wrong; upstream calls fail as connection_error until"
        " it is mended"
    ]
    assert "n0t-it" not in caplog.text


async def test_an_identity_providers_keys_are_fetched_through_the_proxy(
    make_gateway: GatewayFactory, clock: ManualClock, proxy: ForwardProxy
) -> None:
    async with running_idp(users={ALICE: ACME_CLAIM}, clock=clock) as idp:
        jwks_uri = idp.jwks_uri.replace("127.0.0.1", "idp.test")
        issuer = dataclasses.replace(issuer_settings(idp).issuers[0], jwks_uri=jwks_uri)
        gateway = await make_gateway(
            tenants=oidc_tenants(), oidc=OidcSettings(issuers=(issuer,)), proxies=proxies_to(proxy)
        )
        token = idp.control.issue(ALICE)

        async def accepted() -> bool:
            return (await answer(gateway, bearer(token)))[0] == 200

        await eventually(accepted, "the key set fetched through the proxy, the token accepted")
    assert jwks_uri in [seen.target for seen in proxy.seen]


async def test_a_credential_endpoint_the_proxy_refuses_fails_without_the_proxy_password_anywhere(
    tmp_path: Path,
) -> None:
    """aiohttp's error for a refused tunnel names the proxy URL, password included: the fetch's
    failure says what happened, and carries no such error along (a traceback would print it)."""
    token = tmp_path / "pod-token"
    token.write_text("pod-token\n")
    provider = PodIdentity(uri="https://cloud.test/v1/pod-identity", token_file=str(token))
    async with (
        ForwardProxy(credentials=("egress", PASSWORD), refuse_with=403) as refusing,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(FetchFailed) as failed:
            await provider.fetch(Outbound(session, proxies_to(refusing)))
    assert str(failed.value).endswith("could not be reached (ClientHttpProxyError)")
    assert refusing.seen[0].method == "CONNECT"
    assert PASSWORD not in "".join(traceback.format_exception(failed.value))
