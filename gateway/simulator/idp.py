"""A fake OpenID Connect identity provider: a real aiohttp server for the tests and the demo.

It publishes signing keys as a JWKS and issues access tokens (JWTs) for demo users, and it can
be told to misbehave (rotate or remove keys, go down, serve a broken key set) so the gateway's
key handling can be tested over real HTTP. It shares only the clock with the gateway.

Starting it::

    async with running_idp(users={"alice": "acme", "bob": "globex"}, clock=clock) as idp:
        idp.issuer       # "http://127.0.0.1:PORT": the ``iss`` of its tokens and its base URL
        idp.jwks_uri     # idp.issuer + "/jwks"
        idp.token_url    # idp.issuer + "/token"
        idp.control      # IdPControl: see below

HTTP API:

* ``GET /.well-known/openid-configuration``: ``issuer``, ``jwks_uri``, ``token_endpoint``,
  ``id_token_signing_alg_values_supported``.
* ``GET /jwks``: ``{"keys": [...]}``, every published public key with ``kid``, ``alg`` and
  ``use: "sig"``. Each request adds one to ``control.jwks_fetches``.
* ``POST /token``: a form (``username=alice``) or JSON (``{"username": "alice"}``) body; answers
  ``{"access_token": "<JWT>", "token_type": "Bearer", "expires_in": <seconds>}`` for a known user,
  else 400 ``{"error": "invalid_grant"}``. No password: the users are demo users. Any origin may
  call it (``Access-Control-Allow-Origin: *``, preflight answered), so a demo page on another
  port can sign in with ``fetch``.

While ``control.outage`` is true, discovery and the JWKS answer 503 (tokens are still issued).

Tokens carry ``iss``, ``aud`` (the configured audience), ``sub`` (the username), ``iat``, ``exp``
(``iat`` + ``control.token_lifetime_seconds``, on the injected clock) and the tenant claim
(``tenant_claim``, default ``"tenant"``) set to the user's value. Two keys exist at start: one
RS256 and one ES256 (generated with ``cryptography``); tokens are signed RS256 unless asked.

``IdPControl``, for tests (and the demo):

* ``issue(username, *, algorithm="RS256", claims=None, headers=None)``: a token as ``/token``
  gives it; ``claims`` are merged over the standard ones (``None`` values delete a claim),
  ``headers`` over the JWT header.
* ``sign(claims, *, algorithm="RS256", headers=None, signed_as=None)``: any claims, signed with
  the current key of ``algorithm`` (``signed_as``: by another algorithm that key can sign with).
* ``rotate(algorithm="RS256") -> kid``: a new key for ``algorithm``, published and used from now
  on; older keys stay published until removed.
* ``remove_key(kid)``: stop publishing a key (tokens signed with it no longer verify).
* ``signing_kid(algorithm="RS256")``, ``published_kids``, ``public_pem(kid)``,
  ``public_jwk(kid)``: to inspect keys, and to craft attacks (HMAC keyed with a public key).
* ``outage`` (bool), ``jwks_body`` (bytes or ``None``: serve these bytes as the JWKS instead),
  ``jwks_redirect`` (a URL or ``None``: ``/jwks`` answers 302 to it; ``/jwks/moved`` serves the
  keys as ``/jwks`` does), ``token_lifetime_seconds`` (float), ``jwks_fetches`` (int, read it).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.clock import Clock, SystemClock

DEMO_USERS = {"alice": "acme", "bob": "globex"}
"""Demo users and the tenant claim value each one's tokens carry."""
DEFAULT_AUDIENCE = "metastudio-gateway"
ALGORITHMS = ("RS256", "ES256")
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    algorithm: str
    private: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        jwk = (
            RSAAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, rsa.RSAPublicKey)
            else ECAlgorithm.to_jwk(public, as_dict=True)
        )
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def _new_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"the fake IdP makes RS256 and ES256 keys, not {algorithm}")


