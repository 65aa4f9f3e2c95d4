"""Which credential source the gateway uses: the chain of the contract, or the one forced.

``select_credentials(env, clock=...)`` reads only the mapping it is given (``cli`` passes the
process environment) and fetches nothing: it returns a holder that has not started. Order in
``auto`` mode, the first configured source winning:

1. ``oidc``: ``HUAWEICLOUD_OIDC_PROVIDER_URN`` + ``HUAWEICLOUD_OIDC_AGENCY_URN`` + ``HUAWEICLOUD_OIDC_TOKEN_FILE``
2. ``federation``: ``HUAWEICLOUD_SDK_IDP_ID`` + ``HUAWEICLOUD_SDK_ID_TOKEN_FILE``
3. ``static``: ``HUAWEICLOUD_SDK_AK``/``_SK`` (fallbacks, ``_FILE`` variants; see ``static``)
4. ``profile``: ``HUAWEICLOUD_SDK_CREDENTIALS_FILE``, else ``$HOME/.huaweicloud/credentials``, section ``[basic]``
5. ``pod-identity``: ``HC_CONTAINER_CREDENTIALS_FULL_URI`` + ``HC_CONTAINER_AUTHORIZATION_TOKEN_FILE``
6. ``metadata``: last, as a last resort that must answer at start-up within a short timeout

A source with only some of its variables set is an error, not a skip: a typo must not fall
through to another identity. So is a profile file named by ``HUAWEICLOUD_SDK_CREDENTIALS_FILE``
that gives no credentials. ``METASTUDIO_CREDENTIALS_SOURCE`` forces one source;
``METASTUDIO_AUTH_MODE=token`` selects the IAM token instead. When nothing is usable the
``CredentialsError`` names every source tried and why it was skipped.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from gateway.clock import Clock
from gateway.credentials.holder import CredentialsHolder, RefreshingHolder, StaticHolder
from gateway.credentials.providers import (
    METADATA_PROBE_TIMEOUT,
    METADATA_TIMEOUT,
    EcsMetadata,
    Federation,
    IamPassword,
    IamTokens,
    OidcSts,
    PodIdentity,
)
from gateway.credentials.static import KEY_PAIR_VARIABLES, CredentialsError, CredentialSource
from gateway.numbers import ascii_digits

DEFAULT_IAM_ENDPOINT = "https://iam.myhuaweicloud.com"
DEFAULT_METADATA_ENDPOINT = "http://169.254.169.254"
PROFILE_SECTION = "basic"  # what the docs say
SDK_BUILDER_SECTION = "basiccredentials"  # what the SDK's client builder looks for (its bug)


class _Skipped(Exception):
    """This source is not configured; the message says what is missing."""


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _all_or_nothing(env: Mapping[str, str], source: str, names: tuple[str, ...]) -> dict[str, str]:
    """The values of ``names``: all set (a configured source), none (skipped), else an error."""
    values = {name: _get(env, name) for name in names}
    missing = [name for name, value in values.items() if not value]
    if len(missing) == len(names):
        raise _Skipped(f"{' + '.join(names)} not set")
    if missing:
        raise CredentialsError([f"{source}: {name} is not set (the rest of this source is)" for name in missing])
    return values


def _iam_endpoint(env: Mapping[str, str], profile_value: str = "") -> str:
    return profile_value or _get(env, "HUAWEICLOUD_SDK_IAM_ENDPOINT") or DEFAULT_IAM_ENDPOINT


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = _get(env, name)
    if not text:
        return default
    if not ascii_digits(text) or int(text) <= 0:
        raise CredentialsError([f"{name}: not a positive whole number of seconds"])
    return int(text)


def _oidc(env: Mapping[str, str], clock: Clock) -> CredentialsHolder:
    values = _all_or_nothing(
        env,
        "oidc",
        ("HUAWEICLOUD_OIDC_PROVIDER_URN", "HUAWEICLOUD_OIDC_AGENCY_URN", "HUAWEICLOUD_OIDC_TOKEN_FILE"),
    )
    region = _get(env, "METASTUDIO_REGION") or "cn-north-4"
    provider = OidcSts(
        provider_urn=values["HUAWEICLOUD_OIDC_PROVIDER_URN"],
        agency_urn=values["HUAWEICLOUD_OIDC_AGENCY_URN"],
        token_file=values["HUAWEICLOUD_OIDC_TOKEN_FILE"],
        sts_endpoint=_get(env, "HUAWEICLOUD_SDK_STS_ENDPOINT") or f"https://sts.{region}.myhuaweicloud.com",
        session_name=_get(env, "HUAWEICLOUD_OIDC_SESSION_NAME") or "oidc-sts-session",
        duration_seconds=_positive_int(env, "HUAWEICLOUD_OIDC_DURATION_SECONDS", 3600),
        policy=_get(env, "HUAWEICLOUD_OIDC_POLICY") or None,
        policy_ids=tuple(part.strip() for part in _get(env, "HUAWEICLOUD_OIDC_POLICY_IDS").split(",") if part.strip()),
    )
    return RefreshingHolder(provider, clock=clock)


def _federation(env: Mapping[str, str], clock: Clock) -> CredentialsHolder:
    values = _all_or_nothing(env, "federation", ("HUAWEICLOUD_SDK_IDP_ID", "HUAWEICLOUD_SDK_ID_TOKEN_FILE"))
    provider = Federation(
        idp_id=values["HUAWEICLOUD_SDK_IDP_ID"],
        token_file=values["HUAWEICLOUD_SDK_ID_TOKEN_FILE"],
        iam_endpoint=_iam_endpoint(env),
    )
    return RefreshingHolder(provider, clock=clock)


def _static(env: Mapping[str, str], clock: Clock) -> CredentialsHolder:
    configured = any(_get(env, name) for name in KEY_PAIR_VARIABLES)
    try:
        return StaticHolder(CredentialSource(env, clock=clock))
    except CredentialsError as exc:
        if configured:
            raise
        raise _Skipped("; ".join(exc.problems)) from exc


def _profile(env: Mapping[str, str], clock: Clock) -> CredentialsHolder:
    named = _get(env, "HUAWEICLOUD_SDK_CREDENTIALS_FILE")
    home = _get(env, "HOME")
    if not named and not home:
        raise _Skipped("HUAWEICLOUD_SDK_CREDENTIALS_FILE not set and no HOME")
    path = Path(named) if named else Path(home, ".huaweicloud", "credentials")
    if not path.is_file():
        if named:
            raise CredentialsError([f"HUAWEICLOUD_SDK_CREDENTIALS_FILE: {path} is not a file"])
        raise _Skipped(f"no file at {path}")
    # The file named by the variable must give credentials; the one in HOME may be for other tools.
    unusable = _named_profile_unusable if named else _Skipped
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8-sig") as handle:  # opened here: ConfigParser.read skips what it cannot open
            parser.read_file(handle)
    except OSError as exc:
        raise unusable(f"{path} cannot be read ({exc.strerror or type(exc).__name__})") from exc
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise CredentialsError([f"profile {path}: not a readable INI file ({type(exc).__name__})"]) from exc
    if not parser.has_section(PROFILE_SECTION):
        hint = (
            f" (the SDK's client builder reads [{SDK_BUILDER_SECTION}]: name it [{PROFILE_SECTION}])"
            if parser.has_section(SDK_BUILDER_SECTION)
            else ""
        )
        raise unusable(f"{path} has no [{PROFILE_SECTION}] section{hint}")
    section = parser[PROFILE_SECTION]
    item = {key: section.get(key, "").strip() for key in ("ak", "sk", "security_token", "idp_id", "id_token_file")}
    if item["idp_id"] and item["id_token_file"]:
        provider = Federation(
            idp_id=item["idp_id"],
            token_file=item["id_token_file"],
            iam_endpoint=_iam_endpoint(env, section.get("iam_endpoint", "").strip()),
        )
        return RefreshingHolder(provider, clock=clock)
    if item["ak"] or item["sk"]:
        if not (item["ak"] and item["sk"]):  # in the file's words: the static source names variables
            missing = "sk" if item["ak"] else "ak"
            raise CredentialsError([f"{path} [{PROFILE_SECTION}]: {missing} is not set (ak and sk go together)"])
        keys = {"HUAWEICLOUD_SDK_AK": item["ak"], "HUAWEICLOUD_SDK_SK": item["sk"]}
        if item["security_token"]:
            keys["HUAWEICLOUD_SDK_SECURITY_TOKEN"] = item["security_token"]
        try:
            source = CredentialSource(keys, clock=clock)
        except CredentialsError as exc:
            problems = [problem.replace("HUAWEICLOUD_SDK_", f"{path} [{PROFILE_SECTION}] ") for problem in exc.problems]
            raise CredentialsError(problems) from exc
        return StaticHolder(source, source="profile", description=f"credentials: profile {path} [{PROFILE_SECTION}]")
    raise unusable(f"{path} [{PROFILE_SECTION}] has neither ak + sk nor idp_id + id_token_file")


def _named_profile_unusable(reason: str) -> CredentialsError:
    return CredentialsError([f"HUAWEICLOUD_SDK_CREDENTIALS_FILE: {reason}"])


def _pod_identity(env: Mapping[str, str], clock: Clock) -> CredentialsHolder:
    values = _all_or_nothing(
        env, "pod-identity", ("HC_CONTAINER_CREDENTIALS_FULL_URI", "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    )
    provider = PodIdentity(
        uri=values["HC_CONTAINER_CREDENTIALS_FULL_URI"], token_file=values["HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
    )
    return RefreshingHolder(provider, clock=clock)


def _metadata_provider(env: Mapping[str, str], probe_timeout: aiohttp.ClientTimeout | None = None) -> EcsMetadata:
    endpoint = _get(env, "METASTUDIO_METADATA_ENDPOINT") or DEFAULT_METADATA_ENDPOINT
    return EcsMetadata(endpoint=endpoint, timeout=METADATA_TIMEOUT, probe_timeout=probe_timeout)


def _metadata(env: Mapping[str, str], clock: Clock) -> CredentialsHolder:
    return RefreshingHolder(_metadata_provider(env), clock=clock)


_CHAIN: dict[str, Callable[[Mapping[str, str], Clock], CredentialsHolder]] = {
    "oidc": _oidc,
    "federation": _federation,
    "static": _static,
    "profile": _profile,
    "pod-identity": _pod_identity,
    "metadata": _metadata,
}
SOURCES = tuple(_CHAIN)


def _token_mode(env: Mapping[str, str], clock: Clock) -> CredentialsHolder:
    problems = [
        f"{name} is not set (METASTUDIO_AUTH_MODE=token needs it)"
        for name in ("METASTUDIO_IAM_DOMAIN", "METASTUDIO_IAM_USER")
        if not _get(env, name)
    ]
    password, password_file = _get(env, "METASTUDIO_IAM_PASSWORD"), _get(env, "METASTUDIO_IAM_PASSWORD_FILE")
    if password and password_file:
        problems.append("METASTUDIO_IAM_PASSWORD and METASTUDIO_IAM_PASSWORD_FILE are both set; set only one")
    elif not password and not password_file:
        problems.append("METASTUDIO_IAM_PASSWORD (or METASTUDIO_IAM_PASSWORD_FILE) is not set")
    agency_domain, agency_name = _get(env, "METASTUDIO_IAM_AGENCY_DOMAIN"), _get(env, "METASTUDIO_IAM_AGENCY_NAME")
    if bool(agency_domain) != bool(agency_name):
        problems.append("METASTUDIO_IAM_AGENCY_DOMAIN and METASTUDIO_IAM_AGENCY_NAME go together; set both or neither")
    if problems:
        raise CredentialsError(problems)
    provider = IamTokens(
        login=IamPassword(
            domain=_get(env, "METASTUDIO_IAM_DOMAIN"),
            user=_get(env, "METASTUDIO_IAM_USER"),
            password=password,
            password_file=password_file or None,
        ),
        project_id=_get(env, "METASTUDIO_PROJECT_ID") or _get(env, "HUAWEICLOUD_SDK_PROJECT_ID"),
        iam_endpoint=_iam_endpoint(env),
        agency_domain=agency_domain or None,
        agency_name=agency_name or None,
    )
    return RefreshingHolder(provider, clock=clock)


def select_credentials(env: Mapping[str, str], *, clock: Clock) -> CredentialsHolder:
    """The holder for the configured source (not started, nothing fetched); raises
    ``CredentialsError`` naming each problem, or every source tried and why it was skipped."""
    mode = _get(env, "METASTUDIO_AUTH_MODE") or "aksk"
    if mode == "token":
        return _token_mode(env, clock)
    if mode != "aksk":
        raise CredentialsError([f"METASTUDIO_AUTH_MODE: must be aksk or token, not {mode[:20]!r}"])
    forced = _get(env, "METASTUDIO_CREDENTIALS_SOURCE") or "auto"
    if forced != "auto":
        if forced not in _CHAIN:
            raise CredentialsError([f"METASTUDIO_CREDENTIALS_SOURCE: must be auto or one of {', '.join(SOURCES)}"])
        try:
            return _CHAIN[forced](env, clock)
        except _Skipped as exc:
            raise CredentialsError([f"METASTUDIO_CREDENTIALS_SOURCE={forced}, but {exc}"]) from exc
    skipped: list[str] = []
    for name, build in _CHAIN.items():
        if name == "metadata":
            break
        try:
            return build(env, clock)
        except _Skipped as exc:
            skipped.append(f"{name}: {exc}")
    provider = _metadata_provider(env, METADATA_PROBE_TIMEOUT)
    return RefreshingHolder(provider, clock=clock, must_answer=[f"no cloud credentials: {skipped[0]}", *skipped[1:]])
