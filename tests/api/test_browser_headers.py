"""Browser-safe headers on every answer: nosniff everywhere, errors never stored, Timing-Allow-Origin and
Vary: Origin for allowed origins only, CORS without credentials, and cover redirects that send no
referrer and may be embedded from any origin."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ACME, APP, EVIL, Gateway

pytestmark = pytest.mark.asyncio


async def a_job_with_a_cover(gateway: Gateway) -> dict[str, Any]:
    jobs = (await (await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)).json())["jobs"]
    return next(job for job in jobs if "cover_image_url" in job)


async def every_kind_of_answer(gateway: Gateway) -> list[tuple[str, Any]]:
    """(what, response) for each kind of answer the gateway gives, the fast path's hit included
    (checked: the handler chain did not prepare it)."""
    job = await a_job_with_a_cover(gateway)
    list_ = "/v1/training-jobs?limit=100"
    etag = (await gateway.client.get(list_, headers=ACME)).headers["ETag"]
    preflight = {
        "Origin": APP,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    requests = [
        ("miss", "GET", "/v1/training-jobs?limit=3", ACME),
        ("hit (fast path)", "GET", list_, ACME),
        ("hit (handler chain)", "GET", list_, {**ACME, "Connection": "close"}),
        ("304", "GET", list_, {**ACME, "If-None-Match": etag}),
        ("HEAD", "HEAD", list_, ACME),
        ("401", "GET", list_, {}),
        ("400", "GET", "/v1/training-jobs?limit=0", ACME),
        ("404", "GET", "/nowhere", {}),
        ("405", "POST", list_, ACME),
        ("preflight", "OPTIONS", list_, preflight),
        ("cover redirect", "GET", job["cover_url"], ACME),
        ("image link redirect", "GET", job["cover_image_url"], {}),
        ("image link refused", "GET", job["cover_image_url"].replace("sig=", "sig=x"), {}),
        ("healthz", "GET", "/healthz", {}),
        ("readyz", "GET", "/readyz", {}),
        ("metrics", "GET", "/metrics", {}),
        ("openapi", "GET", "/openapi.yaml", {}),
    ]
    answers = []
    for what, method, path, headers in requests:
        prepared = len(gateway.chain_statuses)
        response = await gateway.client.request(method, path, headers=headers, allow_redirects=False)
        await response.read()
        if what == "hit (fast path)":
            assert len(gateway.chain_statuses) == prepared, "the hit went through the handler chain"
        answers.append((what, response))
    return answers


async def test_every_answer_says_nosniff(cors_gateway: Gateway) -> None:
    """Success, 304, every error, preflight, redirects, operational endpoints, and the fast path's hits."""
    for what, response in await every_kind_of_answer(cors_gateway):
        assert response.headers.get("X-Content-Type-Options") == "nosniff", what


async def test_errors_and_answers_about_the_moment_are_never_stored(cors_gateway: Gateway) -> None:
    """Every error answer, and /healthz, /readyz and /metrics, carry Cache-Control: no-store (a
    CDN or proxy in front keeps an answer without Cache-Control by its own heuristic, RFC 9111
    4.2.2: a draining replica's "ready", frozen metrics); /openapi.yaml is revalidated (no-cache);
    lists, jobs and redirects keep their own caching headers."""
    for what, response in await every_kind_of_answer(cors_gateway):
        if response.status >= 400 or what in ("healthz", "readyz", "metrics"):
            assert response.headers["Cache-Control"] == "no-store", what
        elif what == "openapi":
            assert response.headers["Cache-Control"] == "no-cache", what
        else:
            assert response.headers.get("Cache-Control") != "no-store", what


async def test_every_answer_names_the_product_and_no_version(cors_gateway: Gateway) -> None:
    """Server: metastudio-gateway on every kind of answer, the fast path's hits included; it was
    aiohttp's "Python/3.11 aiohttp/3.14.5", versions a scanner reads to pick known flaws."""
    for what, response in await every_kind_of_answer(cors_gateway):
        assert response.headers.getall("Server") == ["metastudio-gateway"], what


async def test_cover_redirects_send_no_referrer_and_may_be_embedded_anywhere(gateway: Gateway) -> None:
    """Both /cover and the signed image link: Referrer-Policy no-referrer, CORP cross-origin."""
    job = await a_job_with_a_cover(gateway)
    for path, headers in ((job["cover_url"], ACME), (job["cover_image_url"], {})):
        response = await gateway.client.get(path, headers=headers, allow_redirects=False)
        assert response.status == 302
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


async def test_allowed_origins_get_timing_allow_origin_and_vary(cors_gateway: Gateway) -> None:
    """An allowed Origin gets Timing-Allow-Origin naming it (and Vary: Origin) on a miss, a hit and an error."""
    for headers in (ACME, ACME, {}):
        response = await cors_gateway.client.get("/v1/training-jobs", headers={**headers, "Origin": APP})
        assert response.headers["Timing-Allow-Origin"] == APP
        vary = [name.strip() for value in response.headers.getall("Vary") for name in value.split(",")]
        assert "Origin" in vary


async def test_other_origins_get_vary_but_no_timing_or_cors(cors_gateway: Gateway) -> None:
    """Another Origin (or none) gets Vary: Origin, since the answer depends on it, and nothing else."""
    for origin in ({"Origin": EVIL}, {}):
        response = await cors_gateway.client.get("/v1/training-jobs", headers={**ACME, **origin})
        assert "Timing-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Origin" in response.headers["Vary"]


async def test_cors_never_allows_credentials_and_names_authorization(cors_gateway: Gateway) -> None:
    """Preflight approval lists Authorization by name (not *); no answer ever allows credentials."""
    answers = await every_kind_of_answer(cors_gateway)
    preflight = dict(answers)["preflight"]
    approved = [name.strip() for name in preflight.headers["Access-Control-Allow-Headers"].split(",")]
    assert "Authorization" in approved and "*" not in approved
    assert preflight.headers["Access-Control-Allow-Origin"] == APP
    for what, response in answers:
        assert "Access-Control-Allow-Credentials" not in response.headers, what
