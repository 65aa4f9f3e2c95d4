"""CORS: browser frontends on allowed origins may call the gateway; others get nothing."""

from __future__ import annotations

import pytest

from tests.api.conftest import ACME, APP, EVIL, Gateway

pytestmark = pytest.mark.asyncio


async def test_allowed_origin_gets_cors_headers_on_success_and_errors(cors_gateway: Gateway) -> None:
    """An allowed Origin is echoed on 200, 401 and 302 answers, with the useful headers exposed
    (WWW-Authenticate too: a page can read why its token was refused)."""
    jobs = (await (await cors_gateway.client.get("/v1/training-jobs?limit=50", headers=ACME)).json())["jobs"]
    job_id = next(job["job_id"] for job in jobs if "cover_download_url" in job)
    for path, headers, status in (
        ("/v1/training-jobs", ACME, 200),
        ("/v1/training-jobs", {}, 401),
        (f"/v1/training-jobs/{job_id}/cover", ACME, 302),
    ):
        response = await cors_gateway.client.get(path, headers={**headers, "Origin": APP}, allow_redirects=False)
        assert response.status == status
        assert response.headers["Access-Control-Allow-Origin"] == APP
        exposed = {name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"ETag", "X-Cache", "X-Request-Id", "Age", "Retry-After", "WWW-Authenticate"} <= exposed
        vary = [name.strip() for value in response.headers.getall("Vary") for name in value.split(",")]
        assert "Origin" in vary


async def test_other_origins_get_no_cors_headers(cors_gateway: Gateway) -> None:
    """A non-allowed Origin gets the response but no Access-Control headers, so the browser withholds it."""
    response = await cors_gateway.client.get("/v1/training-jobs", headers={**ACME, "Origin": EVIL})
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


async def test_preflight_for_allowed_origin_approves_authorization(cors_gateway: Gateway) -> None:
    """OPTIONS with Access-Control-Request-* from an allowed origin: 204 approving GET and Authorization."""
    response = await cors_gateway.client.options(
        "/v1/training-jobs",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, if-none-match",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert cors_gateway.upstream_calls == 0


async def test_preflight_approves_the_headers_frontends_libraries_add(cors_gateway: Gateway) -> None:
    """A page instrumented by OpenTelemetry or Sentry, or whose HTTP client sets a JSON
    Content-Type on every GET, asks for those headers too: approved (the gateway reads none of
    them), where the preflight was refused and every call of the page failed."""
    asked = "authorization, content-type, traceparent, tracestate, baggage, sentry-trace, x-requested-with"
    response = await cors_gateway.client.options(
        "/v1/training-jobs",
        headers={"Origin": APP, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": asked},
    )
    assert response.status == 204
    approved = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert set(asked.split(", ")) <= approved
    traced = {**ACME, "Origin": APP, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    answer = await cors_gateway.client.get("/v1/training-jobs", headers={**traced, "Content-Type": "application/json"})
    assert (answer.status, answer.headers["Access-Control-Allow-Origin"]) == (200, APP)
    (upstream,) = cors_gateway.simulator.state.request_log
    assert "traceparent" not in {name.lower() for name in upstream.headers}  # nothing a caller sends goes upstream


@pytest.mark.parametrize(
    ("origin", "method", "asked"),
    [(EVIL, "GET", "authorization"), (APP, "DELETE", "authorization"), (APP, "GET", "authorization, x-evil")],
    ids=["other-origin", "unsafe-method", "unknown-header"],
)
async def test_preflight_not_approved(cors_gateway: Gateway, origin: str, method: str, asked: str) -> None:
    """Preflights from other origins, for other methods or extra headers are not approved."""
    response = await cors_gateway.client.options(
        "/v1/training-jobs",
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": asked},
    )
    assert response.status == 204
    assert "Access-Control-Allow-Methods" not in response.headers
    assert response.headers.get("Access-Control-Allow-Origin") in (None, APP)


async def test_options_on_an_unknown_route_is_404(cors_gateway: Gateway) -> None:
    """OPTIONS is answered for routes that exist only."""
    response = await cors_gateway.client.options("/nope", headers={"Origin": APP})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_without_origins_configured_no_cors_headers_at_all(gateway: Gateway) -> None:
    """By default (no allowed origins) the gateway sends no CORS headers to anyone."""
    response = await gateway.client.get("/v1/training-jobs", headers={**ACME, "Origin": APP})
    assert "Access-Control-Allow-Origin" not in response.headers
