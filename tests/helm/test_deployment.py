"""The Deployment: probes, hardening, graceful shutdown, credentials as files, config roll-out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.helm.conftest import (
    ACCESS_KEY,
    FULL_VALUES,
    SECRET_KEY,
    SECURITY_TOKEN,
    TENANTS,
    container,
    env_of,
    find,
    manifests,
    render,
    require_module,
    validate_strictly,
    volumes,
)

MOUNT = "/var/run/secrets/metastudio-gateway"


def _deployment(values: dict[str, Any] | None = None) -> dict[str, Any]:
    return find(manifests(render(values)), "Deployment")


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"])


def _mount_of(deployment: dict[str, Any], volume: str) -> str:
    return str(next(m["mountPath"] for m in container(deployment)["volumeMounts"] if m["name"] == volume))


def test_probes_check_healthz_and_readyz(default_docs: list[dict[str, Any]]) -> None:
    """Liveness asks /healthz and readiness /readyz, both on the port named http (8080)."""
    gateway = container(find(default_docs, "Deployment"))
    assert gateway["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gateway["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_pod_and_container_are_locked_down(default_docs: list[dict[str, Any]]) -> None:
    """Non-root uid 10001, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp."""
    deployment = find(default_docs, "Deployment")
    pod_sc = _pod(deployment)["securityContext"]
    sc = container(deployment)["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 10001
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_resources_have_requests_and_limits(default_docs: list[dict[str, Any]]) -> None:
    """The container requests and limits CPU and memory by default."""
    resources = container(find(default_docs, "Deployment"))["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_tmp_is_a_writable_empty_dir(default_docs: list[dict[str, Any]]) -> None:
    """/tmp is an emptyDir, the one writable place on a read-only root file system."""
    deployment = find(default_docs, "Deployment")
    assert _mount_of(deployment, "tmp") == "/tmp"
    assert "emptyDir" in volumes(deployment)["tmp"]


def test_pre_stop_pauses_with_python_by_default(default_docs: list[dict[str, Any]]) -> None:
    """preStop runs python3 sleeping preStop.seconds (the image has python3, maybe no sleep binary)."""
    pre_stop = container(find(default_docs, "Deployment"))["lifecycle"]["preStop"]
    assert pre_stop == {"exec": {"command": ["python3", "-c", "import time; time.sleep(5)"]}}


def test_pre_stop_can_use_the_kubelet_sleep_action() -> None:
    """preStop.type sleep uses the kubelet's native sleep action instead of a command."""
    pre_stop = container(_deployment({"preStop": {"type": "sleep", "seconds": 7}}))["lifecycle"]["preStop"]
    assert pre_stop == {"sleep": {"seconds": 7}}


def test_pre_stop_command_can_be_replaced() -> None:
    """preStop.command replaces the default python3 pause."""
    deployment = _deployment({"preStop": {"command": ["/bin/sleep", "4"]}})
    assert container(deployment)["lifecycle"]["preStop"] == {"exec": {"command": ["/bin/sleep", "4"]}}


@pytest.mark.parametrize(
    ("values", "minimum"),
    [
        ({}, 5 + 10),
        ({"preStop": {"seconds": 8}, "config": {"server": {"shutdown_grace_seconds": 15}}}, 8 + 15),
        ({"config": {"server": {"drain_seconds": 4}}}, 5 + 10 + 4),
    ],
    ids=["defaults", "longer-pause-and-grace", "with-drain"],
)
def test_termination_grace_outlasts_pre_stop_and_drain(values: dict[str, Any], minimum: int) -> None:
    """terminationGracePeriodSeconds exceeds the preStop pause plus the gateway's shutdown grace (and drain)."""
    assert _pod(_deployment(values))["terminationGracePeriodSeconds"] > minimum


def test_the_gateways_default_drain_is_counted_as_it_is_set() -> None:
    """drain_seconds unset is the gateway's default, 1 s: a grace that is too short with it set to
    1 is too short without it too (it was counted as 0, so Kubernetes could kill the pod as its
    work ended)."""
    helm = require_module("helm_python")
    for values in ({}, {"config": {"server": {"drain_seconds": 1}}}):
        with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
            render({**values, "terminationGracePeriodSeconds": 16})
    assert _pod(_deployment({"terminationGracePeriodSeconds": 17}))["terminationGracePeriodSeconds"] == 17


