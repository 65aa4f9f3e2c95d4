"""The temporary credential sources: each fetches one ``Grant`` over HTTP, nothing more.

Every provider speaks its service's wire protocol as ``upstream/CREDENTIALS.md`` records it
(checked against the official SDK): OIDC -> STS ``AssumeAgencyWithOIDC``, IdP federation
through IAM, CCE pod identity, ECS instance metadata (IMDS v2 with v1 fallback) and the IAM
token of token mode (password, or an agency assumed with ``assume_role``).

Providers hold their settings (names and paths, never read from ``os.environ``: the chain hands
them in) and take the app's client session per fetch (``Outbound``: through the proxy a URL
needs). They do not read the clock, cache a grant or retry a failed fetch: the refreshing holder
decides when to fetch. The one exception is ``EcsMetadata``, which keeps its IMDS v2 session
token between fetches and, when the service refuses it (401), takes a new one and asks once
more. Token files are read on every fetch, so a rotated projected token is always the one sent.
Failures are ``FetchFailed`` whose message names the endpoint and status, never a secret or the
service's own error text (only its error code, when it has a plain one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from gateway.bounded_reads import read_at_most
from gateway.config.secret_files import UnusableValue, read_secret_file
from gateway.credentials.issued import (
    FetchFailed,
    Grant,
    IamToken,
    credential_fields,
    header_safe,
    is_header_safe,
    parse_expiry,
)
from gateway.outbound import Outbound
from gateway.tls import tls_reason

IAM_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 - a header name
JSON_UTF8 = "application/json;charset=UTF-8"
FEDERATION_DURATION_SECONDS = 21600
IMDS_TOKEN_TTL_SECONDS = 21600
AGENCY_MISSING_TEXT = "Please configure Cloud Service Agency first"
_ERROR_CODE = re.compile(r"[A-Za-z0-9._-]{1,40}")

# connect + read, per service (the SDK's, except IAM/STS: a minute to connect helps nobody), and
# a whole call's deadline, which the SDK lacks: an endpoint that answers a byte at a time within
# the read timeout would otherwise hold the renewal for good.
METADATA_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3, sock_read=3)
METADATA_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2, connect=1, sock_read=1)
POD_IDENTITY_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5, sock_read=5)
IAM_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)
MAX_ANSWER_BYTES = 1024 * 1024
"""Longer answers are refused: the services answer a few KB (IAM tokens are asked without their
catalog), and an endpoint that answers without end must not take the memory."""


class Provider(Protocol):
    """One source of temporary credentials or IAM tokens."""

    @property
    def source(self) -> str:
        """The source's name (``oidc``, ``pod-identity``...): a metric label and log field."""
        ...

    def describe(self) -> str:
        """Where the credentials come from: names, hosts and paths, never a secret."""
        ...

    async def fetch(self, session: Outbound) -> Grant:
        """Obtain fresh credentials; raises ``FetchFailed`` saying why not."""
        ...


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: Any
    body: bytes

    def json(self, what: str) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise FetchFailed(f"{what} answered {self.status} with a body that is not JSON") from exc

    def refusal(self, what: str) -> FetchFailed:
        """The failure for a status of 400 or more, with the service's error code if plain."""
        code = ""
        try:
            parsed = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            nested = parsed.get("error")
            raw = parsed.get("error_code") or (nested.get("code") if isinstance(nested, dict) else None)
            if isinstance(raw, str | int) and _ERROR_CODE.fullmatch(str(raw)):
                code = f" ({raw})"
        return FetchFailed(f"{what} answered {self.status}{code}")

    def grant(self, what: str) -> Grant:
        """The temporary credentials in the body, or the refusal of a status of 400 or more."""
        if self.status >= 400:
            raise self.refusal(what)
        return credential_fields(self.json(what), what=what)

    def subject_token(self, what: str) -> str:
        """The IAM token in ``X-Subject-Token``, or the refusal of a status of 400 or more."""
        if self.status >= 400:
            raise self.refusal(what)
        token: str = self.headers.get(IAM_TOKEN_HEADER, "")
        if not token:
            raise FetchFailed(f"{what} answered {self.status} without {IAM_TOKEN_HEADER}")
        return header_safe(token, "token", what=what)


