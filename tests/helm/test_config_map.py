"""The gateway's TOML config file, rendered from values into a ConfigMap and read by the real loader."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.config.settings import load_settings
from tests.helm.conftest import (
    FULL_VALUES,
    HASH_A,
    ISSUER,
    TENANTS,
    find,
    manifests,
    render,
    require_module,
    validate_strictly,
)


def _toml(values: dict[str, Any]) -> str:
    return str(find(manifests(render(values)), "ConfigMap", "-config")["data"]["gateway.toml"])


def _write(tmp_path: Path, text: str, name: str = "gateway.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _tenant_only_file(tenant: dict[str, Any]) -> str:
    """A config file holding only ``tenant``: the gateway's own defaults for everything else."""
    hashes = ", ".join(f'"{h}"' for h in tenant["api_key_sha256"])
    return f'[[tenants]]\nid = "{tenant["id"]}"\napp_user_id = "{tenant["app_user_id"]}"\napi_key_sha256 = [{hashes}]\n'


def test_toml_equals_the_values() -> None:
    """The rendered TOML parses and holds exactly the config sections and tenants of the values."""
    data = tomllib.loads(_toml(FULL_VALUES))
    assert data.pop("tenants") == TENANTS
    assert data == FULL_VALUES["config"]


def test_numbers_keep_their_type() -> None:
    """Integers stay integers (max_bytes is no 1.34e+08) and fractions stay floats."""
    data = tomllib.loads(_toml(FULL_VALUES))
    assert data["cache"]["max_bytes"] == 134217728 and isinstance(data["cache"]["max_bytes"], int)
    assert data["cache"]["stale_if_error_seconds"] == 1800.5
    assert data["upstream"]["timeout_seconds"] == 7.5


def test_strings_are_escaped() -> None:
    """Quotes, backslashes and '#' in a tenant's app_user_id survive the TOML round trip."""
    data = tomllib.loads(_toml({"tenants": TENANTS}))
    assert data["tenants"][1]["app_user_id"] == 'beta "quoted" \\ #x'


def test_real_gateway_loader_accepts_every_option(tmp_path: Path) -> None:
    """gateway.config.settings.load_settings accepts the rendered file and reads the values back."""
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, _write(tmp_path, _toml(FULL_VALUES)))
    assert settings.cache.ttl_seconds == 30 and settings.cache.max_bytes == 134217728
    assert settings.cache.stale_if_error_seconds == 1800.5
    assert settings.cache.max_bytes_per_tenant == 33554432
    assert settings.covers.refresh_margin_seconds == 7200
    assert (settings.upstream.timeout_seconds, settings.upstream.max_attempts) == (7.5, 2)
    assert (settings.server.shutdown_grace_seconds, settings.server.keepalive_seconds) == (15, 90)
    assert settings.server.max_connections == 2048
    assert settings.cors.allowed_origins == ("https://app.example.com", "http://localhost:3000")
    assert settings.cors.max_age_seconds == 120
    assert settings.covers.image_url_ttl_seconds == 600
    assert settings.server.public_base_url == "https://api.example.com/metastudio"
    assert [(i.name, i.issuer, i.jwks_uri, i.audiences) for i in settings.oidc.issuers] == [
        (ISSUER["name"], ISSUER["issuer"], ISSUER["jwks_uri"], tuple(ISSUER["audiences"]))
    ]
    assert [(t.id, t.app_user_id, t.api_key_sha256) for t in settings.tenants] == [
        (t["id"], t["app_user_id"], tuple(t["api_key_sha256"])) for t in TENANTS
    ]


def test_real_gateway_loader_accepts_the_defaults_with_one_tenant(tmp_path: Path) -> None:
    """The chart's default config plus one tenant loads to the same settings as the gateway's own defaults."""
    tenant = {"id": "acme", "app_user_id": "acme-web", "api_key_sha256": [HASH_A]}
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, _write(tmp_path, _toml({"tenants": [tenant]})))
    defaults = load_settings({"METASTUDIO_PROJECT_ID": "p"}, _write(tmp_path, _tenant_only_file(tenant), "bare.toml"))
    assert settings == defaults


def test_optional_tenant_and_section_keys_are_rendered(tmp_path: Path) -> None:
    """Keys beyond the basic ones (a tenant's own rate limit, more sections) reach the file as given."""
    values = {
        "tenants": [{**TENANTS[0], "requests_per_second": 5, "burst": 10}],
        "config": {"rate_limit": {"requests_per_second": 50, "burst": 100}},
    }
    data = tomllib.loads(_toml(values))
    assert data["tenants"][0]["requests_per_second"] == 5 and data["tenants"][0]["burst"] == 10
    assert data["rate_limit"] == {"requests_per_second": 50, "burst": 100}


