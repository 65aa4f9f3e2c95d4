"""The chart and browser frontends: cover-link signing keys shared by every pod (a Secret mounted as a
file), a warning when pods would each sign with their own random key, and egress to the IdPs' JWKS."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config.url_signing import FILE_VARIABLE, VARIABLE, url_signing_keys
from tests.helm.conftest import (
    FULL_VALUES,
    ISSUER,
    NAMESPACE,
    SIGNING_KEYS,
    TENANTS,
    container,
    env_of,
    find,
    manifests,
    render,
    validate_strictly,
    volumes,
)

MOUNT = "/var/run/secrets/metastudio-gateway-url-signing"
NOTES = "metastudio-gateway/templates/NOTES.txt"
BASE = {"metastudio": {"projectId": "proj_0123"}, "credentials": {"existingSecret": "cloud-creds"}, "tenants": TENANTS}
WARNING = "WARNING: no URL-signing keys"


def _annotations(docs: list[dict[str, Any]]) -> dict[str, str]:
    return dict(find(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"])


def test_keys_from_an_existing_secret_are_a_mounted_file() -> None:
    """urlSigning.existingSecret: its key is mounted read-only and named by GATEWAY_URL_SIGNING_KEYS_FILE;
    the keys are never an env value and the chart makes no Secret of its own for them."""
    docs = manifests(render({**BASE, "urlSigning": {"existingSecret": "gateway-url-signing", "secretKey": "k"}}))
    validate_strictly(docs)
    assert "Secret" not in {d["kind"] for d in docs}
    deployment = find(docs, "Deployment")
    env = env_of(deployment)
    assert env[FILE_VARIABLE] == f"{MOUNT}/url-signing-keys"
    assert VARIABLE not in env
    volume = volumes(deployment).get("url-signing-keys")
    assert volume is not None
    assert volume["secret"]["secretName"] == "gateway-url-signing"
    assert volume["secret"]["items"] == [{"key": "k", "path": "url-signing-keys"}]
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "url-signing-keys")
    assert mount == {"name": "url-signing-keys", "mountPath": MOUNT, "readOnly": True}
    # The chart cannot see inside an existing Secret: no checksum (NOTES and values say to roll the pods).
    assert "checksum/url-signing" not in _annotations(docs)


def test_chart_made_keys_are_the_file_the_gateway_reads(full_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """urlSigning.keys becomes a chart Secret whose mounted file the gateway's own reader accepts: both
    key ids, the first one signing."""
    secret = find(full_docs, "Secret", "-url-signing")
    volume = volumes(find(full_docs, "Deployment")).get("url-signing-keys")
    assert volume is not None and volume["secret"]["secretName"] == secret["metadata"]["name"]
    (item,) = volume["secret"]["items"]
    path = tmp_path / item["path"]
    path.write_bytes(base64.b64decode(secret["data"][item["key"]]))
    keys = url_signing_keys({FILE_VARIABLE: str(path)})
    assert [k.kid for k in keys] == ["k2", "k1"]


def test_signing_secrets_appear_only_in_their_secret(full_rendered: dict[str, str]) -> None:
    """No signing secret (plain or base64) is in any other object, in an env value, or in NOTES.txt."""
    secrets = [pair.partition(":")[2] for pair in SIGNING_KEYS.split(",")]
    forms = [*secrets, SIGNING_KEYS, base64.b64encode(SIGNING_KEYS.encode()).decode()]
    docs = manifests(full_rendered)
    own = find(docs, "Secret", "-url-signing")
    for doc in docs:
        if doc is not own:
            assert [f for f in forms if f in json.dumps(doc)] == [], doc["metadata"]["name"]
    assert [f for f in forms if f in full_rendered[NOTES]] == []


def test_changed_keys_roll_the_pods() -> None:
    """A new urlSigning.keys changes the pod template (the gateway reads the keys at start); the config
    and credentials checksums stay."""
    other = "k3:another-helm-test-signing-secret-0006-abcdefgh"
    before = _annotations(manifests(render({**BASE, "urlSigning": {"keys": SIGNING_KEYS}})))
    after = _annotations(manifests(render({**BASE, "urlSigning": {"keys": other}})))
    assert before["checksum/url-signing"] != after["checksum/url-signing"]
    assert before["checksum/config"] == after["checksum/config"]


def test_without_keys_nothing_is_mounted() -> None:
    """The default: no signing-keys variable, volume or Secret (each pod makes a random key)."""
    deployment = find(manifests(render(BASE)), "Deployment")
    assert not {VARIABLE, FILE_VARIABLE} & set(env_of(deployment))
    assert volumes(deployment).get("url-signing-keys") is None


@pytest.mark.parametrize(
    ("values", "warned"),
    [
        ({"replicaCount": 2}, True),
        ({"replicaCount": 1, "autoscaling": {"enabled": True}}, True),
        ({"replicaCount": 1}, False),
        ({"replicaCount": 3, "urlSigning": {"existingSecret": "gateway-url-signing"}}, False),
        ({"autoscaling": {"enabled": True}, "urlSigning": {"keys": SIGNING_KEYS}}, False),
    ],
    ids=["two-pods", "autoscaling", "one-pod", "existing-secret", "chart-keys"],
)
def test_notes_warn_when_pods_would_sign_with_their_own_keys(values: dict[str, Any], warned: bool) -> None:
    """More than one pod (or an HPA) and no shared keys: NOTES.txt warns that links work on one pod
    only and shows how to create the Secret."""
    notes = render({**BASE, **values})[NOTES]
    assert (WARNING in notes) is warned
    if warned:
        assert f"kubectl -n {NAMESPACE} create secret generic" in notes and "existingSecret:" in notes


def test_egress_reaches_each_issuers_jwks_port() -> None:
    """With the NetworkPolicy on, HTTPS egress covers port 443 and the port an issuer's jwks_uri names."""
    issuers = [
        ISSUER,
        {**ISSUER, "name": "lab", "issuer": "https://lab.example.com", "jwks_uri": "https://lab.example.com:9443/jwks"},
    ]
    values = {**BASE, "config": {"oidc": {"issuers": issuers}}, "networkPolicy": {"enabled": True}}
    docs = manifests(render(values))
    validate_strictly(docs)
    egress = find(docs, "NetworkPolicy")["spec"]["egress"]
    https = next(rule for rule in egress if {"ipBlock": {"cidr": "0.0.0.0/0"}} in rule["to"])
    assert {p["port"] for p in https["ports"]} == {443, 9443}


def test_every_option_keeps_the_default_https_egress() -> None:
    """An issuer on the default port adds no port: the every-option policy still opens 443 and the endpoint's."""
    https = find(manifests(render(FULL_VALUES)), "NetworkPolicy")["spec"]["egress"][1]
    assert {p["port"] for p in https["ports"]} == {443, 8443}
