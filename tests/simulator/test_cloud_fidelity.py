"""The fake cloud speaks the real protocols: the official SDK's own credential providers, pointed at
the simulator only through their environment overrides (``upstream/CREDENTIALS.md`` §9), obtain
credentials from it, and the SDK's ``MetaStudioClient`` lists jobs through the simulator with them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import SystemClock
from gateway.simulator import running_simulator
from gateway.simulator.cloud import POD_IDENTITY_PATH
from tests.leaks import register_secrets

pytestmark = pytest.mark.asyncio
provider = pytest.importorskip("huaweicloudsdkcore.auth.provider")
metastudio = pytest.importorskip("huaweicloudsdkmetastudio.v1")

POD_TOKEN = "sdk-fidelity-pod-token"
ID_TOKEN = "sdk-fidelity-id-token"
register_secrets([POD_TOKEN, ID_TOKEN])


def _sdk_lists_jobs(credentials: Any, endpoint: str, project_id: str) -> int:
    """An SDK ``MetaStudioClient`` with ``credentials`` lists jobs at ``endpoint``; the job count."""
    credentials.with_project_id(project_id)
    client = metastudio.MetaStudioClient.new_builder().with_credentials(credentials).with_endpoints([endpoint]).build()
    response = client.list2d_model_training_job(metastudio.List2dModelTrainingJobRequest(limit=5))
    return int(response.count)


def _sdk_flow(flow: str) -> Any:
    """The SDK provider for ``flow``, as the SDK builds it from the environment; its credentials."""
    if flow == "pod-identity":
        return provider.PodIdentityCredentialProvider.get_basic().get_credentials()
    if flow == "oidc":
        return provider.OidcStsCredentialProvider.get_basic().get_credentials()
    if flow == "metadata":
        return provider.MetadataCredentialProvider.get_basic_credential_metadata_provider().get_credentials()
    return provider.EnvCredentialProvider.get_basic_credential_env_provider().get_credentials()


@pytest.mark.parametrize("flow", ["pod-identity", "oidc", "metadata", "federation"])
async def test_the_official_sdk_gets_credentials_and_lists_jobs(
    flow: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's provider obtains temporary credentials from the fake; its client's signed list call
    (with X-Security-Token) is accepted by the simulator."""
    async with running_simulator(clock=SystemClock()) as simulator:
        cloud = simulator.cloud
        cloud.pod_identity_token, cloud.id_token = POD_TOKEN, ID_TOKEN
        token_file = tmp_path / "token"
        token_file.write_text((POD_TOKEN if flow == "pod-identity" else ID_TOKEN) + "\n")
        for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("https_proxy", simulator.base_url)  # nothing leaves loopback
        monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", simulator.project_id)
        if flow == "pod-identity":
            monkeypatch.setenv("HC_CONTAINER_CREDENTIALS_FULL_URI", simulator.base_url + POD_IDENTITY_PATH)
            monkeypatch.setenv("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
        elif flow == "oidc":
            monkeypatch.setenv("HUAWEICLOUD_OIDC_PROVIDER_URN", "iam::sim:identity-provider:ci")
            monkeypatch.setenv("HUAWEICLOUD_OIDC_AGENCY_URN", "iam::sim:agency:gateway")
            monkeypatch.setenv("HUAWEICLOUD_OIDC_TOKEN_FILE", str(token_file))
            monkeypatch.setenv("HUAWEICLOUD_SDK_STS_ENDPOINT", simulator.base_url)
        elif flow == "metadata":
            monkeypatch.setenv("http_proxy", simulator.base_url)
            monkeypatch.setenv("no_proxy", "127.0.0.1")
        else:
            monkeypatch.setenv("HUAWEICLOUD_SDK_IDP_ID", cloud.idp_id)
            monkeypatch.setenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE", str(token_file))
            monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", simulator.base_url)
        try:
            credentials = await asyncio.to_thread(_sdk_flow, flow)
            count = await asyncio.to_thread(_sdk_lists_jobs, credentials, simulator.base_url, simulator.project_id)
        finally:
            register_secrets(cloud.secrets())
        assert count > 0
        sent = simulator.state.request_log[-1]
        assert sent.status == 200
        assert "x-security-token" in sent.headers["Authorization"]
        assert len(cloud.keys) == 1
