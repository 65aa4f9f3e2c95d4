"""End-user JWTs through the real gateway, against the simulator and a fake IdP on loopback.

Every token and claim value a test makes is registered as a secret: the per-test leak check
fails the test if any response or log line holds one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.admission import jwks as jwks_module
from gateway.admission import tokens as tokens_module
from gateway.admission.api_keys import hash_key
from gateway.admission.tokens import REFUSAL_KEPT_SECONDS, TokenAuthenticator
from gateway.clock import ManualClock
from gateway.config.settings import OidcIssuer, OidcSettings, Tenant
from gateway.simulator.idp import RunningIdP, running_idp
from gateway.web.appkeys import ADMISSION
from tests.api.conftest import ACME, ACME_KEY, GLOBEX_KEY, Gateway, GatewayFactory, held_by_the_gateway
from tests.api.test_hit_path import comparable, without_timing
from tests.leaks import register_secrets

pytestmark = pytest.mark.asyncio

ALICE, BOB, CAROL = "alice-user-5d1", "bob-user-8e2", "carol-user-0f3"
ACME_CLAIM, GLOBEX_CLAIM, UNMAPPED_CLAIM = "acme-claim-a71c", "globex-claim-b62d", "nobody-claim-c93e"
register_secrets([ALICE, BOB, CAROL, ACME_CLAIM, GLOBEX_CLAIM, UNMAPPED_CLAIM])
REFRESH, COOLDOWN, STALE = 300.0, 30.0, 600.0
LIST = "/v1/training-jobs?limit=20"


def oidc_tenants() -> tuple[Tenant, ...]:
    return (
        Tenant("acme", "acme-web", (hash_key(ACME_KEY),), oidc=(("corp", (ACME_CLAIM,)),)),
        Tenant("globex", "globex-app", (hash_key(GLOBEX_KEY),), oidc=(("corp", (GLOBEX_CLAIM,)),)),
    )


def issuer_settings(idp: RunningIdP) -> OidcSettings:
    return OidcSettings(
        issuers=(
            OidcIssuer(
                name="corp",
                issuer=idp.issuer,
                jwks_uri=idp.jwks_uri,
                audiences=("metastudio-gateway",),
                algorithms=("RS256", "ES256"),
                leeway_seconds=30,
                jwks_refresh_seconds=REFRESH,
                jwks_refetch_cooldown_seconds=COOLDOWN,
                jwks_stale_if_error_seconds=STALE,
            ),
        )
    )


@pytest.fixture
async def idp(clock: ManualClock) -> AsyncIterator[RunningIdP]:
    users = {ALICE: ACME_CLAIM, BOB: GLOBEX_CLAIM, CAROL: UNMAPPED_CLAIM}
    async with running_idp(users=users, clock=clock) as running:
        yield running


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, idp: RunningIdP) -> Gateway:
    """A gateway trusting the fake IdP, whose acme and globex tenants also keep their API keys."""
    return await make_gateway(tenants=oidc_tenants(), oidc=issuer_settings(idp))


def secret(token: str) -> str:
    """Register a token (and its payload and signature parts) as secrets; return it."""
    register_secrets([token, *token.split(".")[1:]])
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret(token)}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A JWT crafted by hand (PyJWT refuses to make these)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


async def answer(gateway: Gateway, headers: dict[str, str], target: str = LIST) -> tuple[int, dict[str, str], Any]:
    async with gateway.client.get(target, headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


async def until(condition: Callable[[], Awaitable[bool]], tries: int = 200) -> bool:
    """Poll ``condition`` (bounded: ``tries`` × 10 ms) until it holds."""
    for _ in range(tries):
        if await condition():
            return True
        await asyncio.sleep(0.01)
    return False


def attacks(idp: RunningIdP, clock: ManualClock) -> dict[str, str]:
    control = idp.control
    kid = control.signing_kid()
    now = int(clock.now())
    claims = control.standard_claims(ALICE)
    valid = control.issue(ALICE)
    head, payload, signature = valid.split(".")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered["tenant"] = GLOBEX_CLAIM
    pem, jwk = control.public_pem(kid), json.dumps(control.public_jwk(kid)).encode()
    return {
        "alg none": hand_made({"alg": "none", "typ": "JWT", "kid": kid}, claims, lambda _: b""),
        "HS256 keyed with the public key (PEM)": hand_made(
            {"alg": "HS256", "typ": "JWT", "kid": kid},
            claims,
            lambda data: hmac.new(pem, data, hashlib.sha256).digest(),
        ),
        "HS256 keyed with the public key (JWK)": hand_made(
            {"alg": "HS256", "typ": "JWT", "kid": kid},
            claims,
            lambda data: hmac.new(jwk, data, hashlib.sha256).digest(),
        ),
        "forged signature": jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid}),
        "tampered payload": f"{head}.{b64(json.dumps(tampered).encode())}.{signature}",
        "expired": control.issue(ALICE, claims={"iat": now - 7200, "exp": now - 60}),
        "future nbf": control.issue(ALICE, claims={"nbf": now + 3600}),
        "wrong aud": control.issue(ALICE, claims={"aud": "another-api"}),
        "missing aud": control.issue(ALICE, claims={"aud": None}),
        "missing exp": control.issue(ALICE, claims={"exp": None}),
        "iss with a prefix": control.issue(ALICE, claims={"iss": "x" + idp.issuer}),
        "iss with a suffix": control.issue(ALICE, claims={"iss": idp.issuer + "/"}),
        # Unverified claims are any JSON: an unhashable iss once raised TypeError (a 500), not a 401.
        "iss as a list": hand_made({"alg": "RS256", "kid": kid}, {**claims, "iss": [idp.issuer]}, lambda _: b"x" * 256),
        "iss as an object": hand_made(
            {"alg": "RS256", "kid": kid}, {**claims, "iss": {"iss": idp.issuer}}, lambda _: b"x" * 256
        ),
        "disallowed alg (PS256)": control.sign(claims, signed_as="PS256"),
        "unknown crit": control.issue(ALICE, headers={"crit": ["exp-ext"], "exp-ext": True}),
        # Signed by the IdP, with its keys, but not access tokens (RFC 8725 3.11): a logout token,
        # a security event token, a DPoP proof, a typ that is no string.
        "logout token": control.issue(ALICE, headers={"typ": "logout+jwt"}),
        "security event token": control.issue(ALICE, headers={"typ": "application/secevent+jwt"}),
        "DPoP proof": control.issue(ALICE, headers={"typ": "dpop+jwt"}),
        "typ as a number": control.issue(ALICE, headers={"typ": 42}),
        "20 KB token": control.issue(ALICE, claims={"pad": "p" * 15 * 1024}),
        # JSON as Python reads it has NaN and Infinity (every comparison with NaN is false: a token
        # that never expired), and integers past a float's range (float() raised: a 500).
        "exp NaN": control.issue(ALICE, claims={"exp": math.nan}),
        "exp Infinity": control.issue(ALICE, claims={"exp": math.inf}),
        "nbf NaN": control.issue(ALICE, claims={"nbf": math.nan}),
        "exp of 400 digits": control.issue(ALICE, claims={"exp": 10**400}),
        "iat of 400 digits": control.issue(ALICE, claims={"iat": 10**400}),
        "malformed": f"{head}.{payload}",
        "malformed parts": "eyJub3QiOiJqc29uIn0.@@@.###",
    }


async def test_every_attack_gets_401_invalid_token_saying_why(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """Each forged, tampered, expired, misdirected or oversized token gets 401 unauthenticated with
    WWW-Authenticate error="invalid_token" and a reason; nothing reaches the upstream, and no
    answer or log line holds the token or a claim value (the leak check)."""
    before = idp.control.jwks_fetches
    status, _, _ = await answer(gateway, bearer(idp.control.issue(ALICE)))
    assert status == 200
    calls = gateway.upstream_calls
    reasons = {}
    tokens = attacks(idp, clock)
    assert len(tokens["20 KB token"]) >= 20_000
    for name, token in tokens.items():
        status, headers, body = await answer(gateway, bearer(token))
        assert (status, body["error"]["code"]) == (401, "unauthenticated"), name
        challenge = headers["WWW-Authenticate"]
        assert 'error="invalid_token"' in challenge, name
        reasons[name] = challenge.split('error_description="')[1].rstrip('"')
        assert reasons[name] in body["error"]["message"], name
    assert gateway.upstream_calls == calls
    assert reasons["expired"] == "the token has expired"
    assert reasons["forged signature"] == reasons["tampered payload"] == "the token's signature does not verify"
    assert reasons["20 KB token"] == "the token is longer than 8192 bytes"
    assert reasons["unknown crit"].startswith("the token has critical header parameters")
    other_kinds = ("logout token", "security event token", "DPoP proof", "typ as a number")
    assert {reasons[name] for name in other_kinds} == {
        "the token is not an access token (its typ names another kind of JWT)"
    }
    assert reasons["alg none"] == reasons["disallowed alg (PS256)"] == "the token's signature algorithm is not allowed"
    assert reasons["iss as a list"] == reasons["iss as an object"] == "the token's issuer is not accepted"
    odd_times = ("exp NaN", "exp Infinity", "nbf NaN", "exp of 400 digits", "iat of 400 digits")
    assert {reasons[name] for name in odd_times} == {"the token's exp, nbf or iat is not a finite number"}
    assert idp.control.jwks_fetches == before + 1  # the start-up fetch: a bad signature fetches nothing


@pytest.mark.parametrize("kind", ["JWT", "at+jwt", "application/at+jwt", "AT+JWT", None])
async def test_an_access_token_is_accepted_whatever_its_typ_says_of_it(
    gateway: Gateway, idp: RunningIdP, kind: str | None
) -> None:
    """An access token's typ may be JWT (most IdPs), at+jwt (RFC 9068), with or without
    application/ and in any case, or absent: each is accepted."""
    status, _, _ = await answer(gateway, bearer(idp.control.issue(ALICE, headers={"typ": kind})))
    assert status == 200


async def test_the_verified_tokens_remembered_hold_at_most_their_bytes(
    gateway: Gateway, idp: RunningIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 users' tokens of 7.5 KB each (claims padded, as some IdPs' group lists are), each
    accepted once, with VERIFIED_TOKEN_BYTES at 1 MiB here (16 MiB as shipped): what the gateway
    holds afterwards stays near the bound, not 2.2 MB. Only the count bounded them: 10,000 such
    tokens, 79 MiB."""
    monkeypatch.setattr(tokens_module, "VERIFIED_TOKEN_BYTES", 1 << 20, raising=False)
    pad = "g" * 5400
    # Not registered as secrets, as bearer() would: the leak check would then compare every answer
    # and log line with each of them. They are ALICE's, whose claim value is registered.
    headers = [
        {"Authorization": f"Bearer {idp.control.issue(ALICE, algorithm='ES256', claims={'groups': f'{n}{pad}'})}"}
        for n in range(300)
    ]
    tracemalloc.start()
    try:
        for header in headers:
            assert (await answer(gateway, header))[0] == 200
        held = held_by_the_gateway()
    finally:
        tracemalloc.stop()
    assert len(headers[0]["Authorization"]) > 7_500
    assert held < 3 << 19  # 1.5 MiB


