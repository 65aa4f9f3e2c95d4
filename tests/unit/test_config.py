"""Configuration: defaults, overrides, and errors that name every bad key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import pytest
from pydantic import Field, with_config
from pydantic.fields import FieldInfo

from gateway.config.schema import TABLE, Env, json_schema, load
from gateway.config.settings import ServerSettings, config_file_json_schema, load_settings
from gateway.errors import ConfigError
from gateway.tenant import Tenant

HASH = hashlib.sha256(b"key").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()
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


def test_a_tenant_bound_over_the_whole_cache_is_refused(tmp_path: Path) -> None:
    """max_bytes_per_tenant is 0 (no bound) by default, may not exceed max_bytes, nor be smaller
    than a page of 100 jobs."""
    assert load_settings(ENV, _file(tmp_path, TENANT)).cache.max_bytes_per_tenant == 0
    with pytest.raises(ConfigError) as caught:
        load_settings(ENV, _file(tmp_path, "[cache]\nmax_bytes = 4096\nmax_bytes_per_tenant = 8192\n" + TENANT))
    assert caught.value.problems == [
        "cache.max_bytes_per_tenant: must be at most max_bytes (0: no bound but max_bytes)"
    ]
    with pytest.raises(ConfigError) as caught:  # smaller than a page: nothing of the tenant's would be kept
        load_settings(ENV, _file(tmp_path, "[cache]\nmax_bytes_per_tenant = 1000\n" + TENANT))
    assert caught.value.problems == [
        "cache.max_bytes_per_tenant: must be 0 (no bound) or at least 65536: a larger entry would never be kept"
    ]


def test_numbers_in_the_environment_may_have_white_space_around_them(tmp_path: Path) -> None:
    """A value written as a YAML block in a ConfigMap ends in a newline: the number is read (the
    digits-only check refused it, and the pod would have crash-looped)."""
    env = {**ENV, "GATEWAY_PORT": "8081\n", "GATEWAY_CACHE_TTL_SECONDS": " 7 "}
    settings = load_settings(env, _file(tmp_path, TENANT))
    assert (settings.server.port, settings.cache.ttl_seconds) == (8081, 7)


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
        # endpoints a connection could not be opened to: they passed, and serve failed with a traceback
        (TENANT, {**ENV, "METASTUDIO_ENDPOINT": "http://127.0.0.1:99999"}, "METASTUDIO_ENDPOINT: its port is not"),
        (TENANT, {**ENV, "METASTUDIO_ENDPOINT": "http://[::1"}, "METASTUDIO_ENDPOINT: an unclosed '['"),
        (TENANT, {**ENV, "METASTUDIO_ENDPOINT": "http://proxy:abc"}, "METASTUDIO_ENDPOINT: its port is not"),
        (TENANT, {**ENV, "METASTUDIO_ENDPOINT": "http://u:pw@proxy:8443"}, "METASTUDIO_ENDPOINT: user info"),
        (TENANT + '[server]\npublic_base_url = "https://gw:0x50"\n', ENV, "server.public_base_url: its port is not"),
        (TENANT, {**ENV, "GATEWAY_PORT": "99999"}, "GATEWAY_PORT"),
        (TENANT, {**ENV, "GATEWAY_CACHE_TTL_SECONDS": "soon"}, "GATEWAY_CACHE_TTL_SECONDS"),
        # numbers in forms --port refuses, which pydantic alone reads
        (TENANT, {**ENV, "GATEWAY_PORT": "1_000"}, "GATEWAY_PORT: must be an integer in ASCII digits"),
        (TENANT, {**ENV, "GATEWAY_PORT": "+80"}, "GATEWAY_PORT: must be an integer in ASCII digits"),
        (TENANT, {**ENV, "GATEWAY_PORT": "8080.0"}, "GATEWAY_PORT: must be an integer in ASCII digits"),
        (TENANT, {**ENV, "GATEWAY_CACHE_TTL_SECONDS": "1_0"}, "GATEWAY_CACHE_TTL_SECONDS: must be a number"),
        (TENANT + "[server]\nfast_hit_path = 1\n", ENV, "server.fast_hit_path"),
        # a rate so slow a refusal's Retry-After ran to hundreds of digits
        (TENANT + "[rate_limit]\nrequests_per_second = 1e-300\n", ENV, "rate_limit.requests_per_second: must be 0"),
        (TENANT + "requests_per_second = 1e-6\n", ENV, "tenants[0].requests_per_second: must be 0"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, text: str, env: dict[str, str], named: str) -> None:
    """Each bad value raises ConfigError whose problems name the key."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env, _file(tmp_path, text))
    assert any(named in problem for problem in caught.value.problems), caught.value.problems


