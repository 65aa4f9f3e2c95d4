"""The simulator's fake cloud: IAM, STS, ECS metadata and CCE pod identity, as they answer.

Each route speaks the wire protocol of ``upstream/CREDENTIALS.md`` and checks what the real
service requires (§9); the official SDK's own providers obtain credentials from it (the
fidelity test). What it issues is remembered in ``CloudState``, so the MetaStudio route can
accept only credentials this cloud issued (unexpired, with their own security token) and its
own unexpired IAM tokens scoped to the project. Validity runs on the simulator's clock.

Per route, tests turn the knobs of an ``EndpointControl``: lifetime, expiry format (``6-digit``,
``3-digit``, ``no-fraction``, ``offset``), statuses to answer next ("fail N times"), latency and
an answer without end (``flood``: as fast as it is read; ``drip``: a byte a second);
``CloudState`` also says which id token, pod token, IAM user and agency are genuine, whether the
instance has an agency and IMDS v2. Every request is logged (route and status), so tests count
fetches. Over HTTP: ``GET /_simulator/cloud`` (counts and controls), ``PUT`` (a JSON object of
per-route control changes), ``DELETE`` (reset).
"""

from __future__ import annotations

import asyncio
import base64
import math
import secrets
import string
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.clock import Clock

ROUTES = ("oidc", "id-token", "securitytokens", "iam-token", "metadata-token", "metadata", "pod-identity")
EXPIRY_FORMATS = ("6-digit", "3-digit", "no-fraction", "offset")
ENDLESS_ANSWERS = ("", "flood", "drip")
POD_IDENTITY_PATH = "/pod-identity/v1/credentials"
AGENCY_MISSING_TEXT = "Please configure Cloud Service Agency first"
IAM_TOKEN_CHARACTERS = 9120
"""A real IAM token is about 9 KB (the docs' example: a 6.8 KB DER blob in base64)."""
MAX_FIELD_SIZE = 32768
"""The header-field limit of a server that receives such tokens (aiohttp's default is 8190)."""
_ALNUM = string.ascii_uppercase + string.digits


@dataclass(slots=True)
class EndpointControl:
    """What one route does next: its grants' lifetime and expiry format, failures, latency."""

    lifetime_seconds: float = 3600.0
    expiry_format: str = "6-digit"
    fail: list[int] = field(default_factory=list)
    """Statuses to answer, one per request, before answering normally again."""
    latency_seconds: float = 0.0
    """Real seconds each answer waits (to hold a fetch in flight)."""
    endless: str = ""
    """``flood`` or ``drip``: answer 200 with a body that never ends, 64 KB chunks as fast as
    they are read or a byte a second; empty: answer normally."""

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON object of changes; raises ``ValueError`` on an unknown name or bad value."""
        names = {item.name for item in fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise ValueError(f"unknown control {name!r}")
            if name == "expiry_format" and value not in EXPIRY_FORMATS:
                raise ValueError(f"expiry_format must be one of {', '.join(EXPIRY_FORMATS)}")
            if name == "endless" and value not in ENDLESS_ANSWERS:
                raise ValueError("endless must be flood, drip or empty")
            setattr(self, name, list(value) if name == "fail" else value)


def _default_controls() -> dict[str, EndpointControl]:
    controls = {route: EndpointControl() for route in ROUTES}
    controls["oidc"].expiry_format = "3-digit"  # STS v5 answers milliseconds
    controls["iam-token"].lifetime_seconds = 24 * 3600.0
    controls["id-token"].lifetime_seconds = 24 * 3600.0
    return controls


@dataclass(frozen=True, slots=True)
class IssuedKeys:
    """Temporary credentials this cloud issued."""

    secret_key: str = field(repr=False)
    security_token: str = field(repr=False)
    expires_at: float
    route: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An IAM token this cloud issued: unscoped (federation) or scoped to a project."""

    expires_at: float
    project_id: str | None
    route: str