async def _call(
    session: Outbound,
    method: str,
    url: str,
    *,
    what: str,
    limits: aiohttp.ClientTimeout,
    headers: dict[str, str],
    body: Any = None,
) -> _Answer:
    """One request; connection problems and timeouts become ``FetchFailed`` naming ``what``."""
    data = b"" if body is None else orjson.dumps(body)
    try:
        async with session.request(
            method, url, data=data, headers=headers, timeout=limits, allow_redirects=False
        ) as response:
            body = await read_at_most(response, MAX_ANSWER_BYTES)
            if body is None:
                raise FetchFailed(f"{what} answered more than {MAX_ANSWER_BYTES} bytes")
            return _Answer(response.status, response.headers, body)
    except TimeoutError as exc:
        raise FetchFailed(f"{what} did not answer in time") from exc
    # aiohttp's errors are not chained: a proxy's names the proxy URL, its password in it.
    except aiohttp.ClientConnectorCertificateError as exc:
        raise FetchFailed(f"TLS with {what} failed: {tls_reason(exc.certificate_error)}") from None
    except aiohttp.ClientError as exc:
        raise FetchFailed(f"{what} could not be reached ({type(exc).__name__})") from None


def _read_token(variable: str, path: str) -> str:
    try:
        token = read_secret_file(variable, path)
    except UnusableValue as exc:
        raise FetchFailed(str(exc)) from exc
    if not token:
        raise FetchFailed(f"{variable}: {path} is empty")
    return token


def base_url(endpoint: str) -> str:
    """Scheme and host:port of an endpoint setting (the SDK ignores any path in it)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class OidcSts:
    """OIDC -> STS v5 ``AssumeAgencyWithOIDC`` (an unsigned call trading an id token for AK/SK)."""

    provider_urn: str
    agency_urn: str
    token_file: str
    sts_endpoint: str
    session_name: str = "oidc-sts-session"
    duration_seconds: int = 3600
    policy: str | None = None
    policy_ids: tuple[str, ...] = ()
    source: str = "oidc"

    def describe(self) -> str:
        return f"OIDC -> STS at {base_url(self.sts_endpoint)} (agency {self.agency_urn}, token from {self.token_file})"

    async def fetch(self, session: Outbound) -> Grant:
        body: dict[str, Any] = {
            "provider_urn": self.provider_urn,
            "agency_urn": self.agency_urn,
            "agency_session_name": self.session_name,
            "id_token": _read_token("HUAWEICLOUD_OIDC_TOKEN_FILE", self.token_file),
            "duration_seconds": self.duration_seconds,
        }
        if self.policy:
            body["policy"] = self.policy
        if self.policy_ids:
            body["policy_ids"] = list(self.policy_ids)
        what = "STS AssumeAgencyWithOIDC"
        answer = await _call(
            session,
            "POST",
            base_url(self.sts_endpoint) + "/v5/agencies/assume-with-oidc",
            what=what,
            limits=IAM_TIMEOUT,
            headers={"Content-Type": JSON_UTF8},
            body=body,
        )
        return answer.grant(what)


@dataclass(frozen=True, slots=True)
class Federation:
    """IdP federation through IAM: id token -> unscoped token -> temporary AK/SK (two unsigned calls)."""

    idp_id: str
    token_file: str
    iam_endpoint: str
    source: str = "federation"

    def describe(self) -> str:
        return f"IdP federation at {base_url(self.iam_endpoint)} (idp {self.idp_id}, token from {self.token_file})"

    async def fetch(self, session: Outbound) -> Grant:
        iam = base_url(self.iam_endpoint)
        what = "IAM id-token exchange"
        id_token = _read_token("HUAWEICLOUD_SDK_ID_TOKEN_FILE", self.token_file)
        answer = await _call(
            session,
            "POST",
            iam + "/v3.0/OS-AUTH/id-token/tokens",
            what=what,
            limits=IAM_TIMEOUT,
            headers={"X-Idp-Id": self.idp_id, "Content-Type": JSON_UTF8},
            body={"auth": {"id_token": {"id": id_token}}},
        )
        unscoped = answer.subject_token(what)
        what = "IAM securitytokens"
        answer = await _call(
            session,
            "POST",
            iam + "/v3.0/OS-CREDENTIAL/securitytokens",
            what=what,
            limits=IAM_TIMEOUT,
            headers={"Content-Type": JSON_UTF8},
            body={
                "auth": {
                    "identity": {
                        "methods": ["token"],
                        "token": {"id": unscoped, "duration_seconds": FEDERATION_DURATION_SECONDS},
                    }
                }
            },
        )
        return answer.grant(what)


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """CCE pod identity: the projected service-account token, bearer-less, to the agent's URI."""

    uri: str
    token_file: str
    source: str = "pod-identity"

    def describe(self) -> str:
        return f"CCE pod identity at {base_url(self.uri)} (token from {self.token_file})"

    async def fetch(self, session: Outbound) -> Grant:
        what = "the pod identity endpoint"
        variable = "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"
        token = _read_token(variable, self.token_file)
        if not is_header_safe(token):  # sent as a header, as it is
            raise FetchFailed(f"{variable}: {self.token_file} holds more than one line, or a character a header cannot")
        answer = await _call(
            session,
            "POST",
            self.uri,
            what=what,
            limits=POD_IDENTITY_TIMEOUT,
            headers={"Authorization": token, "Content-Type": "application/json"},
            body={},
        )
        if answer.status >= 400:
            raise FetchFailed(f"{what} answered {answer.status}")
        return credential_fields(answer.json(what), what=what)