def test_every_bad_key_is_reported_at_once(tmp_path: Path) -> None:
    """Bad file keys, an unknown section and bad environment values are all named in one error."""
    text = "[cache]\nttl_seconds = -1\n[covers]\nrefresh_margin_seconds = 'x'\n[colours]\nred = 1\n"
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_PORT": "http"}, _file(tmp_path, text))
    text = str(caught.value)
    for key in ("cache.ttl_seconds", "covers.refresh_margin_seconds", "colours", "tenants", "METASTUDIO_PROJECT_ID"):
        assert key in text
    assert "GATEWAY_PORT" in text


def test_environment_problems_are_reported_when_the_file_is_missing(tmp_path: Path) -> None:
    """A missing file is one problem among the environment's, not the only one."""
    env = {"GATEWAY_CACHE_TTL_SECONDS": "soon", "GATEWAY_PORT": "-1"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env, str(tmp_path / "nope.toml"))
    problems = caught.value.problems
    assert problems[0].startswith(f"config file {tmp_path / 'nope.toml'}: cannot read")
    for name in ("GATEWAY_CACHE_TTL_SECONDS", "GATEWAY_PORT", "METASTUDIO_PROJECT_ID"):
        assert any(problem.startswith(name) for problem in problems), problems
    assert not any(problem.startswith("tenants") for problem in problems), "the file's keys are not guessed at"


def test_environment_problems_are_reported_when_the_file_is_not_toml(tmp_path: Path) -> None:
    """A file that is not TOML is named, and the environment is still checked."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"METASTUDIO_REGION": "mars-1"}, _file(tmp_path, "[cache\n"))
    problems = caught.value.problems
    assert "not valid TOML" in problems[0] and "c.toml" in problems[0]
    assert any(problem.startswith("METASTUDIO_REGION: unknown region") for problem in problems), problems
    assert any(problem.startswith("METASTUDIO_PROJECT_ID") for problem in problems), problems


def test_unknown_sections_and_keys_are_named(tmp_path: Path) -> None:
    """An unknown section, an unknown key in a section and in a tenant are each named."""
    text = TENANT + "colour = 'red'\n[caches]\nttl_seconds = 1\n[cache]\nttl = 1\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(ENV, _file(tmp_path, text))
    assert set(caught.value.problems) == {
        "tenants[0].colour: unknown key",
        "caches: unknown section",
        "cache.ttl: unknown key",
    }


def test_environment_only_keys_are_refused_in_the_file(tmp_path: Path) -> None:
    """``[server] port`` in the file is an error that names the variable that sets it."""
    with pytest.raises(ConfigError, match=r"server\.port: not a config file key \(set GATEWAY_PORT\)"):
        load_settings(ENV, _file(tmp_path, TENANT + "[server]\nport = 9090\n"))


def test_environment_overrides_the_file_and_the_defaults(tmp_path: Path) -> None:
    """GATEWAY_CACHE_TTL_SECONDS beats the file; GATEWAY_HOST and GATEWAY_PORT set the listener."""
    env = {**ENV, "GATEWAY_CACHE_TTL_SECONDS": "2.5", "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": "9090"}
    settings = load_settings(env, _file(tmp_path, "[cache]\nttl_seconds = 30\n" + TENANT))
    assert settings.cache.ttl_seconds == 2.5
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9090)


def test_a_bad_environment_value_is_named_by_its_variable(tmp_path: Path) -> None:
    """An environment value out of bounds is reported under the variable's name, not the key's."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**ENV, "GATEWAY_CACHE_TTL_SECONDS": "0"}, _file(tmp_path, TENANT))
    assert caught.value.problems == ["GATEWAY_CACHE_TTL_SECONDS: must be >= 0.001"]


