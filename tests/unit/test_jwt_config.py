"""[[oidc.issuers]] and tenants' oidc in the config file, and which JWKS entries count as usable keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.admission.jwks import parse_jwks
from gateway.config.settings import load_settings
from gateway.errors import ConfigError

ISSUER = """
[[oidc.issuers]]
name = "corp"
issuer = "https://idp.example.com/realms/corp"
jwks_uri = "https://idp.example.com/realms/corp/certs"
audiences = ["metastudio-gateway"]
{extra}
"""
TENANT = """
[[tenants]]
id = "{id}"
app_user_id = "{id}-web"
api_key_sha256 = "{digest}"
oidc = [{{ issuer = "{issuer}", claim_values = ["{value}"] }}]
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings({"METASTUDIO_PROJECT_ID": "p"}, str(path))
    return caught.value.problems


def _tenant(id: str, issuer: str = "corp", value: str = "acme", digit: str = "0") -> str:
    return TENANT.format(id=id, digest=digit * 64, issuer=issuer, value=value)


def test_a_valid_issuer_and_tenant_load_into_settings(tmp_path: Path) -> None:
    """An issuer with defaults and a tenant naming it load; the tenant carries (issuer, claim values)."""
    path = tmp_path / "gateway.toml"
    path.write_text(ISSUER.format(extra="") + _tenant("acme"))
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, str(path))
    (issuer,) = settings.oidc.issuers
    assert issuer.algorithms == ("RS256", "ES256") and issuer.jwks_refetch_cooldown_seconds == 30
    assert settings.tenants[0].oidc == (("corp", ("acme",)),)


@pytest.mark.parametrize(
    "url", ["http://idp.example.com/certs", "http://10.0.0.5:8080/certs", "http://localhost.evil.example/certs"]
)
def test_check_config_refuses_a_key_set_over_plain_http(tmp_path: Path, url: str) -> None:
    """Whoever answers the key set's fetch picks the keys every tenant's tokens are checked
    with: plain http to another host (anyone on the path could sign tokens) is refused."""
    text = ISSUER.format(extra="").replace(
        'jwks_uri = "https://idp.example.com/realms/corp/certs"', f'jwks_uri = "{url}"'
    )
    assert _problems(tmp_path, text + _tenant("acme")) == [
        "oidc.issuers[0].jwks_uri: the key set must be fetched over https (plain http only to a loopback address)"
    ]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/jwks", "http://[::1]/jwks", "http://localhost/jwks"])
def test_a_key_set_on_loopback_may_be_plain_http(tmp_path: Path, url: str) -> None:
    """http to this host (a sidecar, the demo's IdP) is allowed."""
    path = tmp_path / "gateway.toml"
    path.write_text(
        ISSUER.format(extra="").replace('jwks_uri = "https://idp.example.com/realms/corp/certs"', f'jwks_uri = "{url}"')
        + _tenant("acme")
    )
    assert load_settings({"METASTUDIO_PROJECT_ID": "p"}, str(path)).oidc.issuers[0].jwks_uri == url


@pytest.mark.parametrize("algorithm", ["HS256", "HS512", "none"])
def test_check_config_refuses_symmetric_and_none_algorithms(tmp_path: Path, algorithm: str) -> None:
    """HS* and none are refused by name of the key, saying only asymmetric algorithms are allowed."""
    problems = _problems(tmp_path, ISSUER.format(extra=f'algorithms = ["RS256", "{algorithm}"]') + _tenant("acme"))
    assert problems == [
        "oidc.issuers[0].algorithms[1]: HS* (symmetric) and 'none' are refused: only asymmetric algorithms"
        " (RS*, PS*, ES*, EdDSA)"
    ]


def test_an_unknown_algorithm_is_refused(tmp_path: Path) -> None:
    """An algorithm outside the asymmetric list is refused, listing the allowed ones."""
    (problem,) = _problems(tmp_path, ISSUER.format(extra='algorithms = ["XS256"]') + _tenant("acme"))
    assert problem.startswith("oidc.issuers[0].algorithms[0]: must be 'RS256'")


