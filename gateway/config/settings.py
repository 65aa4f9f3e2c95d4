"""The gateway's settings: every key of the config file and of the environment, stated once.

Each table below is both the schema of a config file section (type, default, bounds, environment
override and doc of each key; see ``gateway.config.schema``) and the frozen object the gateway
reads at run time. ``load_settings`` reads them at start-up and refuses with one ``ConfigError``
naming every bad key (``cache.ttl_seconds``, ``tenants[1].api_key_sha256``, ``METASTUDIO_PROJECT_ID``...).
Constructing a table directly (tests, the demo) takes keywords and does not validate.
Credentials are not here: see ``gateway.credentials``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, with_config
from redis.asyncio.connection import parse_url as parse_redis_url

from gateway.config.schema import TABLE, Env, json_schema, load
from gateway.config.secret_files import UnusableValue, read_secret_file
from gateway.errors import ConfigError
from gateway.outbound import Proxies, proxies_from_environment
from gateway.tenant import Tenant

REGION_ENDPOINTS = {
    "cn-north-4": "https://metastudio.cn-north-4.myhuaweicloud.com",
    "cn-east-3": "https://metastudio.cn-east-3.myhuaweicloud.com",
}
REDIS_URL_VARIABLE = "GATEWAY_REDIS_URL"
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a server in a container listens on all interfaces


MIN_TENANT_BYTES = 65536
"""The smallest tenant bound: an entry larger than its tenant's bound is not kept at all."""


def _within_max_bytes(value: int, info: ValidationInfo) -> int:
    if value > info.data.get("max_bytes", value):
        raise ValueError("must be at most max_bytes (0: no bound but max_bytes)")
    if 0 < value < MIN_TENANT_BYTES:
        raise ValueError(f"must be 0 (no bound) or at least {MIN_TENANT_BYTES}: a larger entry would never be kept")
    return value


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class CacheSettings:
    ttl_seconds: Annotated[
        float, Field(ge=0.001, description="Seconds a list response stays fresh."), Env("GATEWAY_CACHE_TTL_SECONDS")
    ] = 60.0
    max_bytes: Annotated[int, Field(ge=1024, description="Bound on the bytes the cache holds.")] = 268_435_456
    max_bytes_per_tenant: Annotated[
        int,
        Field(
            ge=0,
            description="Bound on the bytes one tenant's entries hold (0: none but max_bytes; else at least 65536, a"
            " page of 100 jobs being about 80 KB); past it the tenant's own oldest entries go first, so one tenant's"
            " distinct queries cannot evict every other tenant's.",
        ),
        AfterValidator(_within_max_bytes),
    ] = 0
    stale_if_error_seconds: Annotated[
        float, Field(ge=0, description="How long past expiry a list may be served while the upstream fails.")
    ] = 3600.0
    stale_while_revalidate_seconds: Annotated[
        float, Field(ge=0, description="How long past expiry a list is answered at once (STALE) while it reloads.")
    ] = 10.0


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class CoverSettings:
    refresh_margin_seconds: Annotated[
        float, Field(ge=0, description="A cover URL is refreshed this long before it expires, never served within it.")
    ] = 3600.0
    image_url_ttl_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=7 * 86400,
            description="How long a cover_image_url (a signed gateway link an <img> loads) works; its expiry is"
            " rounded up to a tenth of this, so it lives at most 1.1 times as long.",
        ),
    ] = 900


def _without_trailing_slash(value: Any) -> Any:
    return value.rstrip("/") if isinstance(value, str) else value


def _reachable(url: str) -> str:
    """A URL whose host and port a connection could be opened to (``urlsplit`` reads them as a
    client will: a port that is not a number from 0 to 65535, or an unclosed ``[``, failed
    ``serve`` at start-up after ``check-config`` had passed it), with no user:password in it
    (nothing sends it, and messages would show it)."""
    if url:
        with _said_without_the_url():
            parts = urlsplit(url)
            parts.port  # noqa: B018 - read for its ValueError
        if not parts.hostname:
            raise ValueError("it names no host")
        if "@" in parts.netloc:
            raise ValueError("user info (user:password@) is not used here: leave it out")
    return url