def test_no_config_file_is_named_as_the_first_problem() -> None:
    """Without --config or GATEWAY_CONFIG the error says no file was given before naming the missing tenants."""
    with pytest.raises(ConfigError) as caught:
        load_settings(ENV)
    assert caught.value.problems == ["no config file given (--config or GATEWAY_CONFIG)", "tenants: is required"]


def test_config_file_is_read_from_gateway_config(tmp_path: Path) -> None:
    """Without a path argument the file named by GATEWAY_CONFIG is read."""
    settings = load_settings({**ENV, "GATEWAY_CONFIG": _file(tmp_path, TENANT + "[cache]\nttl_seconds = 7\n")})
    assert settings.cache.ttl_seconds == 7


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """An editor that writes a UTF-8 byte-order mark first: the file is read as without it (it
    was 'not valid TOML: Invalid statement (at line 1, column 1)')."""
    path = tmp_path / "c.toml"
    path.write_text("\ufeff" + TENANT + "[cache]\nttl_seconds = 7\n", encoding="utf-8")
    assert load_settings(ENV, str(path)).cache.ttl_seconds == 7


def test_list_settings_are_read_as_tuples(tmp_path: Path) -> None:
    """``cors.allowed_origins`` is a list in the file and a tuple in the settings."""
    text = TENANT + '[cors]\nallowed_origins = ["https://app.example.com", "http://localhost:3000"]\n'
    settings = load_settings(ENV, _file(tmp_path, text))
    assert settings.cors.allowed_origins == ("https://app.example.com", "http://localhost:3000")


def test_origins_are_kept_as_browsers_send_them(tmp_path: Path) -> None:
    """An allowed origin with capitals or its scheme's default port is kept as a browser's
    ``Origin`` header says it (lower case, no default port), so the browser's requests match it:
    kept as written, it matched none and the frontend was blocked while check-config passed.
    Another port stays; port 0 and one past 65535 are refused."""
    text = TENANT + (
        '[cors]\nallowed_origins = ["https://App.Example.com", "https://b.example.com:443",'
        ' "http://LocalHost:80", "http://localhost:3000", "https://c.example.com:80"]\n'
    )
    settings = load_settings(ENV, _file(tmp_path, text))
    assert settings.cors.allowed_origins == (
        "https://app.example.com",
        "https://b.example.com",
        "http://localhost",
        "http://localhost:3000",
        "https://c.example.com:80",
    )
    for port in ("0", "65536"):
        with pytest.raises(ConfigError) as caught:
            load_settings(
                ENV, _file(tmp_path, TENANT + f'[cors]\nallowed_origins = ["https://a.example.com:{port}"]\n')
            )
        assert caught.value.problems[0].startswith("cors.allowed_origins[0]")


def test_bad_list_items_are_named_by_index(tmp_path: Path) -> None:
    """Each bad item of a list is named with its index."""
    text = TENANT + '[cors]\nallowed_origins = ["https://ok.example.com", "https://app.example.com/ui", 3]\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(ENV, _file(tmp_path, text))
    assert [p.split(":", 1)[0] for p in caught.value.problems] == ["cors.allowed_origins[1]", "cors.allowed_origins[2]"]


