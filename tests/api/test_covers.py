"""Cover links: never served dead or dying, and the stable /cover path always lands on a live image."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from tests.api.conftest import ACME, LONG_IMAGE_LINKS, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio
HOUR = 3600.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _expires_at(job: dict[str, Any]) -> float:
    return datetime.fromisoformat(job["cover_expires_at"].replace("Z", "+00:00")).timestamp()


async def _all_jobs(gateway: Gateway) -> list[dict[str, Any]]:
    response = await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)
    assert response.status == 200
    return (await response.json())["jobs"]  # type: ignore[no-any-return]


def _assert_covers_live(gateway: Gateway, jobs: list[dict[str, Any]], margin: float) -> int:
    served = 0
    for job in jobs:
        if "cover_download_url" in job:
            served += 1
            assert _expires_at(job) - margin > gateway.clock.now()
    return served


async def _follow_cover(gateway: Gateway, job_id: str) -> bytes:
    redirect = await gateway.client.get(f"/v1/training-jobs/{job_id}/cover", headers=ACME, allow_redirects=False)
    assert redirect.status == 302
    async with gateway.client.session.get(redirect.headers["Location"]) as image:
        assert image.status == 200
        assert image.headers["Content-Type"] == "image/png"
        return await image.read()


@pytest.mark.parametrize("hours_later", [23.5, 24.5, 48.0])
async def test_no_served_cover_is_expired_or_inside_the_margin(
    make_gateway: GatewayFactory, hours_later: float
) -> None:
    """Hours later, lists carry only cover URLs valid beyond the margin; /cover lands on a PNG."""
    gateway = await make_gateway(ttl_seconds=48 * HOUR, margin_seconds=HOUR)
    jobs = await _all_jobs(gateway)
    assert _assert_covers_live(gateway, jobs, HOUR) > 0
    gateway.clock.advance(hours_later * HOUR)
    later = await _all_jobs(gateway)
    assert _assert_covers_live(gateway, later, HOUR) > 0
    job_id = next(job["job_id"] for job in later if "cover_download_url" in job)
    assert (await _follow_cover(gateway, job_id)).startswith(PNG_SIGNATURE)
    assert gateway.metric("metastudio_gateway_expired_covers_served_total") == 0


async def test_an_entry_lives_no_longer_than_its_first_cover_allows(make_gateway: GatewayFactory) -> None:
    """With a TTL longer than the covers' life, the entry is re-fetched once a cover nears its margin."""
    # Cover-image links that outlive the test: only cover_download_url bounds the entry here.
    gateway = await make_gateway(ttl_seconds=48 * HOUR, margin_seconds=HOUR, covers=LONG_IMAGE_LINKS)
    await _all_jobs(gateway)
    gateway.clock.advance(22.9 * HOUR)
    await _all_jobs(gateway)
    assert gateway.upstream_calls == 1
    gateway.clock.advance(0.2 * HOUR)
    await _all_jobs(gateway)
    assert gateway.upstream_calls == 2


async def test_the_old_cover_url_really_stops_working(make_gateway: GatewayFactory) -> None:
    """The simulator's cover URLs expire after 24 h: the guarantee above is not vacuous."""
    gateway = await make_gateway()
    job = next(job for job in await _all_jobs(gateway) if "cover_download_url" in job)
    gateway.clock.advance(24.1 * HOUR)
    async with gateway.client.session.get(job["cover_download_url"]) as response:
        assert response.status == 403


async def test_cover_redirect_refetches_when_the_known_link_is_near_expiry(
    make_gateway: GatewayFactory,
) -> None:
    """/cover re-fetches (freshly signed) when its known link is inside the margin; lands on a live one."""
    gateway = await make_gateway(ttl_seconds=48 * HOUR, margin_seconds=HOUR)
    job = next(job for job in await _all_jobs(gateway) if "cover_download_url" in job)
    first = await gateway.client.get(f"/v1/training-jobs/{job['job_id']}/cover", headers=ACME, allow_redirects=False)
    assert first.headers["Location"] == job["cover_download_url"]
    calls = gateway.upstream_calls
    gateway.clock.advance(23.5 * HOUR)
    body = await _follow_cover(gateway, job["job_id"])
    assert body.startswith(PNG_SIGNATURE)
    assert gateway.upstream_calls == calls + 1
    assert gateway.metric("metastudio_gateway_cover_refreshes_total", reason="cover_request") >= 1


