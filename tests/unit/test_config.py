"""Configuration: defaults, overrides, and errors that name every bad key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.errors import ConfigError

HASH = hashlib.sha256(b"key").hexdigest()
TENANT = f'[[tenants]]\nid = "acme"\napp_user_id = "acme-web"\napi_key_sha256 = ["{HASH}"]\n'
ENV = {"METASTUDIO_PROJECT_ID": "proj-1"}


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    """With only tenants configured, defaults are the contract's and the endpoint comes from the region."""
    settings = load_settings(ENV, _file(tmp_path, TENANT))
    assert settings.cache.ttl_seconds == 60 and settings.cache.max_bytes == 268_435_456
    assert settings.covers.refresh_margin_seconds == 3600
    assert settings.upstream.endpoint == "https://metastudio.cn-north-4.myhuaweicloud.com"
    assert (settings.upstream.timeout_seconds, settings.upstream.max_attempts) == (10, 3)
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8080)
    assert settings.tenants[0].api_key_sha256 == (HASH,)


def test_region_endpoint_override_and_env_ttl(tmp_path: Path) -> None:
    """METASTUDIO_REGION picks the endpoint, METASTUDIO_ENDPOINT overrides it, GATEWAY_CACHE_TTL_SECONDS the TTL."""
    env = {**ENV, "METASTUDIO_REGION": "cn-east-3", "GATEWAY_CACHE_TTL_SECONDS": "5"}
    settings = load_settings(env, _file(tmp_path, "[cache]\nttl_seconds = 30\n" + TENANT))
    assert settings.upstream.endpoint == "https://metastudio.cn-east-3.myhuaweicloud.com"
    assert settings.cache.ttl_seconds == 5
    override = load_settings({**env, "METASTUDIO_ENDPOINT": "http://127.0.0.1:9/"}, _file(tmp_path, TENANT))
    assert override.upstream.endpoint == "http://127.0.0.1:9"


def test_fast_hit_path_is_on_unless_switched_off(tmp_path: Path) -> None:
    """``[server] fast_hit_path`` defaults to true; the file can turn it off."""
    assert load_settings(ENV, _file(tmp_path, TENANT)).server.fast_hit_path is True
    off = load_settings(ENV, _file(tmp_path, "[server]\nfast_hit_path = false\ndrain_seconds = 2\n" + TENANT))
    assert (off.server.fast_hit_path, off.server.drain_seconds) == (False, 2)


def test_project_id_fallback_name(tmp_path: Path) -> None:
    """HUAWEICLOUD_SDK_PROJECT_ID is accepted when METASTUDIO_PROJECT_ID is not set."""
    settings = load_settings({"HUAWEICLOUD_SDK_PROJECT_ID": "p2"}, _file(tmp_path, TENANT))
    assert settings.upstream.project_id == "p2"


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("", ENV, "tenants"),
        (TENANT + "[cache]\nttl_seconds = 0\n", ENV, "cache.ttl_seconds"),
        (TENANT + "[cache]\nmax_bytes = 1.5\n", ENV, "cache.max_bytes"),
        (TENANT + "[upstream]\nmax_attempts = 0\n", ENV, "upstream.max_attempts"),
        (TENANT + "[upstream]\nretries = 2\n", ENV, "upstream.retries"),
        (TENANT + "[bogus]\n", ENV, "bogus"),
        (TENANT + TENANT, ENV, "appears twice"),
        (TENANT.replace('"acme-web"', '"名字"'), ENV, "tenants[0].app_user_id"),
        (TENANT.replace(HASH, "abc"), ENV, "tenants[0].api_key_sha256"),
        (TENANT.replace('"acme"', '"ACME!"'), ENV, "tenants[0].id"),
        (TENANT, {}, "METASTUDIO_PROJECT_ID"),
        (TENANT, {**ENV, "METASTUDIO_REGION": "mars-1"}, "METASTUDIO_REGION"),
        (TENANT, {**ENV, "METASTUDIO_ENDPOINT": "ftp://x"}, "METASTUDIO_ENDPOINT"),
        (TENANT, {**ENV, "GATEWAY_PORT": "99999"}, "GATEWAY_PORT"),
        (TENANT, {**ENV, "GATEWAY_CACHE_TTL_SECONDS": "soon"}, "GATEWAY_CACHE_TTL_SECONDS"),
        (TENANT + "[server]\nfast_hit_path = 1\n", ENV, "server.fast_hit_path"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, text: str, env: dict[str, str], named: str) -> None:
    """Each bad value raises ConfigError whose problems name the key."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env, _file(tmp_path, text))
    assert any(named in problem for problem in caught.value.problems), caught.value.problems


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    """Several bad keys are all named in one error."""
    with pytest.raises(ConfigError) as caught:
        load_settings({}, _file(tmp_path, "[cache]\nttl_seconds = -1\n[covers]\nrefresh_margin_seconds = 'x'\n"))
    text = str(caught.value)
    for key in ("cache.ttl_seconds", "covers.refresh_margin_seconds", "tenants", "METASTUDIO_PROJECT_ID"):
        assert key in text


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A config path that does not exist is one clear error naming the file."""
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings(ENV, str(tmp_path / "nope.toml"))