async def test_a_token_only_in_the_query_is_not_read(gateway: Gateway, idp: RunningIdP) -> None:
    """A valid token passed as a query parameter, with no Authorization header, gets 401."""
    token = secret(idp.control.issue(ALICE))
    for parameter in ("access_token", "token", "jwt"):
        status, _, body = await answer(gateway, {}, f"{LIST}&{parameter}={token}")
        assert (status, body["error"]["code"]) == (401, "unauthenticated")


async def test_tokens_act_as_their_tenant_and_never_see_anothers_jobs(gateway: Gateway, idp: RunningIdP) -> None:
    """alice's token sees exactly what acme's API key sees; bob's token (globex) sees none of it."""
    _, _, by_key = await answer(gateway, ACME)
    _, _, alice = await answer(gateway, bearer(idp.control.issue(ALICE)))
    _, _, bob = await answer(gateway, bearer(idp.control.issue(BOB, algorithm="ES256")))
    acme_jobs = {job["job_id"] for job in by_key["jobs"]}
    assert {job["job_id"] for job in alice["jobs"]} == acme_jobs
    assert bob["jobs"] and not acme_jobs & {job["job_id"] for job in bob["jobs"]}
    assert (
        gateway.metric(
            "metastudio_gateway_http_requests_total",
            route="/v1/training-jobs",
            method="GET",
            status="200",
            tenant="globex",
        )
        == 1
    )


