"""values.schema.json: it accepts the chart's values and rejects nonsense before anything is rendered."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.helm.conftest import CHART, FULL_VALUES, HASH_A, ISSUER, ROOT, render, require_module

SCHEMA = CHART / "values.schema.json"
TENANT = {"id": "acme", "app_user_id": "acme-web", "api_key_sha256": [HASH_A]}

BAD_VALUES: dict[str, dict[str, Any]] = {
    "negative-ttl": {"config": {"cache": {"ttl_seconds": -1}}},
    "zero-ttl": {"config": {"cache": {"ttl_seconds": 0}}},
    "ttl-as-string": {"config": {"cache": {"ttl_seconds": "60"}}},
    "fractional-max-bytes": {"config": {"cache": {"max_bytes": 1500.5}}},
    "zero-max-attempts": {"config": {"upstream": {"max_attempts": 0}}},
    "unknown-config-key": {"config": {"cache": {"ttl": 60}}},
    "unknown-config-section": {"config": {"caches": {"ttl_seconds": 60}}},
    "fast-hit-path-as-string": {"config": {"server": {"fast_hit_path": "off"}}},
    "port-in-config-file": {"config": {"server": {"port": 9090}}},
    "origin-with-path": {"config": {"cors": {"allowed_origins": ["https://app.example.com/ui"]}}},
    "tenant-id-with-capitals": {"tenants": [{**TENANT, "id": "Acme"}]},
    "tenant-id-with-underscore": {"tenants": [{**TENANT, "id": "ac_me"}]},
    "hash-too-short": {"tenants": [{**TENANT, "api_key_sha256": ["abc123"]}]},
    "hash-not-hex": {"tenants": [{**TENANT, "api_key_sha256": ["g" * 64]}]},
    "hash-as-string": {"tenants": [{**TENANT, "api_key_sha256": HASH_A}]},
    "chinese-app-user-id": {"tenants": [{**TENANT, "app_user_id": "中文用户"}]},
    "blank-app-user-id": {"tenants": [{**TENANT, "app_user_id": "  "}]},
    "tenant-without-id": {"tenants": [{"app_user_id": "acme-web", "api_key_sha256": [HASH_A]}]},
    "unknown-tenant-key": {"tenants": [{**TENANT, "api_key": "plain"}]},
    "unknown-top-level-key": {"replicas": 3},
    "zero-replicas-without-hpa": {"replicaCount": 0},
    "replicas-as-string": {"replicaCount": "2"},
    "unknown-region-without-endpoint": {"metastudio": {"region": "eu-west-101"}},
    "endpoint-with-path": {"metastudio": {"endpoint": "https://proxy.example.com/metastudio"}},
    "existing-secret-and-values": {"credentials": {"existingSecret": "cloud-creds", "secretKey": "sk"}},
    "no-credential-source": {"credentials": {"create": False}},
    "credential-with-space": {"credentials": {"accessKey": "AK SK"}},
    "credential-in-extra-env": {"extraEnv": [{"name": "HUAWEICLOUD_SDK_SK", "value": "sk"}]},
    "pdb-without-bounds": {"podDisruptionBudget": {"maxUnavailable": None}},
    "unknown-pre-stop-type": {"preStop": {"type": "signal"}},
    "negative-pre-stop": {"preStop": {"seconds": -1}},
    "service-type-external-name": {"service": {"type": "ExternalName"}},
    "hpa-target-over-100": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 150}},
    "enabled-as-string": {"monitoring": {"serviceMonitor": {"enabled": "yes"}}},
    "bad-scrape-interval": {"monitoring": {"serviceMonitor": {"enabled": True, "interval": "30 seconds"}}},
    "bad-cidr": {"networkPolicy": {"egress": {"httpsCIDRs": ["metastudio.cn-north-4.myhuaweicloud.com"]}}},
    "signing-existing-secret-and-keys": {"urlSigning": {"existingSecret": "url-keys", "keys": "k1:" + "s" * 40}},
    "signing-secret-too-short": {"urlSigning": {"keys": "k1:short-secret"}},
    "signing-key-without-kid": {"urlSigning": {"keys": "s" * 40}},
    "signing-keys-in-extra-env": {"extraEnv": [{"name": "GATEWAY_URL_SIGNING_KEYS", "value": "k1:" + "s" * 40}]},
    "tenant-oidc-without-claim-values": {"tenants": [{**TENANT, "oidc": [{"issuer": "corp"}]}]},
}

GOOD_VALUES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "every-option": FULL_VALUES,
    "zero-replicas-with-hpa": {"replicaCount": 0, "autoscaling": {"enabled": True}},
    "other-region-with-endpoint": {"metastudio": {"region": "ap-southeast-1", "endpoint": "http://sim:8090"}},
    "pdb-min-available-percent": {"podDisruptionBudget": {"minAvailable": "50%"}},
    "existing-secret-without-create": {"credentials": {"create": False, "existingSecret": "cloud-creds"}},
    "uppercase-hash": {"tenants": [{**TENANT, "api_key_sha256": [HASH_A.upper()]}]},
    "jwt-only-tenant": {
        "config": {"oidc": {"issuers": [ISSUER]}},
        "tenants": [{"id": "acme", "app_user_id": "acme-web", "oidc": [{"issuer": "corp", "claim_values": ["acme"]}]}],
    },
    "two-signing-keys": {"urlSigning": {"keys": "k2:" + "s" * 40 + ", k1:" + "t" * 32}},
    "signing-existing-secret": {"urlSigning": {"existingSecret": "url-keys", "secretKey": "signing.keys"}},
}


def _validator() -> Any:
    jsonschema = require_module("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _merged(values: dict[str, Any]) -> dict[str, Any]:
    """The values a release would use: the chart's defaults coalesced with ``values``, as Helm does."""
    helm = require_module("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        merged: dict[str, Any] = chart.merge_values(values)
    return merged


def test_check_jsonschema_accepts_values_yaml() -> None:
    """`check-jsonschema --schemafile values.schema.json values.yaml` passes."""
    require_module("check_jsonschema")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), str(CHART / "values.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_is_a_valid_json_schema() -> None:
    """values.schema.json is itself valid against its declared metaschema."""
    require_module("check_jsonschema")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--check-metaschema", str(SCHEMA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_rejected(values: dict[str, Any]) -> None:
    """Helm refuses to render the bad values and the JSON Schema names them invalid."""
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmValuesError, match="schema"):
        render(values)
    assert list(_validator().iter_errors(_merged(values))) != []


@pytest.mark.parametrize("values", GOOD_VALUES.values(), ids=GOOD_VALUES.keys())
def test_sensible_values_are_accepted(values: dict[str, Any]) -> None:
    """Sensible values, edge cases included, pass the schema and render."""
    assert [e.message for e in _validator().iter_errors(_merged(values))] == []
    assert render(values)


def test_config_and_tenants_are_generated_from_the_gateway_schema() -> None:
    """The ``config`` and ``tenants`` parts are the gateway's own config schema, regenerated, not copied by hand."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "helm_values_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
