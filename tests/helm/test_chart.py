"""The chart as a whole: helm lint, Kubernetes schema validation, YAML lint, the objects it makes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import (
    CHART,
    FULL_VALUES,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    as_helm_template_output,
    kinds,
    manifests,
    render,
    require_module,
    validate_strictly,
)

VARIANTS = {
    "defaults": {},
    "every-option": FULL_VALUES,
    "existing-secret-sleep-prestop": {
        "credentials": {
            "existingSecret": "cloud-creds",
            "existingSecretKeys": {"accessKey": "ak", "secretKey": "sk", "securityToken": "token"},
        },
        "preStop": {"type": "sleep", "seconds": 3},
        "podDisruptionBudget": {"enabled": False},
        "serviceAccount": {"create": False, "name": "shared"},
        "networkPolicy": {"enabled": True},
    },
}


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_helm_lint_strict_passes(values: dict[str, Any]) -> None:
    """`helm lint --strict` reports no warning or error, with the defaults and with every option on."""
    helm = require_module("helm_python")
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_manifest_is_valid_kubernetes(values: dict[str, Any]) -> None:
    """Every rendered object validates strictly against the Kubernetes 1.30 schemas (CRDs: known kinds only)."""
    validate_strictly(manifests(render(values)))


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_rendered_output_passes_yamllint(values: dict[str, Any]) -> None:
    """The rendered output, laid out as `helm template` prints it, has no yamllint error (relaxed rules)."""
    require_module("yamllint")
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    text = as_helm_template_output(render(values))
    errors = [str(p) for p in linter.run(text, YamlLintConfig("extends: relaxed")) if p.level == "error"]
    assert errors == []


def test_defaults_make_the_core_objects_only() -> None:
    """With the defaults the chart makes a Deployment, Service, ConfigMap, Secret, ServiceAccount and PDB only."""
    assert kinds(manifests(render())) == {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "PodDisruptionBudget",
    }


def test_every_option_adds_its_object(full_docs: list[dict[str, Any]]) -> None:
    """Turning every option on adds the HPA, ServiceMonitor, PrometheusRule, NetworkPolicy and dashboard."""
    assert kinds(full_docs) >= {
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ConfigMap",
    }
    assert sum(d["kind"] == "ConfigMap" for d in full_docs) == 2


def test_every_object_has_the_standard_labels_and_namespace(full_docs: list[dict[str, Any]]) -> None:
    """Every object carries the app.kubernetes.io labels and lives in the release namespace."""
    for doc in full_docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "metastudio-gateway"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "metastudio-gateway-0.1.0"
        assert doc["metadata"]["namespace"] == NAMESPACE


def test_service_is_cluster_ip_port_80_to_http(default_docs: list[dict[str, Any]]) -> None:
    """The Service is a ClusterIP on port 80 targeting the container port named http."""
    (service,) = [d for d in default_docs if d["kind"] == "Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    deployment = next(d for d in default_docs if d["kind"] == "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_service_account_does_not_mount_an_api_token(default_docs: list[dict[str, Any]]) -> None:
    """The ServiceAccount and the pod both opt out of the Kubernetes API token: the gateway never calls it."""
    (account,) = [d for d in default_docs if d["kind"] == "ServiceAccount"]
    deployment = next(d for d in default_docs if d["kind"] == "Deployment")
    assert account["automountServiceAccountToken"] is False
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_pdb_takes_min_available_or_max_unavailable(
    default_docs: list[dict[str, Any]], full_docs: list[dict[str, Any]]
) -> None:
    """The PodDisruptionBudget uses maxUnavailable 1 by default, and minAvailable alone once that is set."""
    (default_pdb,) = [d for d in default_docs if d["kind"] == "PodDisruptionBudget"]
    (full_pdb,) = [d for d in full_docs if d["kind"] == "PodDisruptionBudget"]
    assert default_pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in default_pdb["spec"]
    assert full_pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in full_pdb["spec"]


def test_hpa_scales_the_deployment_on_cpu(full_docs: list[dict[str, Any]]) -> None:
    """With autoscaling on, an autoscaling/v2 HPA targets the Deployment on CPU utilisation."""
    (hpa,) = [d for d in full_docs if d["kind"] == "HorizontalPodAutoscaler"]
    deployment = next(d for d in full_docs if d["kind"] == "Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"][0]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 60},
    }


def test_network_policy_limits_ingress_and_egress(full_docs: list[dict[str, Any]]) -> None:
    """The NetworkPolicy admits the chosen peers on port 8080 only; it lets out DNS, the upstream and extra CIDRs."""
    (policy,) = [d for d in full_docs if d["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]
    ports = [{(p["port"], p["protocol"]) for p in rule.get("ports", [])} for rule in spec["egress"]]
    # 443 for MetaStudio, 8443 because metastudio.endpoint names that port, 3128 for the extra CIDR.
    assert ports == [{(53, "UDP"), (53, "TCP")}, {(443, "TCP"), (8443, "TCP")}, {(3128, "TCP")}]
    assert spec["egress"][1]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert spec["egress"][2]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_notes_explain_port_forward_readiness_and_key_hashing(full_rendered: dict[str, str]) -> None:
    """NOTES.txt tells how to port-forward, check /readyz and hash an API key."""
    notes = full_rendered["metastudio-gateway/templates/NOTES.txt"]
    assert f"port-forward svc/{RELEASE}-metastudio-gateway 8080:80" in notes
    assert "/readyz" in notes and "hash-key" in notes
    assert "WARNING" not in notes


def test_notes_warn_when_required_settings_are_missing() -> None:
    """With the defaults NOTES.txt names the settings the gateway still needs."""
    notes = render()["metastudio-gateway/templates/NOTES.txt"]
    assert "WARNING: not configured yet: metastudio.projectId" in notes
    assert "tenants" in notes