@contextlib.contextmanager
def _said_without_the_url() -> Iterator[None]:
    """urllib's and redis-py's complaints about a URL, in words that quote none of it: a password
    holding an unencoded '/', '?' or '#' ends the host part early, and urllib then quotes the
    password as the port it could not read."""
    try:
        yield
    except ValueError as exc:
        reason = str(exc)
        if "IPv6" in reason:
            raise ValueError("an unclosed '[' (an IPv6 address is written [addr])") from None
        if "Port" in reason or "port" in reason:
            raise ValueError(
                "its port is not a number from 0 to 65535 (a '/', '?' or '#' in a password must be percent-encoded)"
            ) from None
        if reason.startswith("Invalid value for '"):  # redis-py: names the query parameter only
            raise ValueError(reason) from None
        raise ValueError("not a URL this client can read") from None


_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"  # underscores: what a resolver takes
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def listen_address(host: str) -> str:
    """``host`` if it is an IP address or a host name the server could listen on; else
    ``ValueError`` (a space or an empty value failed only at the bind, naming nothing)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not _HOST_NAME.fullmatch(host):
            raise ValueError("not an IP address or a host name") from None
    return host


def _known_region_unless_endpoint(region: str, info: ValidationInfo) -> str:
    if region not in REGION_ENDPOINTS and not info.data.get("endpoint", "(invalid)"):
        known = ", ".join(REGION_ENDPOINTS)
        raise ValueError(f"unknown region '{region}' (known: {known}; or set METASTUDIO_ENDPOINT)")
    return region


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    endpoint: Annotated[
        str,
        Field(
            pattern=r"^(https?://[^/?#\s]+)?$",
            description="Base URL http(s)://host[:port], no path; empty: the region's endpoint.",
        ),
        BeforeValidator(_without_trailing_slash),
        AfterValidator(_reachable),
        Env("METASTUDIO_ENDPOINT", file=False),
    ] = ""
    project_id: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_-]{1,64}$",
            validate_default=True,  # required: the empty default fails
            description="Project id in the upstream path and X-Project-Id: letters, digits, '-', '_'.",
        ),
        Env("METASTUDIO_PROJECT_ID", "HUAWEICLOUD_SDK_PROJECT_ID", file=False),
    ] = ""
    region: Annotated[
        str,
        Field(pattern=r"^[a-z0-9-]+$", description="Region; gives the endpoint unless METASTUDIO_ENDPOINT is set."),
        AfterValidator(_known_region_unless_endpoint),
        Env("METASTUDIO_REGION", file=False),
    ] = "cn-north-4"
    timeout_seconds: Annotated[
        float, Field(ge=0.001, description="Deadline for one request's upstream work, retries included.")
    ] = 10.0
    max_attempts: Annotated[
        int,
        Field(ge=1, description="Attempts of an idempotent GET (retries on connection errors, timeouts, 5xx, 429)."),
    ] = 3
    connect_timeout_seconds: Annotated[float, Field(ge=0.001, description="Connect timeout of one attempt.")] = 3.0
    read_timeout_seconds: Annotated[
        float, Field(ge=0.001, description="Longest silence of one attempt while reading the answer.")
    ] = 8.0
    retry_budget_ratio: Annotated[
        float, Field(ge=0, description="Retries may add at most this share of first attempts (+3 per 10 s).")
    ] = 0.2
    retry_after_cap_seconds: Annotated[
        float, Field(ge=0, description="An upstream Retry-After is honoured up to this.")
    ] = 5.0
    max_body_bytes: Annotated[int, Field(ge=1024, description="Larger upstream bodies are refused (502).")] = (
        16 * 1024 * 1024
    )

    def __post_init__(self) -> None:
        if not self.endpoint:  # the documented default: the region's endpoint
            object.__setattr__(self, "endpoint", REGION_ENDPOINTS.get(self.region, ""))


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: Annotated[
        str,
        Field(min_length=1, description="Listen address: an IP address or a host name."),
        AfterValidator(listen_address),
        Env("GATEWAY_HOST", file=False),
    ] = DEFAULT_HOST
    port: Annotated[
        int,
        Field(ge=0, le=65535, description="Listen port; 0 picks a free one (the start-up log line names it)."),
        Env("GATEWAY_PORT", file=False),
    ] = 8080
    shutdown_grace_seconds: Annotated[
        float, Field(ge=0, description="On SIGTERM, after the drain, in-flight requests get this long.")
    ] = 10.0
    drain_seconds: Annotated[
        float, Field(ge=0, description="On SIGTERM: /readyz 503 at once, keep accepting this long, then stop.")
    ] = 1.0
    max_connections: Annotated[
        int,
        Field(
            ge=0,
            description="Connections open at once (0: no cap); past it the tenth idle longest are closed to make"
            " room, and with none idle a new one is closed at once (connections_turned_away_total). Each open"
            " connection can hold up to about 75 KiB (a request head not ended yet), so this bounds that memory.",
        ),
    ] = 1024
    keepalive_seconds: Annotated[
        float,
        Field(
            ge=1,
            le=3600,
            description="A connection with no request under way (idle, or only part of a head received) is closed"
            " this long after it opened or its last answer; keep it above the idle timeout of a load balancer in"
            " front.",
        ),
    ] = 75.0
    public_base_url: Annotated[
        str,
        Field(
            pattern=r"^(https?://[^/?#\s]+(/[^?#\s]*)?)?$",
            description="The gateway's URL as browsers reach it (scheme://host[:port][/path]): makes cover_image_url"
            " absolute; empty: a root-relative path.",
        ),
        BeforeValidator(_without_trailing_slash),
        AfterValidator(_reachable),
    ] = ""
    fast_hit_path: Annotated[
        bool,
        Field(
            description="Answer list and job requests from the connection (gateway.fastpath.hits): plain cache"
            " hits at once, other answers (misses, stale, errors) once the service has them; false sends every"
            " request through the aiohttp handler chain. The same status, headers and body either way."
        ),
    ] = True


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class CircuitBreakerSettings:
    window_seconds: Annotated[
        float, Field(ge=1, description="The error ratio is measured over this sliding window.")
    ] = 30.0
    min_calls: Annotated[int, Field(ge=1, description="...once at least this many calls were made in it.")] = 10
    failure_ratio: Annotated[float, Field(ge=0.01, description="Open at this ratio of failed calls.")] = 0.5
    open_seconds: Annotated[
        float, Field(ge=0.001, description="Then refuse at once for this long, then probe with one call.")
    ] = 15.0


MIN_RATE = 1 / 86400
"""The slowest rate limit: one request a day. Below it a refusal's Retry-After ran to hundreds of
digits (1e-300 a second: a 300-digit header)."""


def _unlimited_or_daily(rate: float | None) -> float | None:
    if rate is not None and 0 < rate < MIN_RATE:
        raise ValueError("must be 0 (unlimited) or at least one request a day (1/86400)")
    return rate


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """The default limit for tenants that set none; 0 requests per second means unlimited."""

    requests_per_second: Annotated[
        float,
        Field(ge=0, description="Token bucket rate per tenant (0: unlimited; else at least one a day)."),
        AfterValidator(_unlimited_or_daily),
    ] = 0.0
    burst: Annotated[float, Field(ge=1, description="Token bucket size per tenant.")] = 100.0


def _usable_redis_url(url: str) -> str:
    """A URL redis-py can connect with, read as it will read it (its port, its query
    parameters); its messages name the part, never the password."""
    if url:
        with _said_without_the_url():
            parse_redis_url(url)
    return url


def _cluster_over_tcp(cluster: bool, info: ValidationInfo) -> bool:
    if cluster and str(info.data.get("redis_url", "")).startswith("unix://"):
        raise ValueError("a Redis Cluster is reached over TCP (redis:// or rediss://), not a unix socket")
    return cluster


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class SharedSettings:
    """The shared tier: replicas that name one Redis share cache, single-flight, backoff and rate limits."""

    redis_url: Annotated[
        str,
        Field(
            pattern=r"^((redis|rediss|unix)://.+)?$",
            description="redis://, rediss:// (TLS) or unix:// URL of the Redis every replica shares (may hold"
            " a password); empty: this replica on its own.",
        ),
        AfterValidator(_usable_redis_url),
        Env(REDIS_URL_VARIABLE),
    ] = dataclasses.field(default="", repr=False)
    cluster: Annotated[
        bool,
        Field(description="redis_url names one node of a Redis Cluster (e.g. a Huawei DCS cluster instance)."),
        AfterValidator(_cluster_over_tcp),
    ] = False
    key_prefix: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="Every Redis key starts with it (several gateways may share one Redis).",
        ),
    ] = "mgw"
    operation_timeout_seconds: Annotated[
        float,
        Field(
            ge=0.001,
            le=5,
            description="Bound on one Redis call; past it this replica acts on its own for now.",
        ),
    ] = 0.1
    expected_replicas: Annotated[
        int,
        Field(
            ge=1,
            le=10_000,
            description="The replicas counted until this one first reaches Redis (then the heartbeats count them):"
            " with Redis down from start-up, each replica limits each tenant to its rate divided by this.",
        ),
    ] = 1


def _asymmetric(value: Any) -> Any:
    if isinstance(value, str) and (value.upper().startswith("HS") or value.lower() == "none"):
        raise ValueError("HS* (symmetric) and 'none' are refused: only asymmetric algorithms (RS*, PS*, ES*, EdDSA)")
    return value


JwtAlgorithm = Annotated[
    Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
    BeforeValidator(_asymmetric),
]
IssuerName = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,64}$")]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s#]*$", max_length=2048), AfterValidator(_reachable)]


def _authenticated_unless_loopback(url: str) -> str:
    """An ``https`` URL, or ``http`` to this host only: whoever answers a key set's fetch chooses
    the keys every tenant's tokens are checked with, so over plain HTTP anyone on the path could
    sign tokens for any tenant (RFC 8725 3.7: keys from a source the server trusts)."""
    if url.startswith("https://"):
        return url
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError("the key set must be fetched over https (plain http only to a loopback address)")
    return url


KeySetUrl = Annotated[HttpUrl, AfterValidator(_authenticated_unless_loopback)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class OidcIssuer:
    """One ``[[oidc.issuers]]`` table: an identity provider whose end-user JWTs name tenants."""

    name: Annotated[IssuerName, Field(description="Issuer name: a-z, 0-9 and '-', unique; tenants and metrics use it.")]
    issuer: Annotated[HttpUrl, Field(description="The tokens' iss, compared exactly (no prefix, no suffix).")]
    jwks_uri: Annotated[
        KeySetUrl,
        Field(
            description="URL of the issuer's JSON Web Key Set (its public signing keys): https, or http to a"
            " loopback address only; redirects are not followed."
        ),
    ]
    audiences: Annotated[
        tuple[NonEmpty, ...],
        Field(min_length=1, description="A token's aud must hold one of these (aud is required)."),
        BeforeValidator(_one_or_more),
    ]
    algorithms: Annotated[
        tuple[JwtAlgorithm, ...],
        Field(min_length=1, description="Signature algorithms accepted: asymmetric only (HS* and none are refused)."),
        BeforeValidator(_one_or_more),
    ] = ("RS256", "ES256")
    tenant_claim: Annotated[
        NonEmpty, Field(description="The claim whose string value picks the tenant (see tenants' oidc).")
    ] = "tenant"
    leeway_seconds: Annotated[
        float, Field(ge=0, le=300, description="Clock skew allowed when checking exp, nbf and iat.")
    ] = 30.0
    jwks_refresh_seconds: Annotated[
        float, Field(ge=1, description="The keys are re-read in the background this often.")
    ] = 300.0
    jwks_refetch_cooldown_seconds: Annotated[
        float,
        Field(ge=1, description="An unknown kid (or a failed read) triggers at most one key fetch per this window."),
    ] = 30.0
    jwks_stale_if_error_seconds: Annotated[
        float,
        Field(ge=0, description="While the issuer fails, its last good keys are used this long past a due refresh."),
    ] = 86400.0


class _FirstSeen:
    """Where each value was first met, to name both places when another one repeats it."""

    def __init__(self) -> None:
        self._first: dict[Hashable, int] = {}

    def earlier(self, value: Hashable, index: int) -> int | None:
        """The index that had ``value`` before ``index`` (``None`` the first time, or again at ``index``)."""
        first = self._first.setdefault(value, index)
        return None if first == index else first


def _refuse(problems: list[str]) -> None:
    """A validator's refusal: every problem found, in one ``ValueError``."""
    if problems:
        raise ValueError("; ".join(problems))


