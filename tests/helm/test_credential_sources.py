"""The chart's credential styles (credentials.source): the static Secret, CCE pod identity, ECS
metadata and OIDC, each rendering the env and mounts the gateway reads, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import TENANTS, container, env_of, find, kinds, manifests, render, validate_strictly, volumes

MOUNT = "/var/run/secrets/metastudio-gateway"
BASE = {"metastudio": {"projectId": "proj_0123"}, "tenants": TENANTS}
POD_IDENTITY = {"source": "pod-identity", "podIdentity": {"uri": "http://169.254.170.2:8091/v1/credentials"}}
OIDC = {"source": "oidc", "oidc": {"providerUrn": "iam::1:identity-provider:cce", "agencyUrn": "iam::1:agency:gw"}}


def _docs(credentials: dict[str, Any]) -> list[dict[str, Any]]:
    return manifests(render({**BASE, "credentials": credentials}))


@pytest.mark.parametrize("credentials", [POD_IDENTITY, OIDC, {"source": "metadata"}])
def test_temporary_sources_render_no_secret_and_valid_manifests(credentials: dict[str, Any]) -> None:
    """Pod identity, OIDC and metadata need no Secret; the manifests validate strictly."""
    docs = _docs(credentials)
    assert "Secret" not in kinds(docs)
    deployment = find(docs, "Deployment")
    env = env_of(deployment)
    assert env["METASTUDIO_CREDENTIALS_SOURCE"] == credentials["source"]
    assert not {"HUAWEICLOUD_SDK_AK_FILE", "HUAWEICLOUD_SDK_SK_FILE"} & set(env)
    validate_strictly(docs)


@pytest.mark.parametrize(
    ("credentials", "token_variable"),
    [(POD_IDENTITY, "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"), (OIDC, "HUAWEICLOUD_OIDC_TOKEN_FILE")],
)
def test_pod_identity_and_oidc_read_a_projected_service_account_token(
    credentials: dict[str, Any], token_variable: str
) -> None:
    """Only the service account's token for the given audience is mounted (kubelet-rotated); the
    variable the gateway reads names it; the API token is still not automounted."""
    deployment = find(_docs(credentials), "Deployment")
    env = env_of(deployment)
    assert env[token_variable] == f"{MOUNT}/identity-token"
    (source,) = volumes(deployment)["credentials"]["projected"]["sources"]
    assert source["serviceAccountToken"]["path"] == "identity-token"
    assert source["serviceAccountToken"]["audience"] == "sts.myhuaweicloud.com"
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
    assert mounts["credentials"]["mountPath"] == MOUNT and mounts["credentials"]["readOnly"] is True
    if credentials is POD_IDENTITY:
        assert env["HC_CONTAINER_CREDENTIALS_FULL_URI"] == POD_IDENTITY["podIdentity"]["uri"]
    else:
        assert env["HUAWEICLOUD_OIDC_AGENCY_URN"] == "iam::1:agency:gw"


def test_metadata_mounts_nothing_and_may_override_the_host() -> None:
    """ECS metadata: no credentials volume; METASTUDIO_METADATA_ENDPOINT only when overridden."""
    deployment = find(_docs({"source": "metadata", "metadata": {"endpoint": "http://169.254.169.254"}}), "Deployment")
    assert volumes(deployment).get("credentials") is None
    assert env_of(deployment)["METASTUDIO_METADATA_ENDPOINT"] == "http://169.254.169.254"


def test_static_keys_stay_the_default() -> None:
    """Without a source the chart renders today's Secret-as-files style."""
    deployment = find(_docs({"accessKey": "AK-HELM-STATIC", "secretKey": "SK-HELM-STATIC"}), "Deployment")
    env = env_of(deployment)
    assert env["METASTUDIO_CREDENTIALS_SOURCE"] == "static"
    assert env["HUAWEICLOUD_SDK_SK_FILE"] == f"{MOUNT}/secret-key"


def test_pod_identity_without_its_uri_is_refused() -> None:
    """credentials.source=pod-identity with no uri fails to render, naming the value."""
    with pytest.raises(Exception, match=r"credentials\.podIdentity\.uri"):
        render({**BASE, "credentials": {"source": "pod-identity"}})