async def test_a_valid_token_that_maps_to_no_tenant_is_forbidden(gateway: Gateway, idp: RunningIdP) -> None:
    """A genuine token whose tenant claim names no tenant gets 403 forbidden."""
    status, headers, body = await answer(gateway, bearer(idp.control.issue(CAROL)))
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "WWW-Authenticate" not in headers
    assert gateway.metric("metastudio_gateway_jwt_validations_total", issuer="corp", result="no_tenant") == 1


async def test_start_up_does_not_wait_for_the_idp(make_gateway: GatewayFactory, idp: RunningIdP) -> None:
    """With the IdP down from the start, API keys work at once and tokens get 503 auth_unavailable
    with Retry-After; once the IdP is back (and the cooldown passed) tokens work."""
    idp.control.outage = True
    gateway = await make_gateway(tenants=oidc_tenants(), oidc=issuer_settings(idp))
    status, _, _ = await answer(gateway, ACME)
    assert status == 200
    token = bearer(idp.control.issue(ALICE))
    status, headers, body = await answer(gateway, token)
    assert (status, body["error"]["code"]) == (503, "auth_unavailable")
    assert int(headers["Retry-After"]) >= 1
    idp.control.outage = False
    gateway.clock.advance(COOLDOWN)
    status, _, _ = await answer(gateway, token)
    assert status == 200