@dataclass(frozen=True, slots=True)
class CloudRequest:
    """One request a cloud route received."""

    route: str
    status: int
    headers: dict[str, str]


@dataclass(slots=True)
class CloudState:
    """The fake cloud's identities, what it issued, its controls and its request log."""

    project_id: str
    region: str = "cn-north-4"
    controls: dict[str, EndpointControl] = field(default_factory=_default_controls)
    pod_identity_token: str = field(default="sim-pod-identity-token", repr=False)
    id_token: str | None = field(default=None, repr=False)
    """The id token OIDC and federation accept; ``None``: any non-empty one."""
    idp_id: str = "sim-idp"
    iam_users: dict[tuple[str, str], str] = field(
        default_factory=lambda: {("sim-domain", "sim-user"): "sim-password"}, repr=False
    )
    """(account name, user name) -> password."""
    agencies: set[tuple[str, str]] = field(default_factory=lambda: {("sim-domain", "sim-agency")})
    """(domain name, agency name) pairs that may be assumed."""
    instance_has_agency: bool = True
    imds_v2: bool = True
    imds_v1_refused: bool = False
    """The instance requires v2: a metadata request without a session token is a 401."""
    keys: dict[str, IssuedKeys] = field(default_factory=dict, repr=False)
    tokens: dict[str, IssuedToken] = field(default_factory=dict, repr=False)
    metadata_sessions: dict[str, float] = field(default_factory=dict, repr=False)
    """IMDS v2 session tokens and when each expires (its TTL, on the simulator's clock)."""
    log: list[CloudRequest] = field(default_factory=list)

    def count(self, route: str, status: int | None = None) -> int:
        """Requests ``route`` received (with ``status``, when given)."""
        return sum(1 for entry in self.log if entry.route == route and (status is None or entry.status == status))

    def secrets(self) -> list[str]:
        """Every secret this cloud issued or knows (for a test's leak check)."""
        issued = [value for keys in self.keys.values() for value in (keys.secret_key, keys.security_token)]
        known = [self.pod_identity_token, *self.iam_users.values(), *([self.id_token] if self.id_token else [])]
        return [*issued, *self.tokens, *self.metadata_sessions, *known]

    def revoke_tokens(self) -> None:
        """Forget every IAM token issued (a password change revokes them)."""
        self.tokens.clear()

    def credentials_for(self, access_key: str, now: float) -> IssuedKeys | str:
        """The issued credentials of ``access_key`` if unexpired, else why not."""
        keys = self.keys.get(access_key)
        if keys is None:
            return "unknown access key"
        if now >= keys.expires_at:
            return "temporary credentials expired"
        return keys

    def live_token(self, token: str, now: float) -> IssuedToken | None:
        """The issued IAM token ``token`` if known and unexpired, else ``None``."""
        issued = self.tokens.get(token)
        return issued if issued is not None and now < issued.expires_at else None

    def check_token(self, token: str, project_id: str, now: float) -> str | None:
        """``None`` when ``token`` is a known unexpired token scoped to ``project_id``, else why not."""
        issued = self.tokens.get(token)
        if issued is None:
            return "unknown IAM token"
        if now >= issued.expires_at:
            return "IAM token expired"
        if issued.project_id != project_id:
            return "IAM token not scoped to this project"
        return None


def format_expiry(moment: float, form: str) -> str:
    """``moment`` in one of the services' expiry forms."""
    when = datetime.fromtimestamp(moment, tz=UTC)
    base = when.strftime("%Y-%m-%dT%H:%M:%S")
    if form == "3-digit":
        return f"{base}.{when.microsecond // 1000:03d}Z"
    if form == "no-fraction":
        return f"{base}Z"
    if form == "offset":
        return f"{base}.{when.microsecond:06d}+00:00"
    return f"{base}.{when.microsecond:06d}Z"