@dataclass(slots=True)
class EcsMetadata:
    """ECS instance metadata: an IMDS v2 session token (v1 when the service has none), then the
    agency's temporary credentials. The session token is kept until the service refuses it."""

    endpoint: str = "http://169.254.169.254"
    timeout: aiohttp.ClientTimeout = METADATA_TIMEOUT
    probe_timeout: aiohttp.ClientTimeout | None = None
    """The limits until the service has answered once (auto mode's start-up probe, quick on a
    machine that is not an ECS); ``timeout`` from then on."""
    source: str = "metadata"
    _session_token: str | None = field(default=None, repr=False)
    _answered: bool = field(default=False, repr=False)

    def describe(self) -> str:
        return f"ECS metadata at {base_url(self.endpoint)}"

    async def fetch(self, session: Outbound) -> Grant:
        what = "ECS metadata securitykey"
        answer = await self._securitykey(session, what)
        if answer.status == 401 and not self._agency_missing(answer):
            # The session token expired or is foreign; or the instance requires v2 and v1 was
            # taken when the token service failed for a moment: take a new one, once.
            self._session_token = None
            answer = await self._securitykey(session, what)
        if self._agency_missing(answer):
            raise FetchFailed(f"{what} answered {answer.status}: no agency is attached to this instance")
        if answer.status >= 400:
            raise FetchFailed(f"{what} answered {answer.status}")
        grant = credential_fields(answer.json(what), what=what)
        self._answered = True
        return grant

    @property
    def _limits(self) -> aiohttp.ClientTimeout:
        return self.timeout if self._answered or self.probe_timeout is None else self.probe_timeout

    async def _securitykey(self, session: Outbound, what: str) -> _Answer:
        if self._session_token is None:
            self._session_token = await self._new_session_token(session)
        headers = {"X-Metadata-Token": self._session_token} if self._session_token else {}
        return await _call(
            session,
            "GET",
            base_url(self.endpoint) + "/openstack/latest/securitykey",
            what=what,
            limits=self._limits,
            headers=headers,
        )

    @staticmethod
    def _agency_missing(answer: _Answer) -> bool:
        return AGENCY_MISSING_TEXT.encode() in answer.body

    async def _new_session_token(self, session: Outbound) -> str:
        """An IMDS v2 session token, or ``""`` when the service offers only v1."""
        what = "ECS metadata token"
        answer = await _call(
            session,
            "PUT",
            base_url(self.endpoint) + "/meta-data/latest/api/token",
            what=what,
            limits=self._limits,
            headers={"X-Metadata-Token-Ttl-Seconds": str(IMDS_TOKEN_TTL_SECONDS)},
        )
        if answer.status in (404, 405, 503):
            return ""
        if answer.status != 200 or not answer.body.strip():
            raise FetchFailed(f"{what} answered {answer.status}")
        return header_safe(answer.body.decode("ascii", "replace").strip(), "session token", what=what)