async def test_a_key_set_url_that_redirects_is_not_followed(
    make_gateway: GatewayFactory, idp: RunningIdP, caplog: pytest.LogCaptureFixture
) -> None:
    """The keys come from the configured URL only: a redirect (an open redirect on the IdP's
    host, or to plain http) is a failed fetch, logged with the status, and tokens get 503
    auth_unavailable, as with no keys at all. aiohttp followed it, and the keys found at the end
    signed tokens for every tenant."""
    caplog.set_level(logging.WARNING, logger="gateway.admission.jwks")
    idp.control.jwks_redirect = idp.jwks_uri + "/moved"  # serves the IdP's own keys
    gateway = await make_gateway(tenants=oidc_tenants(), oidc=issuer_settings(idp))
    fetched = lambda: gateway.metric("metastudio_gateway_jwks_fetches_total", issuer="corp", result="bad_status") == 1  # noqa: E731
    assert await until(lambda: asyncio.sleep(0, fetched()))
    status, _, body = await answer(gateway, bearer(idp.control.issue(ALICE)))
    assert (status, body["error"]["code"]) == (503, "auth_unavailable")
    said = [record.getMessage() for record in caplog.records if record.name == "gateway.admission.jwks"]
    assert said == [
        "JWKS fetch for corp failed: the key set's URL answered 302 (a redirect: it is not followed;"
        " configure the URL it points to); its tokens are refused (503) meanwhile"
    ]


async def test_a_published_rsa_key_under_2048_bits_is_not_used(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """A JWKS key too short to trust (RSA under 2048 bits, PyJWT's minimum: 512 bits factor in
    hours) is dropped as unusable, so a token it signs gets 401 after the one fetch its kid
    causes; the other keys stay in use. (It was used: PyJWT only warned.)"""
    assert (await answer(gateway, bearer(idp.control.issue(ALICE))))[0] == 200
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    short_jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(short.public_key(), as_dict=True), "kid": "short", "alg": "RS256"}
    idp.control.jwks_body = json.dumps({"keys": [*idp.control.jwks()["keys"], short_jwk]}).encode()
    clock.advance(COOLDOWN)
    before = idp.control.jwks_fetches
    with pytest.warns(jwt.InsecureKeyLengthWarning):  # PyJWT signs with it, and says why not to
        token = jwt.encode(idp.control.standard_claims(ALICE), short, algorithm="RS256", headers={"kid": "short"})
    status, headers, _ = await answer(gateway, bearer(token))
    assert status == 401
    assert "the token's key id is not one of the issuer's keys" in headers["WWW-Authenticate"]
    assert idp.control.jwks_fetches == before + 1
    assert (await answer(gateway, bearer(idp.control.issue(ALICE))))[0] == 200


async def test_random_kids_cause_at_most_one_fetch(gateway: Gateway, idp: RunningIdP, clock: ManualClock) -> None:
    """200 tokens with made-up kids over 10 s (of the clock) get 401 and cause at most one key fetch."""
    status, _, _ = await answer(gateway, bearer(idp.control.issue(ALICE)))
    assert status == 200
    clock.advance(COOLDOWN)
    before = idp.control.jwks_fetches
    for _ in range(200):
        token = idp.control.issue(ALICE, headers={"kid": secrets.token_hex(8)})
        status, headers, _ = await answer(gateway, bearer(token))
        assert status == 401 and "key id" in headers["WWW-Authenticate"]
        clock.advance(0.05)
    assert idp.control.jwks_fetches - before <= 1