def test_tenant_tables_become_tenants(tmp_path: Path) -> None:
    """``[[tenants]]`` tables become ``Tenant``s: hashes lower-cased, a single hash accepted, own rate limit kept."""
    text = TENANT + f'[[tenants]]\nid = "beta"\napp_user_id = " beta-app "\napi_key_sha256 = "{OTHER.upper()}"\n'
    text += "requests_per_second = 5\nburst = 10\n"
    acme, beta = load_settings(ENV, _file(tmp_path, text)).tenants
    assert acme == Tenant("acme", "acme-web", (HASH,))
    assert beta == Tenant("beta", "beta-app", (OTHER,), requests_per_second=5, burst=10)


def test_a_key_hash_shared_by_two_tenants_is_refused(tmp_path: Path) -> None:
    """One key hash in two tenants would make the caller ambiguous: refused, naming both tenants."""
    text = TENANT + TENANT.replace('"acme"', '"beta"')
    with pytest.raises(ConfigError, match=r"tenants: a key hash is used by two tenants \(tenants\[0\], tenants\[1\]\)"):
        load_settings(ENV, _file(tmp_path, text))


def test_messages_never_quote_the_value(tmp_path: Path) -> None:
    """A bad value (it could be a secret) is described, never repeated."""
    env = {"METASTUDIO_PROJECT_ID": "hunter2 secret", "GATEWAY_PORT": "hunter2"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env, _file(tmp_path, TENANT.replace('"acme-web"', '"hunter2\\u00e9"')))
    assert "hunter2" not in str(caught.value)
    assert "METASTUDIO_PROJECT_ID" in str(caught.value) and "tenants[0].app_user_id" in str(caught.value)


def _below(prop: dict[str, Any]) -> float:
    return prop["minimum"] - (1 if prop["type"] == "integer" else 0.0005)


BOUNDED = [
    (section, key, prop)
    for section, table in config_file_json_schema()["properties"].items()
    if section != "tenants"
    for key, prop in table["properties"].items()
    if "minimum" in prop
]


@pytest.mark.parametrize(("section", "key", "prop"), BOUNDED, ids=[f"{s}.{k}" for s, k, _ in BOUNDED])
def test_bounds_are_the_ones_the_schema_states(tmp_path: Path, section: str, key: str, prop: dict[str, Any]) -> None:
    """Each minimum in the JSON Schema (the Helm chart's) is exactly the loader's: accepted, just below refused."""
    settings = load_settings(ENV, _file(tmp_path, f"{TENANT}[{section}]\n{key} = {prop['minimum']}\n"))
    assert getattr(getattr(settings, section), key) == prop["minimum"]
    with pytest.raises(ConfigError) as caught:
        load_settings(ENV, _file(tmp_path, f"{TENANT}[{section}]\n{key} = {_below(prop)}\n"))
    assert caught.value.problems == [f"{section}.{key}: must be >= {prop['minimum']:g}"]


def test_schema_leaves_out_environment_only_keys() -> None:
    """The file's JSON Schema has no key the file may not set (project, endpoint, host, port)."""
    properties = config_file_json_schema()["properties"]
    assert not {"endpoint", "project_id", "region"} & set(properties["upstream"]["properties"])
    assert not {"host", "port"} & set(properties["server"]["properties"])
    assert properties["server"]["properties"]["fast_hit_path"] == {
        "default": True,
        "description": _declared_description(ServerSettings, "fast_hit_path"),
        "type": "boolean",
    }


def _declared_description(settings: type, name: str) -> str | None:
    """The ``description`` a settings class's field states in its ``Field(...)``."""
    hint = get_type_hints(settings, include_extras=True)[name]
    (field_info,) = (item for item in hint.__metadata__ if isinstance(item, FieldInfo))
    return field_info.description


