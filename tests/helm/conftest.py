"""Shared set-up for the Helm chart tests: the chart, rendering, the real tools they run.

Every tool is required: a missing one fails the test that needs it (``./scripts/test`` installs
them all), it never skips.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "metastudio-gateway"
RELEASE = "gw"
NAMESPACE = "avatars"
KUBE_VERSION = "1.30.0"
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

HASH_A = hashlib.sha256(b"acme-key").hexdigest()
HASH_B = hashlib.sha256(b"beta-key").hexdigest()
HASH_B2 = hashlib.sha256(b"beta-key-next").hexdigest()
# Distinctive credential values: none of them may show up outside the chart's Secret.
ACCESS_KEY = "AKIAHELMTESTACCESS0001"
SECRET_KEY = "sk-helm-test-secret-value-0002"
SECURITY_TOKEN = "token-helm-test-value-0003"
# Two cover-link signing keys (kid:secret, the first signs); the secrets must stay in their Secret too.
SIGNING_KEYS = "k2:helm-test-signing-secret-0004-abcdefghijkl,k1:helm-test-signing-secret-0005-abcdefghijkl"
ISSUER = {
    "name": "corp",
    "issuer": "https://idp.example.com/realms/corp",
    "jwks_uri": "https://idp.example.com/realms/corp/protocol/openid-connect/certs",
    "audiences": ["metastudio-gateway"],
}

TENANTS = [
    {"id": "acme", "app_user_id": "acme-web", "api_key_sha256": [HASH_A]},
    # Quotes, a backslash and a TOML comment sign: the TOML must escape them.
    {"id": "beta-2", "app_user_id": 'beta "quoted" \\ #x', "api_key_sha256": [HASH_B, HASH_B2]},
]

# Every option on: what test_every_option_* render and validate.
FULL_VALUES: dict[str, Any] = {
    "image": {"repository": "registry.example.com/avatars/metastudio-gateway", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry-creds"}],
    "metastudio": {"projectId": "proj_0123", "region": "cn-east-3", "endpoint": "https://proxy.example.com:8443"},
    "credentials": {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY, "securityToken": SECURITY_TOKEN},
    "urlSigning": {"keys": SIGNING_KEYS},
    "config": {
        "cache": {
            "ttl_seconds": 30,
            "max_bytes": 134217728,
            "max_bytes_per_tenant": 33554432,
            "stale_if_error_seconds": 1800.5,
        },
        "covers": {"refresh_margin_seconds": 7200, "image_url_ttl_seconds": 600},
        "upstream": {"timeout_seconds": 7.5, "max_attempts": 2},
        "server": {
            "shutdown_grace_seconds": 15,
            "keepalive_seconds": 90,
            "max_connections": 2048,
            "public_base_url": "https://api.example.com/metastudio",
        },
        "cors": {"allowed_origins": ["https://app.example.com", "http://localhost:3000"], "max_age_seconds": 120},
        "oidc": {"issuers": [ISSUER]},
    },
    "tenants": TENANTS,
    "service": {"annotations": {"example.com/owner": "avatars"}},
    "serviceAccount": {"annotations": {"example.com/role": "gateway"}},
    "podAnnotations": {"example.com/scrape": "false"},
    "podLabels": {"team": "avatars"},
    "preStop": {"seconds": 8},
    "extraEnv": [{"name": "GATEWAY_CACHE_TTL_SECONDS", "value": "30"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gateway", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "metastudio-gateway"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "metastudio-gateway"}},
        }
    ],
    "priorityClassName": "high",
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12, "targetCPUUtilizationPercentage": 60},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "ruleLabels": {"team": "avatars"},
        },
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Avatars"}},
    },
    "networkPolicy": {
        "enabled": True,
        "ingress": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
            "extraFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        },
        "egress": {"extraCIDRs": [{"cidr": "10.20.0.0/16", "ports": [3128]}]},
    },
}


def require_module(name: str) -> ModuleType:
    """Import a tool's module, failing (never skipping) the test when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"{name} is not installed (./scripts/test installs it): {exc}")


def require_command(name: str) -> str:
    """The path of a command-line tool, failing the test when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH (./scripts/test installs it)")
    return path


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """The chart rendered for a fresh install: template path -> text."""
    helm = require_module("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        rendered: dict[str, str] = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return rendered


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in a rendering (NOTES.txt is not one)."""
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def as_helm_template_output(rendered: dict[str, str]) -> str:
    """The rendering laid out as `helm template` prints it."""
    parts = [f"---\n# Source: {path}\n{text.strip()}\n" for path, text in sorted(rendered.items()) if text.strip()]
    return "".join(part for part in parts if not part.split("\n", 2)[1].endswith("NOTES.txt"))


def find(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """The one object of ``kind`` whose name ends with ``name_suffix``."""
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"expected one {kind}*{name_suffix}, got {[d['metadata']['name'] for d in matches]}"
    return matches[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


@pytest.fixture(scope="session")
def default_docs() -> list[dict[str, Any]]:
    return manifests(render())


@pytest.fixture(scope="session")
def full_rendered() -> dict[str, str]:
    return render(FULL_VALUES)


@pytest.fixture(scope="session")
def full_docs(full_rendered: dict[str, str]) -> list[dict[str, Any]]:
    return manifests(full_rendered)


@pytest.fixture(scope="session")
def metric_names() -> set[str]:
    """Every series name the gateway can expose, read from its real /metrics text."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from gateway.observability.metrics import Metrics

    metrics = Metrics(CollectorRegistry())
    metrics.watch_credential_expiry(lambda: 0.0)  # what a gateway on temporary credentials adds
    text = generate_latest(metrics.registry).decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def validate_strictly(docs: list[dict[str, Any]]) -> None:
    """Every object validates strictly against the Kubernetes schemas of ``KUBE_VERSION`` (the
    Prometheus-operator CRDs, which have none there, are checked in test_monitoring)."""
    kv = require_module("kubernetes_validate")
    for doc in docs:
        ident = (doc["apiVersion"], doc["kind"])
        try:
            kv.validate(doc, KUBE_VERSION, strict=True)
        except kv.SchemaNotFoundError:
            assert ident in CRD_KINDS, f"no schema for {ident}"
        except kv.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")


def volumes(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A Deployment's pod volumes by name."""
    return {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The gateway container of a Deployment."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["gateway"]
    return dict(containers[0])


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's plain env values by name (valueFrom entries map to '')."""
    return {e["name"]: e.get("value", "") for e in container(deployment)["env"]}