async def test_a_rotation_is_fetched_for_when_the_clock_has_stepped_back(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """The cooldown between key fetches has passed when the wall clock steps back an hour and the
    IdP rotates its key: a token under the new key causes one fetch and is accepted (the cooldown
    is not an hour longer)."""
    assert (await answer(gateway, bearer(idp.control.issue(ALICE))))[0] == 200
    clock.advance(COOLDOWN)
    clock.advance(-3600)
    idp.control.rotate()
    before = idp.control.jwks_fetches
    assert (await answer(gateway, bearer(idp.control.issue(ALICE, claims={"jti": "new"}))))[0] == 200
    assert idp.control.jwks_fetches == before + 1


async def test_a_key_fetch_that_fails_unexpectedly_does_not_stop_the_next_ones(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IdP rotates its key and the fetch it causes fails in a way nobody planned for (a bug
    reading the key set): that token is refused, and after the cooldown the next token under the
    new key causes another fetch and is accepted (the keeper did not die with the first)."""
    assert (await answer(gateway, bearer(idp.control.issue(ALICE))))[0] == 200
    clock.advance(COOLDOWN)
    idp.control.rotate()
    parse = jwks_module.parse_jwks

    def fails_once(*args: Any) -> Any:
        monkeypatch.setattr(jwks_module, "parse_jwks", parse)
        raise RuntimeError("a bug")

    monkeypatch.setattr(jwks_module, "parse_jwks", fails_once)
    assert (await answer(gateway, bearer(idp.control.issue(ALICE, claims={"jti": "one"}))))[0] == 401
    clock.advance(COOLDOWN)
    before = idp.control.jwks_fetches
    assert (await answer(gateway, bearer(idp.control.issue(ALICE, claims={"jti": "two"}))))[0] == 200
    assert idp.control.jwks_fetches == before + 1


async def test_a_token_refused_while_the_clock_ran_ahead_is_accepted_once_it_is_corrected(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """The wall clock runs two hours ahead (a resumed VM) and a token valid for an hour is refused
    as expired; NTP steps the clock back and a few seconds pass: the same token is accepted (the
    one-second memo of refusals is not two hours long)."""
    token = bearer(idp.control.issue(ALICE))
    clock.advance(7200)
    status, headers, _ = await answer(gateway, token)
    assert status == 401 and "expired" in headers["WWW-Authenticate"]
    clock.advance(-7200)
    clock.advance(5)
    assert (await answer(gateway, token))[0] == 200


async def test_after_a_rotation_concurrent_requests_share_one_fetch(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """Tokens under a newly rotated key: 50 concurrent requests cause exactly one fetch, all 200."""
    status, _, _ = await answer(gateway, bearer(idp.control.issue(ALICE)))
    assert status == 200
    clock.advance(COOLDOWN)
    idp.control.rotate()
    before = idp.control.jwks_fetches
    tokens = [bearer(idp.control.issue(ALICE, claims={"jti": str(n)})) for n in range(50)]
    statuses = await asyncio.gather(*(answer(gateway, token) for token in tokens))
    assert [status for status, _, _ in statuses] == [200] * 50
    assert idp.control.jwks_fetches == before + 1


async def test_known_keys_work_through_an_outage_for_the_stale_window_then_503(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """While the IdP is down, the keys held keep verifying (cached and new tokens) until the refresh
    due plus the stale window; then tokens get 503 auth_unavailable with Retry-After."""
    cached = bearer(idp.control.issue(ALICE))
    assert (await answer(gateway, cached))[0] == 200
    idp.control.outage = True
    clock.advance(REFRESH + STALE - 1)
    assert (await answer(gateway, cached))[0] == 200
    assert (await answer(gateway, bearer(idp.control.issue(BOB))))[0] == 200
    clock.advance(2)
    for token in (cached, bearer(idp.control.issue(BOB))):
        status, headers, body = await answer(gateway, token)
        assert (status, body["error"]["code"]) == (503, "auth_unavailable")
        assert int(headers["Retry-After"]) >= 1
    status, _, _ = await answer(gateway, ACME)
    assert status == 200


async def test_a_removed_key_stops_working_within_one_refresh_even_for_cached_tokens(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """A token verified (and remembered) under a key the IdP then removes is refused once the next
    refresh has fetched the key set, while tokens under the new key work."""
    old = bearer(idp.control.issue(ALICE))
    assert (await answer(gateway, old))[0] == 200
    idp.control.rotate()
    idp.control.remove_key(idp.control.published_kids[0])
    before = idp.control.jwks_fetches
    clock.advance(REFRESH)

    async def refused() -> bool:
        return (await answer(gateway, old))[0] == 401

    assert await until(refused)
    assert idp.control.jwks_fetches == before + 1
    assert (await answer(gateway, bearer(idp.control.issue(ALICE))))[0] == 200


async def test_an_empty_or_garbage_key_set_never_replaces_good_keys(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock
) -> None:
    """Refreshes that answer an empty key set, garbage, or only unusable keys leave the keys held in use."""
    assert (await answer(gateway, bearer(idp.control.issue(ALICE))))[0] == 200
    clock.advance(REFRESH - COOLDOWN)
    for body in (b'{"keys": []}', b"<html>oops</html>", b'{"keys": [{"kty": "RSA", "kid": "x"}]}'):
        idp.control.jwks_body = body
        before = idp.control.jwks_fetches
        clock.advance(COOLDOWN)  # a refresh (or, after a failed one, a retry) is due

        async def fetched(before: int = before) -> bool:
            await answer(gateway, bearer(idp.control.issue(ALICE)))  # a token check wakes the keeper
            return idp.control.jwks_fetches > before

        assert await until(fetched)
        assert (await answer(gateway, bearer(idp.control.issue(BOB))))[0] == 200
    assert gateway.metric("metastudio_gateway_jwks_fetches_total", issuer="corp", result="garbage") == 3


async def test_a_cached_token_hit_is_answered_by_the_connection_like_the_chain(
    gateway: Gateway, idp: RunningIdP
) -> None:
    """A JWT whose token and list are both cached is answered without the handler chain, with the
    status, headers, body and log line the chain gives for the same request."""
    token = bearer(idp.control.issue(ALICE))
    assert (await answer(gateway, token))[0] == 200
    gateway.chain_statuses.clear()
    before = len(gateway.log_records())
    async with gateway.client.get(LIST, headers={**token, "X-Request-Id": "jwt-1"}) as response:
        fast = (response.status, dict(response.headers), await response.read())
    assert gateway.chain_statuses == []
    async with gateway.client.get(LIST, headers={**token, "X-Request-Id": "jwt-1", "Connection": "close"}) as response:
        reference = (response.status, dict(response.headers), await response.read())
    assert gateway.chain_statuses == [200]

    def normal(answer: tuple[int, dict[str, str], bytes]) -> Any:
        status, headers, body = answer
        return comparable(
            type("R", (), {"status": status, "headers": {k.lower(): v for k, v in headers.items()}, "body": body})()
        )

    assert normal(fast) == normal(reference)
    fast_log, reference_log = gateway.log_records()[before:]
    assert without_timing(fast_log) == without_timing(reference_log)
    assert fast_log["tenant"] == "acme" and fast_log["cache"] == "hit"


async def test_spaces_around_a_credential_are_accepted_and_not_remembered(gateway: Gateway, idp: RunningIdP) -> None:
    """``Bearer`` and then spaces around an API key or a token is accepted, as it always was; such
    headers are not remembered by the caller memos, or a client could make one credential
    thousands of entries, each as long as a request head allows."""
    token = secret(idp.control.issue(ALICE))
    admission = gateway.app[ADMISSION]
    for credential in (ACME_KEY, token):
        assert (await answer(gateway, {"Authorization": f"Bearer {' ' * 4000}{credential}  "}))[0] == 200
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for padding in range(100):
                assert admission.caller(f"Bearer {' ' * (8000 + padding)}{credential}") is not None
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 100_000  # remembered, the 100 headers of 8 KB would hold 800 KB


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature the gateway checks, as it checks them."""
    checked: list[str] = []
    verify = TokenAuthenticator._verify

    def counting(self: TokenAuthenticator, token: str) -> Any:
        checked.append(token)
        return verify(self, token)

    monkeypatch.setattr(TokenAuthenticator, "_verify", counting)
    return checked


async def test_a_forged_token_is_verified_once_not_by_both_paths(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock, verified: list[str]
) -> None:
    """The connection's check refuses a forged token and hands it to the chain, which answers the
    401 from that verdict instead of verifying the signature again (a forged RS256 token costs
    ~110 µs to check). The verdict is kept for ``REFUSAL_KEPT_SECONDS``, then checked afresh; each
    request's refusal is counted once."""
    forged = bearer(attacks(idp, clock)["forged signature"])
    for sent in (1, 2):
        status, headers, _ = await answer(gateway, forged)
        assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
        verifications = len(verified)  # not the list: a failure would print the tokens
        assert verifications == 1
        assert gateway.metric("metastudio_gateway_jwt_validations_total", issuer="corp", result="bad_signature") == sent
    clock.advance(REFUSAL_KEPT_SECONDS)
    assert (await answer(gateway, forged))[0] == 401
    verifications = len(verified)
    assert verifications == 2


@pytest.mark.parametrize("padding", ["", "  "], ids=["sent plainly", "with spaces"])
@pytest.mark.parametrize(("token_kind", "status"), [("forged", 401), ("no tenant", 403)])
async def test_a_refused_token_is_verified_once_per_second_however_it_is_sent(
    gateway: Gateway,
    idp: RunningIdP,
    clock: ManualClock,
    verified: list[str],
    padding: str,
    token_kind: str,
    status: int,
) -> None:
    """Twenty requests in a second with one refused token: a forged one (401) or a valid one
    naming no tenant (403), sent plainly or with spaces around it, cost one verification. The
    verdict was kept only for an invalid token sent plainly: a 403, or spaces, made every request
    two signature checks (the connection's and the chain's), 40 for 20 requests."""
    token = attacks(idp, clock)["forged signature"] if token_kind == "forged" else idp.control.issue(CAROL)
    headers = {"Authorization": f"Bearer {padding}{secret(token)}{padding}"}
    for _ in range(20):
        assert (await answer(gateway, headers))[0] == status
    verifications = len(verified)  # not the list: a failure would print the tokens
    assert verifications == 1


async def test_a_token_is_verified_and_counted_once_for_a_request_the_chain_answers(
    gateway: Gateway, idp: RunningIdP
) -> None:
    """A valid token sent with spaces (accepted, not remembered) to a route or query the
    connection does not answer: the chain verifies and counts it, the connection no longer does
    so first (each such request counted two ok validations, and /healthz one)."""
    padded = {"Authorization": f"Bearer   {secret(idp.control.issue(ALICE))}"}
    ok = {"issuer": "corp", "result": "ok"}
    for target, status in ((f"{LIST}?limit=0", 400), ("/v1/training-jobs/not%20a%20job", 400), ("/healthz", 200)):
        before = gateway.metric("metastudio_gateway_jwt_validations_total", **ok)
        assert (await answer(gateway, padded, target))[0] == status
        expected = 0 if target == "/healthz" else 1  # the health check takes no credential
        assert gateway.metric("metastudio_gateway_jwt_validations_total", **ok) - before == expected


async def test_a_key_set_outage_is_logged_when_it_starts_and_when_it_ends(
    gateway: Gateway, idp: RunningIdP, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The IdP's key set fails to load: one warning saying why and until when the keys held stay
    in use, not one per failed fetch, and one line when a fetch works again (a failure was only
    counted: 503 auth_unavailable came with nothing in the log saying why)."""
    caplog.set_level(logging.INFO, logger="gateway.admission.jwks")

    async def fetched(result: str, times: int) -> bool:
        return gateway.metric("metastudio_gateway_jwks_fetches_total", issuer="corp", result=result) == times

    cached = bearer(idp.control.issue(ALICE))
    assert (await answer(gateway, cached))[0] == 200
    idp.control.outage = True
    for times in (1, 2):
        clock.advance(REFRESH)
        await answer(gateway, cached)  # a cached token's check nudges the refresh due
        assert await until(lambda times=times: fetched("bad_status", times))
    idp.control.outage = False
    clock.advance(COOLDOWN)
    await answer(gateway, cached)
    assert await until(lambda: fetched("ok", 2))
    said = [record.getMessage() for record in caplog.records if record.name == "gateway.admission.jwks"]
    assert len(said) == 2
    failed = "JWKS fetch for corp failed: the key set's URL answered 503; the keys held stay in use until "
    assert said[0].startswith(failed)
    assert said[1] == "JWKS fetch for corp works again"