# A throwaway document shaped like the coming [shared], [[oidc.issuers]] and per-tenant oidc tables:
# the mechanism takes strings, secrets, nested arrays of tables and environment overrides as they are.


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class Issuer:
    name: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    audiences: Annotated[tuple[str, ...], Field(min_length=1)]
    leeway_seconds: Annotated[float, Field(ge=0)] = 30.0


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class Oidc:
    issuers: tuple[Issuer, ...] = ()


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class Shared:
    redis_url: Annotated[str, Field(pattern=r"^((rediss?|unix)://.*)?$"), Env("GATEWAY_REDIS_URL")] = field(
        default="", repr=False
    )
    key_prefix: str = "mgw"


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class TenantOidc:
    issuer: str
    claim_values: Annotated[tuple[str, ...], Field(min_length=1)]


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class FutureTenant:
    id: str
    oidc: tuple[TenantOidc, ...] = ()


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class FutureFile:
    shared: Shared = Shared()
    oidc: Oidc = Oidc()
    tenants: tuple[FutureTenant, ...] = ()


FUTURE = """
[shared]
redis_url = "redis://:pw-in-file@cache:6379/0"

[[oidc.issuers]]
name = "corp"
audiences = ["metastudio-gateway"]

[[oidc.issuers]]
name = "partner"
audiences = ["a", "b"]
leeway_seconds = 5

[[tenants]]
id = "acme"
oidc = [{ issuer = "corp", claim_values = ["acme", "acme-eu"] }]
"""


def test_nested_arrays_of_tables_need_no_new_machinery(tmp_path: Path) -> None:
    """``[[oidc.issuers]]`` and a tenant's ``oidc = [{...}]`` are read into nested frozen tables."""
    document = load(FutureFile, {}, _file(tmp_path, FUTURE))
    assert [(i.name, i.audiences, i.leeway_seconds) for i in document.oidc.issuers] == [
        ("corp", ("metastudio-gateway",), 30.0),
        ("partner", ("a", "b"), 5.0),
    ]
    assert document.tenants[0].oidc == (TenantOidc("corp", ("acme", "acme-eu")),)
    assert document.shared.redis_url == "redis://:pw-in-file@cache:6379/0"


def test_nested_errors_are_named_by_their_path(tmp_path: Path) -> None:
    """Bad keys deep in arrays of tables are named with every index on the way."""
    text = FUTURE.replace('audiences = ["a", "b"]', "audiences = []\ncolour = 1").replace('"acme", "acme-eu"', "")
    with pytest.raises(ConfigError) as caught:
        load(FutureFile, {}, _file(tmp_path, text))
    assert sorted(caught.value.problems) == [
        "oidc.issuers[1].audiences: must have at least 1 item(s)",
        "oidc.issuers[1].colour: unknown key",
        "tenants[0].oidc[0].claim_values: must have at least 1 item(s)",
    ]


def test_a_secret_string_is_overridden_by_the_environment_and_never_shown(tmp_path: Path) -> None:
    """GATEWAY_REDIS_URL beats the file; the URL (it may hold a password) is in no repr and no error."""
    document = load(FutureFile, {"GATEWAY_REDIS_URL": "rediss://:pw-in-env@cache:6380"}, _file(tmp_path, FUTURE))
    assert document.shared.redis_url == "rediss://:pw-in-env@cache:6380"
    assert "pw-in" not in repr(document)
    with pytest.raises(ConfigError) as caught:
        load(FutureFile, {"GATEWAY_REDIS_URL": "http://:pw-in-env@cache"}, _file(tmp_path, FUTURE))
    assert caught.value.problems[0].startswith("GATEWAY_REDIS_URL: must match")
    assert "pw-in" not in str(caught.value)


def test_schema_of_nested_tables_is_self_contained() -> None:
    """The JSON Schema of nested arrays of tables is inline (no $ref), with required keys and bounds."""
    schema = json_schema(FutureFile)
    issuer = schema["properties"]["oidc"]["properties"]["issuers"]["items"]
    assert issuer["required"] == ["name", "audiences"]
    assert issuer["properties"]["leeway_seconds"] == {"default": 30.0, "minimum": 0, "type": "number"}
    assert "$ref" not in json.dumps(schema)