def _distinct_issuers(issuers: tuple[OidcIssuer, ...]) -> tuple[OidcIssuer, ...]:
    """No two issuers share a name or an iss (a token must name one issuer)."""
    problems: list[str] = []
    for attribute in ("name", "issuer"):
        seen = _FirstSeen()
        for index, issuer in enumerate(issuers):
            if (first := seen.earlier(getattr(issuer, attribute), index)) is not None:
                problems.append(f"{attribute} appears twice (issuers[{first}], issuers[{index}])")
    _refuse(problems)
    return issuers


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class OidcSettings:
    """End-user JWTs: the identity providers whose tokens are accepted beside API keys."""

    issuers: Annotated[
        tuple[OidcIssuer, ...],
        Field(description="[[oidc.issuers]]: each trusted identity provider."),
        AfterValidator(_distinct_issuers),
    ] = ()


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class TenantOidc:
    """One item of a tenant's ``oidc``: the tokens of ``issuer`` whose tenant claim is one of ``claim_values``."""

    issuer: Annotated[IssuerName, Field(description="The name of an [[oidc.issuers]] table.")]
    claim_values: Annotated[
        tuple[NonEmpty, ...],
        Field(min_length=1, description="Values of that issuer's tenant claim that map to this tenant."),
        BeforeValidator(_one_or_more),
    ]


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _as_browsers_send(origin: str) -> str:
    """An origin as a browser's ``Origin`` header says it: scheme and host in lower case, no
    default port (``https://App.example.com:443`` matched no browser's request)."""
    scheme, _, rest = origin.lower().partition("://")
    port = urlsplit(origin).port  # ValueError: a port past 65535
    if port == 0:
        raise ValueError("port 0 is no origin's")
    return f"{scheme}://{rest.removesuffix(_DEFAULT_PORTS[scheme])}"


