"""``cover_image_url``: a signed gateway link a browser loads as ``<img src>``, with no Authorization header.

What a page (or an attacker holding a link) sees: a genuine link redirects to a live cover; an altered
one, another tenant's or one signed with an unknown key is 403; an expired one 410; links stay the same
within a quantisation step (so lists stay cacheable) and never live longer than the TTL plus one step.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from gateway.clock import ManualClock
from gateway.config.url_signing import UrlSigningKey
from tests.api.conftest import ACME, GLOBEX, URL_SIGNING_KEYS, Gateway, GatewayFactory
from tests.leaks import register_secrets

pytestmark = pytest.mark.asyncio
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TTL = 900
STEP = 90  # a tenth of the TTL (README: "Covers in the browser")
OLD_SECRET = "old-cover-image-link-signing-secret-000000001"
NEW_SECRET = "new-cover-image-link-signing-secret-000000002"
OLD_KEY = UrlSigningKey("old", OLD_SECRET.encode())
NEW_KEY = UrlSigningKey("new", NEW_SECRET.encode())
register_secrets([OLD_SECRET, NEW_SECRET])


async def jobs_with_covers(gateway: Gateway, headers: dict[str, str] = ACME) -> list[dict[str, Any]]:
    response = await gateway.client.get("/v1/training-jobs?limit=100", headers=headers)
    assert response.status == 200
    jobs = [job for job in (await response.json())["jobs"] if "cover_url" in job]
    assert len(jobs) >= 2
    return jobs


def link_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def with_params(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{urlencode({**link_params(url), **changes})}"


async def get_link(gateway: Gateway, url: str, method: str = "GET") -> Any:
    """Load a link as an <img> does: no Authorization header, redirect not followed here."""
    return await gateway.client.request(method, url, allow_redirects=False)


async def assert_refused(gateway: Gateway, url: str, status: int, code: str) -> None:
    response = await get_link(gateway, url)
    assert response.status == status, url
    assert (await response.json())["error"]["code"] == code
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers


async def test_a_link_redirects_to_the_live_cover_without_any_header(gateway: Gateway) -> None:
    """GET and HEAD of a job's cover_image_url with no Authorization: 302 to a PNG, cacheable privately
    no longer than the link lives, with no referrer and embeddable from any origin."""
    job = (await jobs_with_covers(gateway))[0]
    url = job["cover_image_url"]
    assert url.startswith(f"/v1/training-jobs/{job['job_id']}/cover-image?")
    for method in ("GET", "HEAD"):
        response = await get_link(gateway, url, method)
        assert response.status == 302
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        max_age = re.fullmatch(r"private, max-age=(\d+)", response.headers["Cache-Control"])
        assert max_age is not None
        assert 0 < int(max_age.group(1)) <= int(link_params(url)["exp"]) - gateway.clock.now()
    async with gateway.client.session.get(response.headers["Location"]) as image:
        assert image.status == 200
        assert (await image.read()).startswith(PNG_SIGNATURE)


async def test_single_job_bodies_carry_the_same_link(gateway: Gateway) -> None:
    """GET /v1/training-jobs/{id} carries the cover_image_url the list carries (same tenant, same moment)."""
    job = (await jobs_with_covers(gateway))[0]
    one = await (await gateway.client.get(f"/v1/training-jobs/{job['job_id']}", headers=ACME)).json()
    assert one["cover_image_url"] == job["cover_image_url"]


async def test_jobs_without_a_cover_have_no_link(gateway: Gateway) -> None:
    """A job with no cover has neither cover_url nor cover_image_url."""
    jobs = (await (await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)).json())["jobs"]
    without = [job for job in jobs if "cover_url" not in job]
    assert without
    assert all("cover_image_url" not in job for job in without)


async def test_public_base_url_makes_links_absolute(make_gateway: GatewayFactory) -> None:
    """With [server] public_base_url set, cover_image_url is absolute under it."""
    gateway = await make_gateway(public_base_url="https://covers.example.com/gw")
    job = (await jobs_with_covers(gateway))[0]
    assert job["cover_image_url"].startswith(f"https://covers.example.com/gw/v1/training-jobs/{job['job_id']}/")


@pytest.mark.parametrize(
    "change",
    [
        {"sig": "A" * 43},
        {"exp": "9999999999"},
        {"kid": "other"},
        {"tenant": "globex"},
        {"sig": ""},
        {"exp": "1e10"},
    ],
    ids=["sig", "exp", "kid", "tenant", "empty-sig", "exp-not-a-number"],
)
async def test_an_altered_link_is_forbidden(gateway: Gateway, change: dict[str, str]) -> None:
    """Changing the signature, the expiry, the key id or the tenant: 403 forbidden, never a redirect."""
    url = (await jobs_with_covers(gateway))[0]["cover_image_url"]
    await assert_refused(gateway, with_params(url, **change), 403, "forbidden")


async def test_a_link_moved_to_another_job_or_missing_a_parameter_is_forbidden(gateway: Gateway) -> None:
    """The signature of one job's link on another job's path, or a parameter left out: 403."""
    first, second = (await jobs_with_covers(gateway))[:2]
    moved = first["cover_image_url"].replace(first["job_id"], second["job_id"], 1)
    await assert_refused(gateway, moved, 403, "forbidden")
    for name in ("tenant", "exp", "kid", "sig"):
        params = {k: v for k, v in link_params(first["cover_image_url"]).items() if k != name}
        await assert_refused(gateway, f"{urlsplit(moved).path}?{urlencode(params)}", 403, "forbidden")


async def test_another_tenants_link_gives_nothing_of_the_other_tenant(gateway: Gateway) -> None:
    """A globex link relabelled as acme's, and an acme link pointed at a globex job: both 403."""
    acme_job = (await jobs_with_covers(gateway, ACME))[0]
    globex_job = (await jobs_with_covers(gateway, GLOBEX))[0]
    assert link_params(globex_job["cover_image_url"])["tenant"] == "globex"
    await assert_refused(gateway, with_params(globex_job["cover_image_url"], tenant="acme"), 403, "forbidden")
    stolen = acme_job["cover_image_url"].replace(acme_job["job_id"], globex_job["job_id"], 1)
    await assert_refused(gateway, stolen, 403, "forbidden")