def test_oidc_issuer_and_jwt_only_tenant_reach_the_gateway(tmp_path: Path) -> None:
    """An [[oidc.issuers]] table with every option, a tenant only JWTs name (no api_key_sha256) and
    one with both render into a file the real loader accepts, each value as given; the manifests
    validate strictly."""
    issuer = {
        **ISSUER,
        "algorithms": ["RS256", "ES256"],
        "tenant_claim": "org",
        "leeway_seconds": 10,
        "jwks_refresh_seconds": 120,
        "jwks_refetch_cooldown_seconds": 15,
        "jwks_stale_if_error_seconds": 3600,
    }
    values = {
        "config": {
            "oidc": {"issuers": [issuer]},
            "covers": {"image_url_ttl_seconds": 300},
            "server": {"public_base_url": "https://gw.example.com/"},
        },
        "tenants": [
            {
                "id": "acme",
                "app_user_id": "acme-web",
                "oidc": [{"issuer": "corp", "claim_values": ["acme", "acme-eu"]}],
            },
            {**TENANTS[1], "oidc": [{"issuer": "corp", "claim_values": ["beta"]}]},
        ],
    }
    docs = manifests(render(values))
    validate_strictly(docs)
    text = str(find(docs, "ConfigMap", "-config")["data"]["gateway.toml"])
    assert "api_key_sha256" not in text.split('id = "acme"', 1)[1].split("[[tenants]]", 1)[0]
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, _write(tmp_path, text))
    (loaded,) = settings.oidc.issuers
    assert (loaded.name, loaded.issuer, loaded.jwks_uri) == (issuer["name"], issuer["issuer"], issuer["jwks_uri"])
    assert (loaded.audiences, loaded.algorithms, loaded.tenant_claim) == (
        ("metastudio-gateway",),
        ("RS256", "ES256"),
        "org",
    )
    assert (loaded.leeway_seconds, loaded.jwks_refresh_seconds) == (10, 120)
    assert (loaded.jwks_refetch_cooldown_seconds, loaded.jwks_stale_if_error_seconds) == (15, 3600)
    acme, beta = settings.tenants
    assert acme.id == "acme" and acme.api_key_sha256 == ()
    assert acme.oidc == (("corp", ("acme", "acme-eu")),)
    assert beta.api_key_sha256 == tuple(TENANTS[1]["api_key_sha256"])
    assert beta.oidc == (("corp", ("beta",)),)
    assert settings.covers.image_url_ttl_seconds == 300
    assert settings.server.public_base_url == "https://gw.example.com"


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        ([TENANTS[0], {**TENANTS[1], "id": "acme"}], "appears twice"),
        ([TENANTS[0], {**TENANTS[1], "api_key_sha256": [HASH_A]}], "used twice"),
        ([TENANTS[0], {**TENANTS[1], "api_key_sha256": []}], "neither api_key_sha256 nor oidc"),
    ],
    ids=["duplicate-id", "shared-key-hash", "no-way-in"],
)
def test_ambiguous_tenants_fail_the_render(tenants: list[dict[str, Any]], message: str) -> None:
    """Two tenants with one id, one key hash, or a tenant nothing can authenticate as, fail at render
    time instead of at the gateway's start."""
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmError, match=message):
        render({"tenants": tenants})


OTHER_ISSUER = {**ISSUER, "name": "partner", "issuer": "https://partner.example.com"}