async def _endless(request: web.Request, *, drip: bool) -> web.StreamResponse:
    """A 200 whose body ends only when the client leaves."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b" " if drip else b" " * 65536
    try:
        while True:
            await response.write(chunk)
            await asyncio.sleep(1.0 if drip else 0)
    except ConnectionError:
        return response


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error_code": code, "error_msg": message}, status=status)


def _keystone_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "title": "Unauthorized", "message": message}}, status=status)


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _dig(body: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(body, dict):
            return None
        body = body.get(name)
    return body


class FakeCloud:
    """The routes, bound to a ``CloudState`` and the simulator's clock."""

    def __init__(self, state: CloudState, clock: Clock) -> None:
        self.state = state
        self._clock = clock

    def add_routes(self, app: web.Application) -> None:
        """Register every cloud route and the control endpoint on ``app``."""
        routes: list[tuple[str, str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("POST", "/v5/agencies/assume-with-oidc", "oidc", self._oidc),
            ("POST", "/v3.0/OS-AUTH/id-token/tokens", "id-token", self._id_token),
            ("POST", "/v3.0/OS-CREDENTIAL/securitytokens", "securitytokens", self._security_tokens),
            ("POST", "/v3/auth/tokens", "iam-token", self._iam_token),
            ("PUT", "/meta-data/latest/api/token", "metadata-token", self._metadata_token),
            ("GET", "/openstack/latest/securitykey", "metadata", self._metadata),
            ("POST", POD_IDENTITY_PATH, "pod-identity", self._pod_identity),
        ]
        for method, path, route, handler in routes:
            app.router.add_route(method, path, self._controlled(route, handler))
        app.router.add_route("*", "/_simulator/cloud", self._control)

    def _controlled(
        self, route: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            settings = self.state.controls[route]
            if settings.latency_seconds > 0:
                await asyncio.sleep(settings.latency_seconds)
            if settings.endless:
                self.state.log.append(CloudRequest(route, 200, dict(request.headers)))
                return await _endless(request, drip=settings.endless == "drip")
            if settings.fail:
                status = settings.fail.pop(0)
                response: web.StreamResponse = _error(status, "SIM.0500", "injected failure")
            else:
                response = await handler(request)
            self.state.log.append(CloudRequest(route, response.status, dict(request.headers)))
            return response

        return serve

    # -- issuing ------------------------------------------------------------------------------

    def _issue_keys(self, route: str) -> tuple[str, str, str, str]:
        """New AK, SK, token and expiry text for ``route``, remembered as issued."""
        control = self.state.controls[route]
        expires_at = self._clock.now() + control.lifetime_seconds
        access_key = "".join(secrets.choice(_ALNUM) for _ in range(20))
        secret_key = secrets.token_urlsafe(30)
        token = "gQ" + base64.b64encode(secrets.token_bytes(900)).decode()
        self.state.keys[access_key] = IssuedKeys(secret_key, token, expires_at, route)
        return access_key, secret_key, token, format_expiry(expires_at, control.expiry_format)

    def _issue_token(self, route: str, project_id: str | None) -> tuple[str, dict[str, Any]]:
        """A new ~9 KB IAM token and its ``token`` body fields."""
        control = self.state.controls[route]
        now = self._clock.now()
        expires_at = now + control.lifetime_seconds
        token = "MII" + base64.b64encode(secrets.token_bytes(IAM_TOKEN_CHARACTERS * 3 // 4)).decode()[:-3]
        self.state.tokens[token] = IssuedToken(expires_at, project_id, route)
        body = {
            "expires_at": format_expiry(expires_at, control.expiry_format),
            "issued_at": format_expiry(now, "6-digit"),
        }
        return token, body

    @staticmethod
    def _token_response(token: str, body: dict[str, Any]) -> web.Response:
        return web.json_response({"token": body}, status=201, headers={"X-Subject-Token": token})

    def _iam_credential(self, route: str, status: int = 200) -> web.Response:
        """New temporary credentials for ``route`` in IAM's ``credential`` body (securitytokens, metadata)."""
        access_key, secret_key, token, expiry = self._issue_keys(route)
        credential = {"access": access_key, "secret": secret_key, "securitytoken": token, "expires_at": expiry}
        return web.json_response({"credential": credential}, status=status)

    # -- routes -------------------------------------------------------------------------------

    async def _oidc(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if body is None:
            return _error(400, "STS.0001", "invalid request body")
        missing = [name for name in ("provider_urn", "agency_urn", "id_token") if not body.get(name)]
        if missing:
            return _error(400, "STS.0002", f"missing {', '.join(missing)}")
        if self.state.id_token is not None and body["id_token"] != self.state.id_token:
            return _error(400, "STS.0003", "invalid id token")
        duration = body.get("duration_seconds", 3600)
        if not isinstance(duration, int) or not 900 <= duration <= 43200:
            return _error(400, "STS.0004", "duration_seconds out of range")
        access_key, secret_key, token, expiry = self._issue_keys("oidc")
        return web.json_response(
            {
                "credentials": {
                    "access_key_id": access_key,
                    "secret_access_key": secret_key,
                    "security_token": token,
                    "expiration": expiry,
                },
                "assumed_agency": {"urn": body["agency_urn"], "id": "sim-agency-id"},
                "subject_from_id_token": "system:serviceaccount:sim:gateway",
                "audience": "sts.myhuaweicloud.com",
                "provider": body["provider_urn"],
            }
        )

    async def _id_token(self, request: web.Request) -> web.Response:
        body = await _json(request)
        id_token = _dig(body, "auth", "id_token", "id")
        if request.headers.get("X-Idp-Id") != self.state.idp_id:
            return _error(400, "IAM.0001", "unknown identity provider")
        if not isinstance(id_token, str) or not id_token:
            return _error(400, "IAM.0002", "auth.id_token.id is missing")
        if self.state.id_token is not None and id_token != self.state.id_token:
            return _error(401, "IAM.0003", "invalid id token")
        token, fields_ = self._issue_token("id-token", None)
        fields_.update(methods=["mapped"], user={"name": "federated-user", "domain": {"name": "sim-domain"}})
        return self._token_response(token, fields_)

    async def _security_tokens(self, request: web.Request) -> web.Response:
        body = await _json(request)
        token = request.headers.get("X-Auth-Token") or _dig(body, "auth", "identity", "token", "id")
        if _dig(body, "auth", "identity", "methods") != ["token"] or not isinstance(token, str):
            return _error(400, "IAM.0004", "auth.identity must use the token method")
        if self.state.live_token(token, self._clock.now()) is None:
            return _keystone_error(401, "The token must be updated.")
        duration = _dig(body, "auth", "identity", "token", "duration_seconds") or 900
        if not isinstance(duration, int) or not 900 <= duration <= 86400:
            return _error(400, "IAM.0005", "duration_seconds out of range")
        return self._iam_credential("securitytokens", status=201)

    def _scope_project(self, body: Any) -> str | None:
        project = _dig(body, "auth", "scope", "project")
        if not isinstance(project, dict):
            return None
        if project.get("id") == self.state.project_id or project.get("name") == self.state.region:
            return self.state.project_id
        return None

    async def _iam_token(self, request: web.Request) -> web.Response:
        body = await _json(request)
        methods = _dig(body, "auth", "identity", "methods")
        now = self._clock.now()
        if methods == ["password"]:
            user = _dig(body, "auth", "identity", "password", "user")
            login = (_dig(user, "domain", "name"), _dig(user, "name"))
            password = self.state.iam_users.get(login) if all(isinstance(part, str) for part in login) else None
            if password is None or _dig(user, "password") != password:
                return _keystone_error(401, "The username or password is wrong.")
        elif methods == ["assume_role"]:
            if self.state.live_token(request.headers.get("X-Auth-Token", ""), now) is None:
                return _keystone_error(401, "The token must be updated.")
            role = _dig(body, "auth", "identity", "assume_role") or {}
            if (role.get("domain_name"), role.get("agency_name")) not in self.state.agencies:
                return _error(404, "IAM.0006", "agency not found")
        else:
            return _error(400, "IAM.0007", "unsupported auth method")
        scope = _dig(body, "auth", "scope") or {}
        project_id = self._scope_project(body)
        if "project" in scope and project_id is None:
            return _error(400, "IAM.0008", "unknown project")
        token, fields_ = self._issue_token("iam-token", project_id)
        fields_["methods"] = methods
        if project_id is not None:
            fields_["project"] = {"id": project_id, "name": self.state.region, "domain": {"name": "sim-domain"}}
        return self._token_response(token, fields_)

    async def _metadata_token(self, request: web.Request) -> web.Response:
        if not self.state.imds_v2:
            return web.Response(status=404, text="Not Found")
        if "X-Forwarded-For" in request.headers:
            return web.Response(status=403, text="Forbidden")
        ttl = request.headers.get("X-Metadata-Token-Ttl-Seconds", "")
        if not ttl.isdigit() or not 60 <= int(ttl) <= 21600:
            return web.Response(status=400, text="X-Metadata-Token-Ttl-Seconds must be 60 to 21600")
        token = secrets.token_urlsafe(32)
        self.state.metadata_sessions[token] = self._clock.now() + int(ttl)
        return web.Response(text=token)

    async def _metadata(self, request: web.Request) -> web.Response:
        session = request.headers.get("X-Metadata-Token")
        if session is None:
            refused = self.state.imds_v1_refused
        else:  # unknown, or past its TTL: the SDK keeps a token until it meets this 401
            refused = self.state.metadata_sessions.get(session, -math.inf) <= self._clock.now()
        if refused:
            return web.Response(status=401, text="Unauthorized")
        if not self.state.instance_has_agency:  # a 401 whose body says so: asking again will not help
            return _error(401, "ECS.0001", AGENCY_MISSING_TEXT)
        return self._iam_credential("metadata")

    async def _pod_identity(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.state.pod_identity_token:
            return _error(401, "CCE.0001", "invalid service account token")
        access_key, secret_key, token, expiry = self._issue_keys("pod-identity")
        return web.json_response(
            {
                "credentials": {
                    "accessKeyId": access_key,
                    "secretAccessKey": secret_key,
                    "securityToken": token,
                    "expiration": expiry,
                },
                "assumedAgency": {"urn": "iam::sim:agency:gateway", "id": "sim-agency-id"},
                "audience": "sts.myhuaweicloud.com",
                "podIdentityAssociationId": "sim-association",
                "subject": {"namespace": "sim", "serviceAccount": "gateway"},
            }
        )

    async def _control(self, request: web.Request) -> web.Response:
        """``/_simulator/cloud``: GET counts and controls, PUT ``{route: {control: value}}``, DELETE resets."""
        if request.method == "PUT":
            changes = await _json(request)
            try:
                if changes is None:
                    raise ValueError("the body must be a JSON object")
                for route, update in changes.items():
                    if route not in self.state.controls or not isinstance(update, dict):
                        raise ValueError(f"unknown route {route!r}; routes: {', '.join(ROUTES)}")
                    self.state.controls[route].update(update)
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        elif request.method == "DELETE":
            self.state.controls = _default_controls()
            self.state.log.clear()
        elif request.method != "GET":
            return web.json_response({"error": "method not allowed"}, status=405)
        counts = Counter(f"{entry.route} {entry.status}" for entry in self.state.log)
        return web.json_response(
            {
                "requests": dict(counts),
                "controls": {route: asdict(control) for route, control in self.state.controls.items()},
            }
        )
