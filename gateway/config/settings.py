"""Settings, loaded once at start-up from the environment and the TOML config file.

Validation collects every problem and names the key (``cache.ttl_seconds``,
``tenants[1].api_key_sha256``, ``METASTUDIO_PROJECT_ID``...) so the process refuses to
start with one message instead of limping. Credentials are not here: see ``credentials``.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from gateway.errors import ConfigError
from gateway.tenant import Tenant

REGION_ENDPOINTS = {
    "cn-north-4": "https://metastudio.cn-north-4.myhuaweicloud.com",
    "cn-east-3": "https://metastudio.cn-east-3.myhuaweicloud.com",
}
_TENANT_ID = re.compile(r"^[a-z0-9-]{1,64}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class CacheSettings:
    ttl_seconds: float = 60.0
    max_bytes: int = 268_435_456
    stale_if_error_seconds: float = 3600.0
    stale_while_revalidate_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class CoverSettings:
    refresh_margin_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    endpoint: str
    project_id: str
    region: str = "cn-north-4"
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 8.0
    retry_budget_ratio: float = 0.2
    retry_after_cap_seconds: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024


DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a server in a container listens on all interfaces


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = 8080
    shutdown_grace_seconds: float = 10.0
    drain_seconds: float = 1.0
    fast_hit_path: bool = True
    """Answer plain cache hits from the connection (``gateway.fastpath.hits``); off sends every request
    through the aiohttp handler chain. The same bytes either way."""


@dataclass(frozen=True, slots=True)
class CircuitBreakerSettings:
    window_seconds: float = 30.0
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_seconds: float = 15.0


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """The default limit for tenants that set none; 0 requests per second means unlimited."""

    requests_per_second: float = 0.0
    burst: float = 100.0


@dataclass(frozen=True, slots=True)
class CorsSettings:
    allowed_origins: tuple[str, ...] = ()
    max_age_seconds: int = 600


@dataclass(frozen=True, slots=True)
class Settings:
    upstream: UpstreamSettings
    tenants: tuple[Tenant, ...]
    cache: CacheSettings = CacheSettings()
    covers: CoverSettings = CoverSettings()
    server: ServerSettings = ServerSettings()
    cors: CorsSettings = CorsSettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()


_S = TypeVar("_S", bound="DataclassInstance")

# (section, key) -> (minimum, must be an integer). Every number the config file may set.
_NUMBERS: dict[tuple[str, str], tuple[float, bool]] = {
    ("cache", "ttl_seconds"): (0.001, False),
    ("cache", "max_bytes"): (1024, True),
    ("cache", "stale_if_error_seconds"): (0, False),
    ("cache", "stale_while_revalidate_seconds"): (0, False),
    ("covers", "refresh_margin_seconds"): (0, False),
    ("upstream", "timeout_seconds"): (0.001, False),
    ("upstream", "max_attempts"): (1, True),
    ("upstream", "connect_timeout_seconds"): (0.001, False),
    ("upstream", "read_timeout_seconds"): (0.001, False),
    ("upstream", "retry_budget_ratio"): (0, False),
    ("upstream", "retry_after_cap_seconds"): (0, False),
    ("upstream", "max_body_bytes"): (1024, True),
    ("server", "shutdown_grace_seconds"): (0, False),
    ("server", "drain_seconds"): (0, False),
    ("cors", "max_age_seconds"): (0, True),
    ("circuit_breaker", "window_seconds"): (1, False),
    ("circuit_breaker", "min_calls"): (1, True),
    ("circuit_breaker", "failure_ratio"): (0.01, False),
    ("circuit_breaker", "open_seconds"): (0.001, False),
    ("rate_limit", "requests_per_second"): (0, False),
    ("rate_limit", "burst"): (1, False),
}
_LISTS = {("cors", "allowed_origins")}
_BOOLEANS = {("server", "fast_hit_path")}
_SECTIONS = {section for section, _ in _NUMBERS}
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_TENANT_KEYS = {"id", "app_user_id", "api_key_sha256", "requests_per_second", "burst"}


def _number(problems: list[str], where: str, raw: Any, minimum: float, integer: bool) -> float | None:
    kind = int if integer else (int, float)
    if isinstance(raw, bool) or not isinstance(raw, kind) or raw < minimum:
        problems.append(f"{where}: must be {'an integer' if integer else 'a number'} >= {minimum:g}, got {raw!r}")
        return None
    return float(raw)


def _read_file(path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot read: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"config file {path}: not valid TOML: {exc}"]) from exc


def _numbers(
    problems: list[str], data: Mapping[str, Any], env: Mapping[str, str]
) -> dict[tuple[str, str], float | bool]:
    """The numbers and flags the file (and GATEWAY_CACHE_TTL_SECONDS) set, checked; unknown keys reported."""
    for name in sorted(set(data) - _SECTIONS - {"tenants"}):
        problems.append(f"{name}: unknown section")
    found: dict[tuple[str, str], float | bool] = {}
    for section in sorted(_SECTIONS):
        table = data.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"{section}: must be a table")
            continue
        for key, raw in table.items():
            if (section, key) in _LISTS:
                continue
            if (section, key) in _BOOLEANS:
                if isinstance(raw, bool):
                    found[section, key] = raw
                else:
                    problems.append(f"{section}.{key}: must be true or false, got {raw!r}")
                continue
            if (section, key) not in _NUMBERS:
                problems.append(f"{section}.{key}: unknown key")
            elif (value := _number(problems, f"{section}.{key}", raw, *_NUMBERS[section, key])) is not None:
                found[section, key] = value
    ttl = env.get("GATEWAY_CACHE_TTL_SECONDS")
    if ttl is not None:
        try:
            value = _number(problems, "GATEWAY_CACHE_TTL_SECONDS", float(ttl), *_NUMBERS["cache", "ttl_seconds"])
        except ValueError:
            problems.append(f"GATEWAY_CACHE_TTL_SECONDS: must be a number, got {ttl!r}")
        else:
            if value is not None:
                found["cache", "ttl_seconds"] = value
    return found


def _origins(problems: list[str], data: Mapping[str, Any]) -> tuple[str, ...]:
    table = data.get("cors", {})
    raw = table.get("allowed_origins", []) if isinstance(table, dict) else []
    if not isinstance(raw, list) or not all(isinstance(o, str) and _ORIGIN.match(o) for o in raw):
        problems.append('cors.allowed_origins: must be a list of origins like "https://app.example.com" (no path)')
        return ()
    return tuple(raw)


def _tenant(problems: list[str], index: int, raw: Any) -> Tenant | None:
    where = f"tenants[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return None
    for unknown in sorted(set(raw) - _TENANT_KEYS):
        problems.append(f"{where}.{unknown}: unknown key")
    tenant_id = raw.get("id")
    app_user_id = raw.get("app_user_id")
    hashes = raw.get("api_key_sha256")
    ok = True
    if not isinstance(tenant_id, str) or not _TENANT_ID.match(tenant_id):
        problems.append(f"{where}.id: must be 1-64 characters of a-z, 0-9 and '-'")
        ok = False
    if (
        not isinstance(app_user_id, str)
        or not app_user_id.strip()
        or not app_user_id.isascii()
        or not app_user_id.isprintable()
        or len(app_user_id) > 256
    ):
        problems.append(f"{where}.app_user_id: must be non-empty printable ASCII (upstream rule)")
        ok = False
    if isinstance(hashes, str):
        hashes = [hashes]
    if (
        not isinstance(hashes, list)
        or not hashes
        or not all(isinstance(h, str) and _SHA256_HEX.match(h.lower()) for h in hashes)
    ):
        problems.append(f"{where}.api_key_sha256: must be one or more 64-hex sha256 digests")
        ok = False
    if not ok:
        return None
    assert isinstance(tenant_id, str)
    assert isinstance(app_user_id, str)
    assert isinstance(hashes, list)
    rate = raw.get("requests_per_second")
    burst = raw.get("burst")
    return Tenant(
        tenant_id,
        app_user_id.strip(),
        tuple(h.lower() for h in hashes),
        requests_per_second=None if rate is None else _number(problems, f"{where}.requests_per_second", rate, 0, False),
        burst=None if burst is None else _number(problems, f"{where}.burst", burst, 1, False),
    )


def _tenants(problems: list[str], raw: Any) -> tuple[Tenant, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append("tenants: at least one [[tenants]] entry is required")
        return ()
    tenants = [t for i, item in enumerate(raw) if (t := _tenant(problems, i, item)) is not None]
    seen_ids: set[str] = set()
    seen_keys: set[str] = set()
    for tenant in tenants:
        if tenant.id in seen_ids:
            problems.append(f"tenants: id '{tenant.id}' appears twice")
        seen_ids.add(tenant.id)
        for digest in tenant.api_key_sha256:
            if digest in seen_keys:
                problems.append(f"tenants[{tenant.id}].api_key_sha256: key hash used by two tenants")
            seen_keys.add(digest)
    return tuple(tenants)


def _upstream_location(problems: list[str], env: Mapping[str, str]) -> tuple[str, str, str]:
    project_id = env.get("METASTUDIO_PROJECT_ID") or env.get("HUAWEICLOUD_SDK_PROJECT_ID") or ""
    if not project_id:
        problems.append("METASTUDIO_PROJECT_ID (or HUAWEICLOUD_SDK_PROJECT_ID): is not set")
    elif not _PROJECT_ID.match(project_id):
        problems.append("METASTUDIO_PROJECT_ID: must be letters, digits, '-' or '_'")
    region = env.get("METASTUDIO_REGION") or "cn-north-4"
    endpoint = env.get("METASTUDIO_ENDPOINT", "").rstrip("/")
    if endpoint:
        if not re.match(r"^https?://[^/?#\s]+$", endpoint):
            problems.append("METASTUDIO_ENDPOINT: must be http(s)://host[:port] with no path")
    elif region in REGION_ENDPOINTS:
        endpoint = REGION_ENDPOINTS[region]
    else:
        known = ", ".join(REGION_ENDPOINTS)
        problems.append(f"METASTUDIO_REGION: unknown region '{region}' (known: {known}; or set METASTUDIO_ENDPOINT)")
    return endpoint, project_id, region


def load_settings(env: Mapping[str, str], config_path: str | None = None) -> Settings:
    """Build ``Settings`` from the environment and the config file (``GATEWAY_CONFIG`` by default).

    Raises ``ConfigError`` listing every bad key.
    """
    path = config_path or env.get("GATEWAY_CONFIG")
    data = _read_file(path) if path else {}
    problems: list[str] = []
    numbers = _numbers(problems, data, env)
    tenants = _tenants(problems, data.get("tenants"))
    origins = _origins(problems, data)
    endpoint, project_id, region = _upstream_location(problems, env)
    port_text = env.get("GATEWAY_PORT") or "8080"
    if not (port_text.isdigit() and 0 < int(port_text) < 65536):
        problems.append(f"GATEWAY_PORT: must be a port number 1-65535, got {port_text!r}")
    if problems:
        raise ConfigError(problems)

    def section(name: str, default: _S) -> _S:
        values = {key: value for (sec, key), value in numbers.items() if sec == name}
        integers = {key for (sec, key), (_, integer) in _NUMBERS.items() if sec == name and integer}
        typed = {key: int(value) if key in integers else value for key, value in values.items()}
        return dataclasses.replace(default, **typed)

    return Settings(
        upstream=section("upstream", UpstreamSettings(endpoint=endpoint, project_id=project_id, region=region)),
        tenants=tenants,
        cache=section("cache", CacheSettings()),
        covers=section("covers", CoverSettings()),
        server=section(
            "server",
            ServerSettings(host=env.get("GATEWAY_HOST") or ServerSettings().host, port=int(port_text)),
        ),
        cors=section("cors", CorsSettings(allowed_origins=origins)),
        circuit_breaker=section("circuit_breaker", CircuitBreakerSettings()),
        rate_limit=section("rate_limit", RateLimitSettings()),
    )