def test_too_short_termination_grace_is_refused() -> None:
    """An explicit terminationGracePeriodSeconds that would cut the drain short fails the render."""
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
        render({"terminationGracePeriodSeconds": 12})


def test_environment_names_the_upstream_config_and_port() -> None:
    """The container gets METASTUDIO_PROJECT_ID/REGION/ENDPOINT, GATEWAY_CONFIG and GATEWAY_PORT."""
    env = env_of(_deployment(FULL_VALUES))
    assert env["METASTUDIO_PROJECT_ID"] == "proj_0123"
    assert env["METASTUDIO_REGION"] == "cn-east-3"
    assert env["METASTUDIO_ENDPOINT"] == "https://proxy.example.com:8443"
    assert env["GATEWAY_CONFIG"] == "/etc/metastudio-gateway/gateway.toml"
    assert env["GATEWAY_PORT"] == "8080"
    assert env["GATEWAY_CACHE_TTL_SECONDS"] == "30"


def test_endpoint_is_left_out_unless_set(default_docs: list[dict[str, Any]]) -> None:
    """Without metastudio.endpoint no METASTUDIO_ENDPOINT is set, so the region picks the endpoint."""
    assert "METASTUDIO_ENDPOINT" not in env_of(find(default_docs, "Deployment"))