async def test_unknown_or_repeated_parameters_are_refused_by_name(gateway: Gateway) -> None:
    """Like every route: a parameter the link does not have, or one given twice, is a 400 naming it."""
    url = (await jobs_with_covers(gateway))[0]["cover_image_url"]
    extra = await get_link(gateway, url + "&size=large")
    assert extra.status == 400
    assert "'size'" in (await extra.json())["error"]["message"]
    twice = await get_link(gateway, url + "&kid=test-k1")
    assert twice.status == 400
    assert "'kid'" in (await twice.json())["error"]["message"]


async def test_an_expired_link_is_gone(gateway: Gateway) -> None:
    """Once its expiry passes, a genuine link answers 410 link_expired (not 403): fetch the job again."""
    url = (await jobs_with_covers(gateway))[0]["cover_image_url"]
    gateway.clock.set(int(link_params(url)["exp"]) - 1)
    assert (await get_link(gateway, url)).status == 302
    gateway.clock.advance(1)
    await assert_refused(gateway, url, 410, "link_expired")


async def test_expiry_cannot_be_probed_with_a_forged_link(gateway: Gateway) -> None:
    """Past a link's expiry, a forged signature or a changed exp is still 403 forbidden, never 410:
    only a genuine link learns that it has expired (the signature is checked first)."""
    url = (await jobs_with_covers(gateway))[0]["cover_image_url"]
    exp = int(link_params(url)["exp"])
    gateway.clock.set(exp + 5)
    await assert_refused(gateway, with_params(url, sig="A" * 43), 403, "forbidden")
    await assert_refused(gateway, with_params(url, exp=str(exp - 1)), 403, "forbidden")
    await assert_refused(gateway, with_params(url, tenant="globex"), 403, "forbidden")
    await assert_refused(gateway, url, 410, "link_expired")


async def test_a_link_lives_at_least_the_ttl_and_at_most_one_step_longer(
    make_gateway: GatewayFactory, clock: ManualClock
) -> None:
    """Made at the very start or the very end of a quantisation step, a link works for the whole TTL
    and stops working no later than TTL + one step after it was made."""
    gateway = await make_gateway(ttl_seconds=1)
    step_start = STEP * 19_000_000
    for made_at in (step_start, step_start + STEP - 1):
        clock.set(made_at)
        url = (await jobs_with_covers(gateway))[0]["cover_image_url"]
        clock.set(made_at + TTL)
        assert (await get_link(gateway, url)).status == 302
        clock.set(made_at + TTL + STEP)
        assert (await get_link(gateway, url)).status == 410