async def test_a_cover_asked_for_a_job_never_loaded_is_no_refresh(gateway: Gateway) -> None:
    """/cover for job ids the gateway never loaded (ones that do not exist): each asks the
    upstream, and none is counted as renewing a cover URL, which it is not: any caller could push
    cover_refreshes_total{reason="cover_request"} up by one a request, which dashboards and
    runbooks read as links expiring."""
    for number in range(3):
        response = await gateway.client.get(f"/v1/training-jobs/never-loaded-{number}/cover", headers=ACME)
        assert response.status == 404
    assert gateway.upstream_calls == 3
    assert gateway.metric("metastudio_gateway_cover_refreshes_total", reason="cover_request") == 0


async def test_aging_upstream_links_are_withheld(make_gateway: GatewayFactory) -> None:
    """When the upstream hands out links already inside the margin, lists omit them and /cover answers 502."""
    gateway = await make_gateway(margin_seconds=HOUR)
    gateway.simulator.state.cover_issue_lag_seconds = 23.5 * HOUR
    jobs = await _all_jobs(gateway)
    assert not any("cover_download_url" in job for job in jobs)
    with_cover = next(job for job in jobs if "cover_url" in job)
    response = await gateway.client.get(with_cover["cover_url"], headers=ACME, allow_redirects=False)
    assert response.status == 502
    assert (await response.json())["error"]["code"] == "upstream_error"


async def test_cover_of_a_job_without_cover_is_not_found(gateway: Gateway) -> None:
    """A job that has no cover answers 404 on /cover."""
    jobs = await _all_jobs(gateway)
    bare = next(job for job in jobs if "cover_url" not in job)
    response = await gateway.client.get(f"/v1/training-jobs/{bare['job_id']}/cover", headers=ACME)
    assert response.status == 404


async def test_earliest_cover_expiry_is_exported(gateway: Gateway) -> None:
    """The earliest-cover-expiry gauge equals the first cover_expires_at served."""
    jobs = await _all_jobs(gateway)
    earliest = min(_expires_at(job) for job in jobs if "cover_expires_at" in job)
    assert gateway.metric("metastudio_gateway_cover_earliest_expiry_timestamp_seconds") == earliest


async def test_a_kept_page_is_not_served_once_its_covers_entered_the_margin_while_the_upstream_failed(
    make_gateway: GatewayFactory,
) -> None:
    """Stale-if-error is judged when the failure comes, not when the request came: a page whose
    covers reach the margin while a slow upstream call fails is refused (503), not served with
    a dying link (it was served, and counted in expired_covers_served_total)."""
    gateway = await make_gateway(ttl_seconds=60, margin_seconds=HOUR, max_attempts=1)
    gateway.simulator.state.cover_issue_lag_seconds = 24 * HOUR - (HOUR + 100)  # covers expire 100 s past the margin
    await _all_jobs(gateway)
    gateway.clock.advance(95)  # past the fresh life and the revalidate window; kept until 100 s
    state = gateway.simulator.state
    state.fail_next.append(500)
    state.response_delay_seconds = 0.3
    request = asyncio.create_task(gateway.client.get("/v1/training-jobs?limit=100", headers=ACME))
    await asyncio.sleep(0.1)  # the call is under way: 8 s pass on the clock before it fails
    gateway.clock.advance(8)
    response = await request
    state.response_delay_seconds = 0
    assert response.status == 503
    assert gateway.metric("metastudio_gateway_expired_covers_served_total") == 0