def _oidc_tenant(issuer: str, *values: str, tenant_id: str = "acme") -> dict[str, Any]:
    return {"id": tenant_id, "app_user_id": "web", "oidc": [{"issuer": issuer, "claim_values": list(values)}]}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"config": {"shared": {"redis_url": "redis://:pw@redis:6379/0"}}}, "shared.existingSecret"),
        (
            {"config": {"oidc": {"issuers": [ISSUER, {**OTHER_ISSUER, "name": "corp"}]}}},
            r'issuers\[1\].name: "corp" appears twice',
        ),
        (
            {"config": {"oidc": {"issuers": [ISSUER, {**OTHER_ISSUER, "issuer": ISSUER["issuer"]}]}}},
            r"issuers\[1\].issuer: .* appears twice",
        ),
        (
            {"config": {"oidc": {"issuers": [ISSUER]}}, "tenants": [_oidc_tenant("partner", "acme")]},
            r'tenants\[0\].oidc\[0\].issuer: "partner" names no config.oidc.issuers entry',
        ),
        (
            {
                "config": {"oidc": {"issuers": [ISSUER]}},
                "tenants": [_oidc_tenant("corp", "acme"), _oidc_tenant("corp", "x", "acme", tenant_id="beta")],
            },
            r'tenants\[1\].oidc\[0\]: claim value "acme" of issuer "corp" already names another tenant',
        ),
    ],
    ids=["redis-url-in-config-map", "issuer-name-twice", "issuer-twice", "unknown-issuer", "claim-value-twice"],
)
def test_what_the_gateway_would_refuse_fails_the_render(values: dict[str, Any], message: str) -> None:
    """A Redis URL (and its password) in the ConfigMap instead of the Secret the chart offers, and
    OIDC settings the gateway refuses at start-up (an issuer twice, a tenant naming an unknown
    issuer, a claim value naming two tenants): the render fails saying which. They rendered, and
    the pods crash-looped (or, for the URL, kept a password in a ConfigMap)."""
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmError, match=message):
        render({"tenants": TENANTS, **values})


def test_a_claim_value_two_issuers_share_is_fine(tmp_path: Path) -> None:
    """The same claim value under two issuers names two tenants without a conflict: the pair is what
    must be unique, and the gateway's loader agrees."""
    values = {
        "config": {"oidc": {"issuers": [ISSUER, OTHER_ISSUER]}},
        "tenants": [_oidc_tenant("corp", "acme"), _oidc_tenant("partner", "acme", tenant_id="beta")],
    }
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, _write(tmp_path, _toml(values)))
    assert [tenant.id for tenant in settings.tenants] == ["acme", "beta"]


def test_a_claim_value_one_tenant_lists_twice_is_fine(tmp_path: Path) -> None:
    """One tenant naming the same claim value twice (in one list, or in two oidc items of one
    issuer) names no other tenant: the gateway's loader accepts it, and so does the render."""
    tenant = _oidc_tenant("corp", "acme", "acme")
    tenant["oidc"].append({"issuer": "corp", "claim_values": ["acme", "acme-eu"]})
    values = {"config": {"oidc": {"issuers": [ISSUER]}}, "tenants": [tenant]}
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, _write(tmp_path, _toml(values)))
    assert [tenant.id for tenant in settings.tenants] == ["acme"]


def test_numbers_past_int64_are_rendered_as_floats_not_wrapped(tmp_path: Path) -> None:
    """A whole number too large for int64 stays a float: it rendered as a negative integer, which
    the gateway refused as below its minimum."""
    data = tomllib.loads(_toml({"config": {"cache": {"stale_if_error_seconds": 1.5e300}}, "tenants": TENANTS}))
    assert data["cache"]["stale_if_error_seconds"] == 1.5e300


def test_config_map_holds_no_credentials(full_docs: list[dict[str, Any]]) -> None:
    """The config file has no credential section or key: those come from files only."""
    text = find(full_docs, "ConfigMap", "-config")["data"]["gateway.toml"].lower()
    assert "secret" not in text and "access" not in text and "token" not in text


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicaCount": 4}, 4),
        ({"autoscaling": {"enabled": True, "minReplicas": 3}}, 3),
        ({"replicaCount": 4, "config": {"shared": {"expected_replicas": 7, "key_prefix": "gw"}}}, 7),
    ],
    ids=["replica count", "autoscaling minimum", "set in config"],
)
def test_with_the_shared_tier_the_pods_expected_are_counted_before_redis_is_reached(
    tmp_path: Path, values: dict[str, Any], expected: int
) -> None:
    """With shared.existingSecret, config.shared.expected_replicas is the pods the chart runs
    (replicaCount, or autoscaling.minReplicas), unless set: a pod started while Redis is down
    limits each tenant to that share of its rate, not the whole rate."""
    toml = _toml({**values, "shared": {"existingSecret": "gateway-redis"}, "tenants": TENANTS})
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, _write(tmp_path, toml))
    assert settings.shared.expected_replicas == expected


def test_without_the_shared_tier_no_replica_count_is_rendered() -> None:
    """Without Redis each pod is on its own: nothing to divide."""
    assert "expected_replicas" not in _toml({"replicaCount": 4, "tenants": TENANTS})