Origin = Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"), AfterValidator(_as_browsers_send)]


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class CorsSettings:
    allowed_origins: Annotated[
        tuple[Origin, ...],
        Field(description="Browser origins allowed to call the API (scheme://host[:port], no path)."),
    ] = ()
    max_age_seconds: Annotated[int, Field(ge=0, description="How long a browser may cache a preflight answer.")] = 600


def _one_or_more(value: Any) -> Any:
    # A single string is read as a list of one. (Before-validators hand strict validation Python
    # values, so the array becomes the tuple it must be.)
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


KeyHash = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class TenantTable:
    """One ``[[tenants]]`` table: a caller of the gateway (becomes a ``gateway.tenant.Tenant``)."""

    id: Annotated[
        str, Field(pattern=r"^[a-z0-9-]{1,64}$", description="Tenant id: a-z, 0-9 and '-', unique, a metrics label.")
    ]
    app_user_id: Annotated[
        str,
        Field(
            pattern=r"^[ -~]*[!-~][ -~]*$",
            max_length=256,
            description="Sent upstream as X-App-UserId: printable ASCII, not blank (an upstream rule).",
        ),
        AfterValidator(str.strip),
    ]
    api_key_sha256: Annotated[
        tuple[KeyHash, ...],
        Field(
            description=(
                "SHA-256 (hex) of each accepted API key (see hash-key), two during a rotation;"
                " may be empty for a tenant that only end-user JWTs (oidc) name."
            ),
        ),
        BeforeValidator(_one_or_more),
    ] = ()
    requests_per_second: Annotated[
        float | None,
        Field(
            ge=0,
            description="This tenant's rate limit (0: unlimited; else at least one a day); absent: [rate_limit]'s.",
        ),
        AfterValidator(_unlimited_or_daily),
    ] = None
    burst: Annotated[float | None, Field(ge=1, description="This tenant's burst; absent: [rate_limit]'s.")] = None
    oidc: Annotated[
        tuple[TenantOidc, ...],
        Field(description="End-user JWTs that act as this tenant: {issuer, claim_values} per issuer."),
    ] = ()

    def tenant(self) -> Tenant:
        return Tenant(
            self.id,
            self.app_user_id,
            self.api_key_sha256,
            self.requests_per_second,
            self.burst,
            tuple((item.issuer, item.claim_values) for item in self.oidc),
        )