def test_a_tenant_must_name_a_configured_issuer(tmp_path: Path) -> None:
    """A tenant's oidc issuer that names no [[oidc.issuers]] table is refused."""
    (problem,) = _problems(tmp_path, ISSUER.format(extra="") + _tenant("acme", issuer="other"))
    assert "tenants[0].oidc[0].issuer names no [[oidc.issuers]] table" in problem


def test_an_issuer_claim_value_names_at_most_one_tenant(tmp_path: Path) -> None:
    """Two tenants claiming the same (issuer, claim value) are refused."""
    text = ISSUER.format(extra="") + _tenant("acme") + _tenant("globex", digit="1")
    (problem,) = _problems(tmp_path, text)
    assert "a claim value of issuer 'corp' already names tenants[0]" in problem


def test_an_issuer_needs_an_audience(tmp_path: Path) -> None:
    """An empty audience list is refused (aud is always checked)."""
    text = ISSUER.format(extra="") + ISSUER.format(extra="").replace('["metastudio-gateway"]', "[]") + _tenant("acme")
    problems = _problems(tmp_path, text)
    assert "oidc.issuers[1].audiences: must have at least 1 item(s)" in problems


def _rsa_jwk(**extra: object) -> dict[str, object]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "r1", **extra}


def test_only_public_signing_keys_for_allowed_algorithms_are_kept() -> None:
    """Keys for encryption, with private parts, for another algorithm, without a kid, or named
    twice are dropped; an RSA signing key and a P-256 key remain."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    entries = [
        _rsa_jwk(use="sig", alg="RS256"),
        _rsa_jwk(kid="enc", use="enc"),
        _rsa_jwk(kid="private", d="AQAB"),
        _rsa_jwk(kid="hs", alg="HS256"),
        _rsa_jwk(kid=None),
        {**_rsa_jwk(kid="twice")},
        {**_rsa_jwk(kid="twice")},
        {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "e1"},
    ]
    keys = parse_jwks(json.dumps({"keys": entries}).encode(), ("RS256", "ES256"))
    assert sorted(keys) == ["e1", "r1"]
    assert keys["r1"].fits("RS256") and not keys["r1"].fits("ES256") and keys["e1"].fits("ES256")


@pytest.mark.parametrize("body", [b"", b"[]", b'{"keys": []}', b'{"keys": "x"}', b'{"keys": [{"kty": "RSA"}]}'])
def test_a_document_with_no_usable_key_is_refused(body: bytes) -> None:
    """Garbage, an empty key set, or one with no usable key raises (the keys held stay)."""
    with pytest.raises(ValueError, match=r"."):
        parse_jwks(body, ("RS256",))


def test_a_tenant_named_only_by_end_user_tokens_needs_no_api_key(tmp_path: Path) -> None:
    """A tenant with oidc and no api_key_sha256 loads (a browser-only tenant holds no API key)."""
    path = tmp_path / "gateway.toml"
    path.write_text(ISSUER.format(extra="") + _tenant("acme").replace(f'api_key_sha256 = "{"0" * 64}"\n', ""))
    settings = load_settings({"METASTUDIO_PROJECT_ID": "p"}, str(path))
    assert settings.tenants[0].api_key_sha256 == ()
    assert settings.tenants[0].oidc == (("corp", ("acme",)),)


def test_a_tenant_with_neither_api_keys_nor_oidc_is_refused(tmp_path: Path) -> None:
    """A tenant nothing could authenticate as is a configuration error naming it."""
    problems = _problems(tmp_path, '[[tenants]]\nid = "ghost"\napp_user_id = "ghost-web"\n')
    assert any("tenants[0] has neither api_key_sha256 nor oidc" in problem for problem in problems), problems