class IdPControl:
    """The fake IdP's keys, users and knobs (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock,
        users: Mapping[str, str],
        audience: str,
        tenant_claim: str,
        token_lifetime_seconds: float,
    ) -> None:
        self.issuer = ""  # known once the server is bound
        self.users = dict(users)
        self.audience = audience
        self.tenant_claim = tenant_claim
        self.token_lifetime_seconds = token_lifetime_seconds
        self.outage = False
        self.jwks_body: bytes | None = None
        self.jwks_redirect: str | None = None
        self.jwks_fetches = 0
        self._clock = clock
        self._numbers = itertools.count(1)
        self._keys: dict[str, _Key] = {}
        self._current: dict[str, str] = {}
        for algorithm in ALGORITHMS:
            self.rotate(algorithm)

    def rotate(self, algorithm: str = "RS256") -> str:
        """Make, publish and start signing with a new key for ``algorithm``; returns its kid."""
        key = _Key(f"{algorithm.lower()}-{next(self._numbers)}", algorithm, _new_private_key(algorithm))
        self._keys[key.kid] = key
        self._current[algorithm] = key.kid
        return key.kid

    def remove_key(self, kid: str) -> None:
        """Stop publishing ``kid`` (it keeps signing if it is current: rotate first to avoid that)."""
        del self._keys[kid]

    def signing_kid(self, algorithm: str = "RS256") -> str:
        return self._current[algorithm]

    @property
    def published_kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def public_jwk(self, kid: str) -> dict[str, Any]:
        return self._keys[kid].public_jwk()

    def public_pem(self, kid: str) -> bytes:
        return (
            self._keys[kid]
            .private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def jwks(self) -> dict[str, Any]:
        """The published key set."""
        return {"keys": [key.public_jwk() for key in self._keys.values()]}

    def standard_claims(self, username: str) -> dict[str, Any]:
        """The claims ``/token`` puts in a token for ``username`` (a known user)."""
        now = int(self._clock.now())
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": username,
            "iat": now,
            "exp": now + int(self.token_lifetime_seconds),
            self.tenant_claim: self.users[username],
        }

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        algorithm: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        signed_as: str | None = None,
    ) -> str:
        """``claims`` signed with the current key of ``algorithm``, its kid in the header;
        ``signed_as``: sign with that algorithm instead, with the same key (RS384 or PS256 with
        the RSA key, say: a token whose algorithm a verifier should refuse)."""
        key = self._keys[self._current[algorithm]]
        return jwt.encode(
            dict(claims), key.private, algorithm=signed_as or algorithm, headers={"kid": key.kid, **(headers or {})}
        )

    def issue(
        self,
        username: str,
        *,
        algorithm: str = "RS256",
        claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """An access token for ``username`` as ``/token`` issues it, with ``claims`` merged over
        the standard ones (a ``None`` value removes that claim)."""
        merged = {**self.standard_claims(username), **(claims or {})}
        return self.sign({k: v for k, v in merged.items() if v is not None}, algorithm=algorithm, headers=headers)


IDP_CONTROL = web.AppKey("idp_control", IdPControl)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


async def _discovery(request: web.Request) -> web.Response:
    control = request.app[IDP_CONTROL]
    if control.outage:
        return _json({"error": "temporarily_unavailable"}, status=503)
    return _json(
        {
            "issuer": control.issuer,
            "jwks_uri": f"{control.issuer}/jwks",
            "token_endpoint": f"{control.issuer}/token",
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "grant_types_supported": ["password"],
        }
    )


async def _jwks(request: web.Request) -> web.Response:
    control = request.app[IDP_CONTROL]
    control.jwks_fetches += 1
    if control.outage:
        return _json({"error": "temporarily_unavailable"}, status=503)
    if control.jwks_redirect is not None and request.path == "/jwks":
        raise web.HTTPFound(control.jwks_redirect)
    if control.jwks_body is not None:
        return web.Response(body=control.jwks_body, content_type="application/json")
    return _json(control.jwks())


async def _token(request: web.Request) -> web.Response:
    control = request.app[IDP_CONTROL]
    username: Any = None
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            body = None
        username = body.get("username") if isinstance(body, dict) else None
    else:
        username = (await request.post()).get("username")
    if not isinstance(username, str) or username not in control.users:
        return _json({"error": "invalid_grant", "error_description": "unknown user"}, status=400, headers=_CORS)
    token = control.issue(username)
    return _json(
        {"access_token": token, "token_type": "Bearer", "expires_in": int(control.token_lifetime_seconds)},
        headers={**_CORS, "Cache-Control": "no-store"},
    )


async def _token_preflight(_request: web.Request) -> web.Response:
    return web.Response(status=204, headers={**_CORS, "Access-Control-Max-Age": "600"})


def create_idp_app(control: IdPControl) -> web.Application:
    """The fake IdP's application, serving ``control``'s keys and users."""
    app = web.Application()
    app[IDP_CONTROL] = control
    app.router.add_get("/.well-known/openid-configuration", _discovery)
    app.router.add_get("/jwks", _jwks)
    app.router.add_get("/jwks/moved", _jwks)
    app.router.add_post("/token", _token)
    app.router.add_route("OPTIONS", "/token", _token_preflight)
    return app


@dataclass(frozen=True, slots=True)
class RunningIdP:
    """A started fake IdP: where it listens and its controls."""

    issuer: str
    control: IdPControl

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"


@asynccontextmanager
async def running_idp(
    *,
    users: Mapping[str, str] = DEMO_USERS,
    clock: Clock | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    audience: str = DEFAULT_AUDIENCE,
    tenant_claim: str = "tenant",
    token_lifetime_seconds: float = 3600.0,
) -> AsyncIterator[RunningIdP]:
    """Serve a fake IdP on ``host:port`` (``0``: a free port) until the block exits."""
    control = IdPControl(
        clock=clock if clock is not None else SystemClock(),
        users=users,
        audience=audience,
        tenant_claim=tenant_claim,
        token_lifetime_seconds=token_lifetime_seconds,
    )
    runner = web.AppRunner(create_idp_app(control), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        url_host = f"[{host}]" if ":" in host else host
        control.issuer = f"http://{url_host}:{runner.addresses[0][1]}"
        yield RunningIdP(issuer=control.issuer, control=control)
    finally:
        await runner.cleanup()