def _distinct(tenants: tuple[TenantTable, ...]) -> tuple[TenantTable, ...]:
    """Each tenant has a way in, and no two share an id or a key hash (a key must name one tenant)."""
    problems: list[str] = []
    ids, keys = _FirstSeen(), _FirstSeen()
    for index, tenant in enumerate(tenants):
        if not tenant.api_key_sha256 and not tenant.oidc:
            problems.append(f"tenants[{index}] has neither api_key_sha256 nor oidc: nothing could authenticate as it")
        if (first := ids.earlier(tenant.id, index)) is not None:
            problems.append(f"id '{tenant.id}' appears twice (tenants[{first}], tenants[{index}])")
        for digest in tenant.api_key_sha256:
            if (first := keys.earlier(digest, index)) is not None:
                problems.append(f"a key hash is used by two tenants (tenants[{first}], tenants[{index}])")
    _refuse(problems)
    return tenants


def _tenants_name_known_issuers(oidc: OidcSettings, info: ValidationInfo) -> OidcSettings:
    """Each tenant's oidc names a configured issuer, and an (issuer, claim value) pair names one tenant."""
    problems: list[str] = []
    names = {issuer.name for issuer in oidc.issuers}
    owners = _FirstSeen()
    for index, tenant in enumerate(info.data.get("tenants", ())):
        for item_index, item in enumerate(tenant.oidc):
            if item.issuer not in names:
                problems.append(f"tenants[{index}].oidc[{item_index}].issuer names no [[oidc.issuers]] table")
            for value in item.claim_values:
                if (owner := owners.earlier((item.issuer, value), index)) is not None:
                    problems.append(
                        f"tenants[{index}].oidc[{item_index}]: a claim value of issuer '{item.issuer}' already"
                        f" names tenants[{owner}]"
                    )
    _refuse(problems)
    return oidc