@pytest.mark.parametrize(
    "bad_url",
    [
        "http://obs.example/a.png?Expires=300000000000",
        "http://obs.example/a.png?X-Amz-Date=20231114T221320Z&X-Amz-Expires=" + "9" * 400,
        "http://obs.example/a.png?Expires=1800000000\r\nSet-Cookie: x=1",
        "http://obs.example/a.png?Expires=1800000000\x00",
    ],
    ids=["expires-past-year-9999", "lifetime-past-a-float", "a-line-break", "a-nul"],
)
async def test_one_odd_cover_url_costs_only_its_jobs_cover(gateway: Gateway, bad_url: str) -> None:
    """A cover URL from the upstream that says it lives past any date, or that could not go into
    a header, leaves the list, the job and the others' covers as they are: the page is served
    (it was a 500, the whole page's), and that job's cover is either believed for 24 h or, if
    it cannot be handed out, absent (/cover 404; it was a connection closed with nothing)."""
    await _all_jobs(gateway)  # the simulator makes acme's jobs
    job = next(job for job in gateway.simulator.state.jobs if job.get("app_user_id") == "acme-web")
    job["_has_cover"] = False
    job["cover_download_url"] = bad_url  # what the upstream now sends for this one job
    gateway.clock.advance(3600)
    jobs = await _all_jobs(gateway)
    assert sum("cover_download_url" in shown for shown in jobs) > 1
    shown = next(shown for shown in jobs if shown["job_id"] == job["job_id"])
    cover = await gateway.client.get(f"/v1/training-jobs/{job['job_id']}/cover", headers=ACME, allow_redirects=False)
    if "\r" in bad_url or "\x00" in bad_url:
        assert "cover_url" not in shown and "cover_download_url" not in shown
        assert cover.status == 404
    else:
        assert shown["cover_download_url"] == bad_url
        assert _expires_at(shown) == gateway.clock.now() + 24 * HOUR
        assert (cover.status, cover.headers["Location"]) == (302, bad_url)


async def test_a_job_found_gone_or_without_its_cover_no_longer_redirects_to_it(gateway: Gateway) -> None:
    """Once a load finds a job gone upstream, or without its cover, /cover and the job's signed
    image link say 404 instead of redirecting to the link remembered from before (an image the
    upstream no longer offers: it did, for as long as that link was outside the margin)."""
    jobs = [job for job in await _all_jobs(gateway) if "cover_url" in job]
    gone, bare = jobs[0], jobs[1]
    state = gateway.simulator.state
    state.jobs = [job for job in state.jobs if job["job_id"] != gone["job_id"]]
    next(job for job in state.jobs if job["job_id"] == bare["job_id"])["_has_cover"] = False
    for job in (gone, bare):
        before = await gateway.client.get(job["cover_url"], headers=ACME, allow_redirects=False)
        assert before.status == 302  # nothing has been asked since: the remembered link
        status = 404 if job is gone else 200
        assert (await gateway.client.get(f"/v1/training-jobs/{job['job_id']}", headers=ACME)).status == status
        after = await gateway.client.get(job["cover_url"], headers=ACME, allow_redirects=False)
        assert after.status == 404
        image = await gateway.client.get(job["cover_image_url"], allow_redirects=False)
        assert image.status == 404


async def test_a_cover_the_upstream_cannot_give_is_asked_for_once_per_fresh_life(make_gateway: GatewayFactory) -> None:
    """Image views of a job whose link the upstream issues already dying (502), or of a job with
    no cover (404), cost one upstream call per fresh life of the job, not one per view (each
    view was a call: a page of 30 images, 30 calls)."""
    gateway = await make_gateway(margin_seconds=HOUR)
    gateway.simulator.state.cover_issue_lag_seconds = 23.5 * HOUR
    jobs = await _all_jobs(gateway)
    dying = next(job for job in jobs if "cover_url" in job)
    bare = next(job for job in jobs if "cover_url" not in job)
    for path, status in ((dying["cover_url"], 502), (f"/v1/training-jobs/{bare['job_id']}/cover", 404)):
        calls = gateway.upstream_calls
        for _ in range(10):
            assert (await gateway.client.get(path, headers=ACME, allow_redirects=False)).status == status
        image = await gateway.client.get(dying["cover_image_url"], allow_redirects=False)
        assert image.status == 502
        assert gateway.upstream_calls == calls + 1
    gateway.clock.advance(61)  # the jobs' fresh life is over: asked again
    calls = gateway.upstream_calls
    assert (await gateway.client.get(dying["cover_url"], headers=ACME, allow_redirects=False)).status == 502
    assert gateway.upstream_calls == calls + 1