def test_config_file_is_mounted_where_gateway_config_points(default_docs: list[dict[str, Any]]) -> None:
    """GATEWAY_CONFIG names the gateway.toml key of the chart's ConfigMap, mounted read-only."""
    deployment = find(default_docs, "Deployment")
    config_map = find(default_docs, "ConfigMap", "-config")
    directory, _, key = env_of(deployment)["GATEWAY_CONFIG"].rpartition("/")
    assert _mount_of(deployment, "config") == directory
    assert volumes(deployment)["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert key in config_map["data"]


def test_credentials_are_files_from_the_chart_secret(full_docs: list[dict[str, Any]]) -> None:
    """AK, SK and token reach the pod as files of the chart's Secret, named by the *_FILE variables."""
    deployment = find(full_docs, "Deployment")
    secret = find(full_docs, "Secret", "-credentials")
    env = env_of(deployment)
    volume = volumes(deployment)["credentials"]["secret"]
    assert volume["secretName"] == secret["metadata"]["name"]
    files = {item["path"]: item["key"] for item in volume["items"]}
    mount = _mount_of(deployment, "credentials")
    expected = {
        "HUAWEICLOUD_SDK_AK_FILE": ACCESS_KEY,
        "HUAWEICLOUD_SDK_SK_FILE": SECRET_KEY,
        "HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE": SECURITY_TOKEN,
    }
    for variable, value in expected.items():
        directory, _, name = env[variable].rpartition("/")
        assert directory == mount == MOUNT
        assert base64.b64decode(secret["data"][files[name]]).decode() == value


def test_no_token_file_without_a_token(default_docs: list[dict[str, Any]]) -> None:
    """Without a security token neither the token file nor HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE exists."""
    deployment = find(default_docs, "Deployment")
    assert "HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE" not in env_of(deployment)
    assert [i["path"] for i in volumes(deployment)["credentials"]["secret"]["items"]] == ["access-key", "secret-key"]
    assert "security-token" not in find(default_docs, "Secret")["data"]


def test_credential_values_appear_only_in_the_secret(full_docs: list[dict[str, Any]]) -> None:
    """No credential value (plain or base64) appears in any object but the credentials Secret, and no
    env var carries one."""
    deployment = find(full_docs, "Deployment")
    values = (ACCESS_KEY, SECRET_KEY, SECURITY_TOKEN)
    forms = [*values, *(base64.b64encode(v.encode()).decode() for v in values)]
    for doc in full_docs:
        if doc is not find(full_docs, "Secret", "-credentials"):
            text = json.dumps(doc)
            assert [f for f in forms if f in text] == [], doc["kind"]
    names = set(env_of(deployment))
    assert not names & {"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN"}
    assert all("valueFrom" not in e for e in container(deployment)["env"])


def test_existing_secret_replaces_the_chart_secret() -> None:
    """With credentials.existingSecret no Secret is rendered and its configured keys are mounted instead."""
    docs = manifests(
        render(
            {
                "credentials": {
                    "existingSecret": "cloud-creds",
                    "existingSecretKeys": {"accessKey": "ak", "secretKey": "sk", "securityToken": "sts"},
                }
            }
        )
    )
    assert "Secret" not in {d["kind"] for d in docs}
    deployment = find(docs, "Deployment")
    volume = volumes(deployment)["credentials"]["secret"]
    assert volume["secretName"] == "cloud-creds"
    assert {i["key"]: i["path"] for i in volume["items"]} == {
        "ak": "access-key",
        "sk": "secret-key",
        "sts": "security-token",
    }
    assert env_of(deployment)["HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE"] == f"{MOUNT}/security-token"
    assert "checksum/secret" not in deployment["spec"]["template"]["metadata"]["annotations"]


def test_existing_secret_without_token_key_wires_no_token() -> None:
    """An existingSecret whose token key is unset gets no token file or variable."""
    deployment = _deployment({"credentials": {"existingSecret": "cloud-creds"}})
    assert "HUAWEICLOUD_SDK_SECURITY_TOKEN_FILE" not in env_of(deployment)
    assert [i["key"] for i in volumes(deployment)["credentials"]["secret"]["items"]] == ["access-key", "secret-key"]


def test_autoscaling_leaves_replicas_to_the_hpa(default_docs: list[dict[str, Any]]) -> None:
    """The Deployment sets replicas when autoscaling is off and omits them when it is on."""
    assert find(default_docs, "Deployment")["spec"]["replicas"] == 2
    assert "replicas" not in _deployment({"autoscaling": {"enabled": True}})["spec"]


def test_config_change_rolls_the_pods(default_docs: list[dict[str, Any]]) -> None:
    """A changed config or Secret changes the pod template's checksum annotations, so pods roll."""
    before = find(default_docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    after_config = _deployment({"tenants": TENANTS[:1]})["spec"]["template"]["metadata"]["annotations"]
    after_secret = _deployment({"credentials": {"accessKey": "AK2"}})["spec"]["template"]["metadata"]["annotations"]
    assert after_config["checksum/config"] != before["checksum/config"]
    assert after_config["checksum/secret"] == before["checksum/secret"]
    assert after_secret["checksum/secret"] != before["checksum/secret"]
    assert after_secret["checksum/config"] == before["checksum/config"]


def test_image_defaults_to_the_app_version(default_docs: list[dict[str, Any]]) -> None:
    """Without image.tag the image is tagged with the chart's appVersion."""
    assert container(find(default_docs, "Deployment"))["image"] == "metastudio-gateway:0.1.0"


def test_pod_scheduling_options_pass_through(full_docs: list[dict[str, Any]]) -> None:
    """nodeSelector, tolerations, affinity, spread constraints and priority class reach the pod spec."""
    pod = _pod(find(full_docs, "Deployment"))
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName"):
        assert pod[key] == FULL_VALUES[key]
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]


def test_a_ca_bundle_can_be_mounted_and_named_in_ssl_cert_file() -> None:
    """A private CA or a TLS-inspecting proxy's: ``extraVolumes`` and ``extraVolumeMounts`` mount
    its bundle, and ``extraEnv`` names it in SSL_CERT_FILE (the README's way to trust it; the
    chart could not mount a file at all, nor the CA a Redis URL's ssl_ca_certs names). The
    manifests validate strictly; a volume may not take a name the chart's own use."""
    values = {
        "extraVolumes": [{"name": "ca-bundle", "configMap": {"name": "corporate-ca-bundle"}}],
        "extraVolumeMounts": [{"name": "ca-bundle", "mountPath": "/etc/ca-bundle", "readOnly": True}],
        "extraEnv": [{"name": "SSL_CERT_FILE", "value": "/etc/ca-bundle/ca-bundle.pem"}],
    }
    docs = manifests(render(values))
    deployment = find(docs, "Deployment")
    assert volumes(deployment)["ca-bundle"] == {"name": "ca-bundle", "configMap": {"name": "corporate-ca-bundle"}}
    assert _mount_of(deployment, "ca-bundle") == "/etc/ca-bundle"
    assert env_of(deployment)["SSL_CERT_FILE"] == "/etc/ca-bundle/ca-bundle.pem"
    validate_strictly(docs)
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmError):
        render({"extraVolumes": [{"name": "tmp", "emptyDir": {}}]})
