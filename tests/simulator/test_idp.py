"""The fake identity provider, over real HTTP: discovery, keys, tokens and its failure controls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.clock import ManualClock
from gateway.simulator.idp import RunningIdP, running_idp


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def idp(clock: ManualClock) -> AsyncIterator[RunningIdP]:
    async with running_idp(clock=clock, token_lifetime_seconds=600) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _jwks(session: aiohttp.ClientSession, idp: RunningIdP) -> tuple[int, Any]:
    async with session.get(idp.jwks_uri) as response:
        return response.status, await response.json(content_type=None)


def _verify(token: str, jwks: dict[str, Any], idp: RunningIdP, clock: ManualClock) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[key.algorithm_name],
        audience="metastudio-gateway",
        issuer=idp.issuer,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iat"] == int(clock.now())
    return claims


async def test_discovery_names_the_issuer_keys_and_token_endpoint(
    idp: RunningIdP, session: aiohttp.ClientSession
) -> None:
    """The OpenID configuration points at this server's JWKS and token endpoint."""
    async with session.get(f"{idp.issuer}/.well-known/openid-configuration") as response:
        document = await response.json()
    assert document["issuer"] == idp.issuer
    assert document["jwks_uri"] == idp.jwks_uri
    assert document["token_endpoint"] == idp.token_url


async def test_the_token_endpoint_issues_verifiable_tokens_for_demo_users(
    idp: RunningIdP, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A form or JSON sign-in gets a JWT that verifies against the published keys and carries
    iss, aud, sub, iat, exp (the configured lifetime) and the tenant claim."""
    _, jwks = await _jwks(session, idp)
    for body in ({"data": {"username": "alice"}}, {"json": {"username": "alice"}}):
        async with session.post(idp.token_url, **body) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            answer = await response.json()
        assert answer["token_type"] == "Bearer" and answer["expires_in"] == 600
        claims = _verify(answer["access_token"], jwks, idp, clock)
        assert claims["sub"] == "alice" and claims["tenant"] == "acme"
        assert claims["exp"] == claims["iat"] + 600


async def test_an_unknown_user_gets_invalid_grant(idp: RunningIdP, session: aiohttp.ClientSession) -> None:
    """Signing in as a user the IdP does not know answers 400 invalid_grant."""
    async with session.post(idp.token_url, json={"username": "mallory"}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_grant"


async def test_keys_are_rsa_and_ec_signing_keys(idp: RunningIdP, session: aiohttp.ClientSession) -> None:
    """The JWKS holds an RS256 and an ES256 key, each with kid, alg and use=sig, and no private part."""
    _, jwks = await _jwks(session, idp)
    assert sorted((k["kty"], k["alg"], k["use"]) for k in jwks["keys"]) == [
        ("EC", "ES256", "sig"),
        ("RSA", "RS256", "sig"),
    ]
    assert all("d" not in key for key in jwks["keys"])


async def test_rotation_publishes_a_new_signing_key_and_removal_unpublishes(
    idp: RunningIdP, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """After rotate() tokens carry the new kid, which the JWKS publishes; remove_key() drops a key."""
    old = idp.control.signing_kid()
    new = idp.control.rotate()
    token = idp.control.issue("bob")
    assert jwt.get_unverified_header(token)["kid"] == new != old
    _, jwks = await _jwks(session, idp)
    assert _verify(token, jwks, idp, clock)["tenant"] == "globex"
    idp.control.remove_key(old)
    _, jwks = await _jwks(session, idp)
    assert old not in {k["kid"] for k in jwks["keys"]} and new in {k["kid"] for k in jwks["keys"]}


async def test_an_outage_answers_503_and_every_fetch_is_counted(
    idp: RunningIdP, session: aiohttp.ClientSession
) -> None:
    """During an outage the JWKS answers 503; each JWKS request, failed or not, is counted."""
    await _jwks(session, idp)
    idp.control.outage = True
    status, _ = await _jwks(session, idp)
    assert status == 503
    idp.control.outage = False
    status, _ = await _jwks(session, idp)
    assert status == 200
    assert idp.control.jwks_fetches == 3


async def test_the_jwks_body_can_be_replaced_by_garbage(idp: RunningIdP, session: aiohttp.ClientSession) -> None:
    """jwks_body serves any bytes as the key set (to test what a client does with garbage)."""
    idp.control.jwks_body = b"not json"
    async with session.get(idp.jwks_uri) as response:
        assert await response.read() == b"not json"