async def test_lists_fetched_again_within_a_step_are_byte_identical(
    make_gateway: GatewayFactory, clock: ManualClock
) -> None:
    """Re-fetched from the upstream (cache TTL 1 s) anywhere within one step, a list whose upstream
    answer did not change is the same bytes with the same ETag; in the next step its links are new."""
    gateway = await make_gateway(ttl_seconds=1, cache={"stale_while_revalidate_seconds": 0})
    clock.set(STEP * 19_000_000)
    first = await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)
    first_body = await first.read()
    for later in (2, STEP - 1, STEP):
        clock.set(STEP * 19_000_000 + later)
        gateway.simulator.state.cover_issue_lag_seconds = later  # the upstream's own cover URLs stay put
        again = await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)
        assert again.headers["X-Cache"] == "MISS"
        if later < STEP:
            assert (await again.read(), again.headers["ETag"]) == (first_body, first.headers["ETag"])
    assert (await again.read()) != first_body
    assert b"cover_image_url" in first_body


async def test_a_list_never_carries_a_link_with_less_than_a_step_left(
    make_gateway: GatewayFactory, clock: ManualClock
) -> None:
    """With a cache TTL longer than the links' (60 s against 10 s), the list is re-fetched before its
    links get within one step (1 s) of expiry: every list served in 30 s holds only links with time left."""
    gateway = await make_gateway(ttl_seconds=60, covers={"image_url_ttl_seconds": 10})
    for _ in range(60):
        for job in await jobs_with_covers(gateway):
            assert int(link_params(job["cover_image_url"])["exp"]) - clock.now() >= 1
        clock.advance(0.5)


async def test_a_retired_key_id_is_forbidden_and_a_listed_old_one_still_works(
    make_gateway: GatewayFactory,
) -> None:
    """Rotation: links signed with the old key keep working while it is listed after the new one
    (new links use the new key); once the old key is dropped its links are 403."""
    before = await make_gateway(url_signing_keys=(OLD_KEY,))
    rotating = await make_gateway(url_signing_keys=(NEW_KEY, OLD_KEY))
    after = await make_gateway(url_signing_keys=(NEW_KEY,))
    old_link = (await jobs_with_covers(before))[0]["cover_image_url"]
    new_link = (await jobs_with_covers(rotating))[0]["cover_image_url"]
    assert (link_params(old_link)["kid"], link_params(new_link)["kid"]) == ("old", "new")
    assert (await get_link(rotating, old_link)).status == 302
    assert (await get_link(after, new_link)).status == 302
    await assert_refused(after, old_link, 403, "forbidden")


async def test_the_signature_never_reaches_the_access_log(gateway: Gateway) -> None:
    """Redirects, refusals and expiries are logged under the route template; no line holds a signature
    or any part of the link's query."""
    url = (await jobs_with_covers(gateway))[0]["cover_image_url"]
    params = link_params(url)
    await get_link(gateway, url)
    await get_link(gateway, with_params(url, sig="B" * 43))
    gateway.clock.set(int(params["exp"]))
    await get_link(gateway, url)
    log = gateway.log.getvalue()
    assert params["sig"].encode() not in log
    assert b"sig=" not in log and b"exp=" not in log
    routes = [r for r in gateway.log_records() if r.get("route", "").endswith("/cover-image")]
    assert [(r["route"], r["status"], r["tenant"]) for r in routes] == [
        ("/v1/training-jobs/{job_id}/cover-image", 302, "acme"),
        ("/v1/training-jobs/{job_id}/cover-image", 403, "anonymous"),
        ("/v1/training-jobs/{job_id}/cover-image", 410, "anonymous"),
    ]


async def test_without_keys_a_random_key_signs_and_a_warning_says_so(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """No GATEWAY_URL_SIGNING_KEYS: links still work on this gateway, and the process log warns, naming the variable."""
    with caplog.at_level(logging.WARNING):
        gateway = await make_gateway(url_signing_keys=())
    assert any("GATEWAY_URL_SIGNING_KEYS" in record.getMessage() for record in caplog.records)
    url = (await jobs_with_covers(gateway))[0]["cover_image_url"]
    assert link_params(url)["kid"] != URL_SIGNING_KEYS[0].kid
    assert (await get_link(gateway, url)).status == 302