@dataclass(frozen=True, slots=True, repr=False)
class IamPassword:
    """An IAM user's login (token mode); the password is read from its file on every fetch when
    it comes from one. Never shows the password."""

    domain: str
    user: str
    password: str = ""
    password_file: str | None = None

    def value(self) -> str:
        if self.password_file is None:
            return self.password
        return _read_token("METASTUDIO_IAM_PASSWORD_FILE", self.password_file)

    def __repr__(self) -> str:
        return f"IamPassword(domain={self.domain!r}, user={self.user!r}, password='***')"


@dataclass(frozen=True, slots=True)
class IamTokens:
    """Token mode: an IAM token scoped to the project, from a password, or by assuming an agency
    (``assume_role``) with the user's own token. Tokens come in ``X-Subject-Token``."""

    login: IamPassword
    project_id: str
    iam_endpoint: str
    agency_domain: str | None = None
    agency_name: str | None = None
    source: str = "iam-token"

    def describe(self) -> str:
        how = f"password of {self.login.user}@{self.login.domain}"
        if self.agency_name:
            how += f", assuming agency {self.agency_domain}/{self.agency_name}"
        return f"IAM token from {base_url(self.iam_endpoint)} ({how})"

    async def fetch(self, session: Outbound) -> Grant:
        password = {
            "methods": ["password"],
            "password": {
                "user": {"domain": {"name": self.login.domain}, "name": self.login.user, "password": self.login.value()}
            },
        }
        if not self.agency_name:
            return await self._token(session, password, {"project": {"id": self.project_id}}, "IAM password token")
        own = await self._token(session, password, {"domain": {"name": self.login.domain}}, "IAM password token")
        assert isinstance(own.auth, IamToken)
        assume = {
            "methods": ["assume_role"],
            "assume_role": {"domain_name": self.agency_domain, "agency_name": self.agency_name},
        }
        return await self._token(
            session, assume, {"project": {"id": self.project_id}}, "IAM agency token", caller=own.auth.value
        )

    async def _token(
        self,
        session: Outbound,
        identity: dict[str, Any],
        scope: dict[str, Any],
        what: str,
        *,
        caller: str | None = None,
    ) -> Grant:
        headers = {"Content-Type": "application/json;charset=utf8"}
        if caller is not None:
            headers["X-Auth-Token"] = caller
        answer = await _call(
            session,
            "POST",
            base_url(self.iam_endpoint) + "/v3/auth/tokens?nocatalog=true",
            what=what,
            limits=IAM_TIMEOUT,
            headers=headers,
            body={"auth": {"identity": identity, "scope": scope}},
        )
        token = answer.subject_token(what)
        body = answer.json(what)
        record = body.get("token") if isinstance(body, dict) else None
        expires_at = record.get("expires_at") if isinstance(record, dict) else None
        if not isinstance(expires_at, str):
            raise FetchFailed(f"{what} answered without token.expires_at")
        return Grant(IamToken(token), parse_expiry(expires_at))