@with_config(TABLE)
@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The config file (TOML) with the environment's keys: what ``load_settings`` validates."""

    tenants: Annotated[
        tuple[TenantTable, ...],
        Field(min_length=1, description="[[tenants]] of the config file: who may call the gateway."),
        AfterValidator(_distinct),
    ]
    cache: CacheSettings = CacheSettings()
    covers: CoverSettings = CoverSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    server: ServerSettings = ServerSettings()
    cors: CorsSettings = CorsSettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    shared: SharedSettings = SharedSettings()
    oidc: Annotated[OidcSettings, AfterValidator(_tenants_name_known_issuers)] = OidcSettings()


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway reads at run time: the config file's tables, tenants as ``Tenant``s."""

    upstream: UpstreamSettings
    tenants: tuple[Tenant, ...]
    cache: CacheSettings = CacheSettings()
    covers: CoverSettings = CoverSettings()
    server: ServerSettings = ServerSettings()
    cors: CorsSettings = CorsSettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    shared: SharedSettings = SharedSettings()
    oidc: OidcSettings = OidcSettings()
    proxies: Proxies = dataclasses.field(default_factory=Proxies)
    """The forward proxies of outbound HTTP, from ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``
    and ``NO_PROXY`` (``gateway.outbound``)."""


def _with_secret_files(env: Mapping[str, str]) -> tuple[Mapping[str, str], list[str]]:
    """``GATEWAY_REDIS_URL_FILE`` (a mounted Secret) read into ``GATEWAY_REDIS_URL``: the
    environment to validate, and the problems met (both set; the file missing or unreadable),
    which ``load_settings`` reports together with every other bad key."""
    file_variable = REDIS_URL_VARIABLE + "_FILE"
    path = env.get(file_variable)
    if not path:
        return env, []
    if env.get(REDIS_URL_VARIABLE):
        return env, [f"{REDIS_URL_VARIABLE} and {file_variable} are both set: set one"]
    try:
        value = read_secret_file(file_variable, path)
    except UnusableValue as exc:
        return env, [str(exc)]
    if not value:  # an empty Secret must not quietly leave this replica on its own
        return env, [f"{file_variable}: {path} is empty"]
    return {**env, REDIS_URL_VARIABLE: value}, []


def load_settings(env: Mapping[str, str], config_path: str | None = None) -> Settings:
    """Build ``Settings`` from the environment and the config file (``GATEWAY_CONFIG`` by default).

    Raises ``ConfigError`` listing every bad key, the environment's included even when the file
    is missing or not TOML.
    """
    path = config_path or env.get("GATEWAY_CONFIG")
    proxies, problems = proxies_from_environment(env)
    env, secret_file_problems = _with_secret_files(env)
    problems += secret_file_problems
    try:
        file = load(ConfigFile, env, path)
    except ConfigError as exc:
        # no config file is the likely cause of the missing tenants: say so first
        first = [] if path else ["no config file given (--config or GATEWAY_CONFIG)"]
        raise ConfigError([*first, *problems, *exc.problems]) from None
    if problems:
        raise ConfigError(problems)
    tables = {field.name: getattr(file, field.name) for field in dataclasses.fields(file)}
    return Settings(**{**tables, "tenants": tuple(table.tenant() for table in file.tenants), "proxies": proxies})


def config_file_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (environment-only keys left out): what the Helm chart's
    ``values.schema.json`` holds for ``config`` and ``tenants``."""
    return json_schema(ConfigFile)
