"""The MetaStudio simulator, over real HTTP: signatures, filters, paging and OBS-style covers."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yarl

from gateway.clock import ManualClock, utc_datetime
from gateway.simulator import RAW_STATES, RunningSimulator, running_simulator
from gateway.upstream.signing import QueryParams, sign

UNAUTHORIZED = {
    "error_code": "APIGW.0301",
    "error_msg": "Incorrect IAM authentication information: verify aksk signature fail",
}
INVALID = {"error_code": "MSS.00000003", "error_msg": "Invalid parameter"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DAY = 86_400


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    async with running_simulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def signed_request(
    sim: RunningSimulator,
    clock: ManualClock,
    query: QueryParams = (),
    headers: Mapping[str, str] | None = None,
    *,
    secret_key: str | None = None,
) -> tuple[str, dict[str, str]]:
    """The encoded URL and headers of a jobs request signed as the SDK signs it."""
    signed = sign(
        method="GET",
        host=urlsplit(sim.base_url).netloc,
        path=f"/v1/{sim.project_id}/digital-human-training-manage/user/jobs",
        query=query,
        headers={"X-Project-Id": sim.project_id, **(headers or {})},
        access_key=sim.access_key,
        secret_key=secret_key or sim.secret_key,
        timestamp=utc_datetime(clock.now()),
    )
    return sim.base_url + signed.path_and_query, signed.headers


async def send(session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]) -> tuple[int, Any]:
    async with session.get(yarl.URL(url, encoded=True), headers=dict(headers)) as response:
        return response.status, await response.json()


async def list_jobs(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    clock: ManualClock,
    query: QueryParams = (),
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    return await send(session, *signed_request(sim, clock, query, headers))


async def all_jobs(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    clock: ManualClock,
    query: QueryParams = (),
    headers: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every matching job, page by page (100 per page)."""
    jobs: list[dict[str, Any]] = []
    while True:
        status, body = await list_jobs(session, sim, clock, [*query, ("offset", len(jobs)), ("limit", 100)], headers)
        assert status == 200
        jobs.extend(body["jobs"])
        if len(jobs) >= body["count"]:
            return jobs


def replace_byte(text: str, index: int) -> str:
    """``text`` with the character at ``index`` swapped for a different one of the same kind."""
    index %= len(text)
    old = text[index]
    new = ("1" if old != "1" else "2") if old.isdigit() else ("a" if old != "a" else "b")
    return text[:index] + new + text[index + 1 :]


async def a_cover_url(session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock) -> str:
    jobs = await all_jobs(session, sim, clock)
    return next(job["cover_download_url"] for job in jobs if "cover_download_url" in job)


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with session.get(yarl.URL(url, encoded=True)) as response:
        return response.status, response.content_type, await response.read()


# Signature verification


async def test_signed_request_is_answered_with_a_page_and_the_total(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A correctly signed request gets 200, an X-Request-Id, ``count`` and at most ``limit`` jobs."""
    url, headers = signed_request(sim, clock, [("limit", 5)])
    async with session.get(yarl.URL(url, encoded=True), headers=headers) as response:
        body = await response.json()
        assert response.status == 200
        assert response.headers["X-Request-Id"]
    assert body["count"] == len(sim.state.jobs)
    assert len(body["jobs"]) == 5
    assert all(not key.startswith("_") for job in body["jobs"] for key in job)


async def test_request_signed_by_the_official_sdk_is_accepted(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A request signed by huaweicloudsdkcore's own Signer (not ours) is served."""
    monkeypatch.setenv("HOME", str(tmp_path))  # importing the SDK writes ~/.huaweicloud
    signer_module = pytest.importorskip("huaweicloudsdkcore.signer.signer")
    sdk_request = pytest.importorskip("huaweicloudsdkcore.sdk_request")
    credentials = pytest.importorskip("huaweicloudsdkcore.auth.credentials")
    request = sdk_request.SdkRequest(
        method="GET",
        schema="http",
        host=urlsplit(sim.base_url).netloc,
        resource_path=f"/v1/{sim.project_id}/digital-human-training-manage/user/jobs",
        query_params=[("state", "JOB_SUCCESS,TRAINING"), ("name", "数字人"), ("limit", 3)],
        header_params={
            "X-Project-Id": sim.project_id,
            "X-App-UserId": "acme-web",
            "X-Sdk-Date": utc_datetime(clock.now()).strftime("%Y%m%dT%H%M%SZ"),
        },
    )
    signer_module.Signer(credentials.BasicCredentials(sim.access_key, sim.secret_key)).sign(request)
    status, body = await send(session, request.url, request.header_params)
    assert status == 200
    assert body["count"] > 3
    assert all("数字人" in job["name"] and job["app_user_id"] == "acme-web" for job in body["jobs"])
    assert sim.state.request_log[-1].query == (
        ("limit", "3"),
        ("name", "数字人"),
        ("state", "JOB_SUCCESS,TRAINING"),
    )


async def test_one_byte_changed_in_the_signature_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A signature with one hex digit changed gets 401 in the upstream's error shape."""
    url, headers = signed_request(sim, clock)
    headers["Authorization"] = replace_byte(headers["Authorization"], -1)
    assert await send(session, url, headers) == (401, UNAUTHORIZED)


async def test_one_byte_changed_in_the_query_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Changing one byte of the signed query string (limit=5 to limit=1) gets 401."""
    url, headers = signed_request(sim, clock, [("limit", 5)])
    assert url.endswith("limit=5")
    assert await send(session, replace_byte(url, -1), headers) == (401, UNAUTHORIZED)


@pytest.mark.parametrize("header", ["X-App-UserId", "X-Sdk-Date"])
async def test_one_byte_changed_in_a_signed_header_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock, header: str
) -> None:
    """Changing one byte of a signed header's value gets 401."""
    url, headers = signed_request(sim, clock, headers={"X-App-UserId": "acme-web"})
    headers[header] = replace_byte(headers[header], -2)
    assert await send(session, url, headers) == (401, UNAUTHORIZED)


async def test_unknown_secret_key_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A request signed with another secret key gets 401."""
    url, headers = signed_request(sim, clock, secret_key="not-the-secret")
    assert await send(session, url, headers) == (401, UNAUTHORIZED)


async def test_authorization_with_a_repeated_field_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """An Authorization header with extra or repeated fields (not the SDK's exact form) gets 401."""
    url, headers = signed_request(sim, clock)
    signature = headers["Authorization"].rpartition("Signature=")[2]
    headers["Authorization"] = headers["Authorization"].replace(
        "Signature=", f"Signature={replace_byte(signature, 0)}, Signature=", 1
    )
    assert await send(session, url, headers) == (401, UNAUTHORIZED)


async def test_missing_authorization_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A request without Authorization gets 401."""
    url, headers = signed_request(sim, clock)
    del headers["Authorization"]
    assert await send(session, url, headers) == (401, UNAUTHORIZED)


async def test_stale_sdk_date_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A request signed 16 minutes before the simulator's now gets 401."""
    url, headers = signed_request(sim, clock)
    clock.advance(16 * 60)
    assert await send(session, url, headers) == (401, UNAUTHORIZED)


async def test_project_id_header_must_match_the_path(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A correctly signed X-Project-Id naming another project gets 401."""
    assert await list_jobs(session, sim, clock, headers={"X-Project-Id": "other"}) == (401, UNAUTHORIZED)


async def test_security_token_is_required_when_configured(session: aiohttp.ClientSession, clock: ManualClock) -> None:
    """With a security token configured, only requests carrying it signed are served."""
    async with running_simulator(clock=clock, security_token="sts-token") as sim:
        without = await list_jobs(session, sim, clock)
        wrong = await list_jobs(session, sim, clock, headers={"X-Security-Token": "other"})
        right = await list_jobs(session, sim, clock, headers={"X-Security-Token": "sts-token"})
    assert without == (401, UNAUTHORIZED)
    assert wrong == (401, UNAUTHORIZED)
    assert right[0] == 200


async def test_unsigned_security_token_is_refused(session: aiohttp.ClientSession, clock: ManualClock) -> None:
    """The right security token sent but left out of SignedHeaders gets 401."""
    async with running_simulator(clock=clock, security_token="sts-token") as sim:
        url, headers = signed_request(sim, clock)
        status = await send(session, url, {**headers, "X-Security-Token": "sts-token"})
    assert status == (401, UNAUTHORIZED)


async def test_an_unsigned_app_user_id_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """X-App-UserId, which picks whose jobs come back, sent but left out of SignedHeaders: 401
    (the SDK signs every header; a gateway that stopped signing the tenant's would pass unseen)."""
    url, headers = signed_request(sim, clock)
    assert await send(session, url, {**headers, "X-App-UserId": "globex-app"}) == (401, UNAUTHORIZED)


async def test_a_security_token_with_permanent_credentials_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Permanent keys with an X-Security-Token, signed: 401 (an old token kept after the
    credentials changed to permanent ones would have passed unseen)."""
    assert await list_jobs(session, sim, clock, headers={"X-Security-Token": "old-sts-token"}) == (401, UNAUTHORIZED)


async def test_injected_failures_are_answered_then_service_resumes(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Statuses queued in ``fail_next`` answer the next requests in upstream shape, then 200 again."""
    sim.state.fail_next.extend([503, 429])
    first = await list_jobs(session, sim, clock)
    second = await list_jobs(session, sim, clock)
    third = await list_jobs(session, sim, clock)
    assert (first[0], first[1]["error_code"]) == (503, "APIGW.0203")
    assert (second[0], second[1]["error_code"]) == (429, "APIGW.0308")
    assert third[0] == 200


async def test_every_request_is_recorded_refused_ones_too(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """The request log holds each jobs request with its decoded query, app user id and status."""
    await list_jobs(session, sim, clock, [("state", "JOB_SUCCESS,TRAINING")], {"X-App-UserId": "acme-web"})
    url, headers = signed_request(sim, clock)
    await send(session, url, {**headers, "Authorization": "garbage"})
    first, second = sim.state.request_log
    assert first.query == (("state", "JOB_SUCCESS,TRAINING"),)
    assert (first.app_user_id, first.status, first.headers["X-App-UserId"]) == ("acme-web", 200, "acme-web")
    assert (second.app_user_id, second.status) == (None, 401)


# Query parameters


async def test_state_filter_accepts_several_states(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """``state=A,B`` returns exactly the jobs in either state."""
    jobs = await all_jobs(session, sim, clock, [("state", "JOB_SUCCESS,TRAINING")])
    expected = [j for j in sim.state.jobs if j["state"] in ("JOB_SUCCESS", "TRAINING")]
    assert jobs
    assert {j["job_id"] for j in jobs} == {j["job_id"] for j in expected}


async def test_app_user_id_header_limits_jobs_to_that_user(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """With X-App-UserId only that user's jobs come back; a user whose jobs were all removed sees none."""
    acme = await all_jobs(session, sim, clock, headers={"X-App-UserId": "acme-web"})
    sim.state.jobs[:] = [job for job in sim.state.jobs if job.get("app_user_id") != "globex-app"]
    nobody = await list_jobs(session, sim, clock, headers={"X-App-UserId": "globex-app"})
    everyone = await all_jobs(session, sim, clock)
    assert 25 <= len(acme) <= 40
    assert {j.get("app_user_id") for j in acme} == {"acme-web"}
    assert nobody == (200, {"count": 0, "jobs": []})
    assert len(everyone) == len(sim.state.jobs)
    assert any("app_user_id" not in j for j in everyone)


async def test_any_other_app_user_id_gets_its_own_jobs_the_same_every_time(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """An app user id outside the built-in ones gets 25 to 40 jobs of its own, the same ones on every request."""
    first = await all_jobs(session, sim, clock, headers={"X-App-UserId": "made-up-user-7"})
    again = await all_jobs(session, sim, clock, headers={"X-App-UserId": "made-up-user-7"})
    other = await all_jobs(session, sim, clock, headers={"X-App-UserId": "made-up-user-8"})
    assert 25 <= len(first) <= 40
    assert {j["app_user_id"] for j in first} == {"made-up-user-7"}
    assert again == first
    assert {j["job_id"] for j in other}.isdisjoint(j["job_id"] for j in first)


async def test_job_id_filter_returns_that_job(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """``job_id`` matches exactly one job."""
    wanted = sim.state.jobs[7]["job_id"]
    status, body = await list_jobs(session, sim, clock, [("job_id", wanted)])
    assert (status, body["count"], [j["job_id"] for j in body["jobs"]]) == (200, 1, [wanted])


async def test_tag_filter_returns_jobs_carrying_the_tag(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """``tag`` (here a Chinese one) returns the jobs whose tags contain it."""
    jobs = await all_jobs(session, sim, clock, [("tag", "客服")])
    assert jobs
    assert len(jobs) == sum("客服" in j.get("tags", ()) for j in sim.state.jobs)
    assert all("客服" in j["tags"] for j in jobs)


async def test_is_flexus_filter(session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock) -> None:
    """``is_flexus=true`` returns only Flexus jobs, ``false`` the rest."""
    flexus = await all_jobs(session, sim, clock, [("is_flexus", True)])
    others = await all_jobs(session, sim, clock, [("is_flexus", False)])
    assert flexus
    assert all(j["is_flexus"] is True for j in flexus)
    assert all(j["is_flexus"] is False for j in others)
    assert len(flexus) + len(others) == len(sim.state.jobs)


async def test_create_since_is_inclusive(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """``create_since`` returns the jobs created at or after that instant, the boundary job included."""
    boundary = sorted(j["create_time"] for j in sim.state.jobs)[len(sim.state.jobs) // 2]
    jobs = await all_jobs(session, sim, clock, [("create_since", boundary)])
    assert len(jobs) == sum(j["create_time"] >= boundary for j in sim.state.jobs)
    assert min(j["create_time"] for j in jobs) == boundary


async def test_sort_and_paging_cover_every_job_once_in_order(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Pages of 7 sorted by update_time desc add up to every job once, in order, each with count = total."""
    seen: list[dict[str, Any]] = []
    counts = set()
    for offset in range(0, len(sim.state.jobs) + 7, 7):
        status, body = await list_jobs(
            session,
            sim,
            clock,
            [("sort_key", "update_time"), ("sort_dir", "desc"), ("offset", offset), ("limit", 7)],
        )
        assert status == 200
        counts.add(body["count"])
        seen.extend(body["jobs"])
    assert counts == {len(sim.state.jobs)}
    assert len({j["job_id"] for j in seen}) == len(seen) == len(sim.state.jobs)
    assert seen == sorted(seen, key=lambda j: j["last_update_time"], reverse=True)


async def test_asset_order_ties_are_broken_by_job_id(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Sorting by asset_order is stable: equal orders come in ascending job_id order."""
    jobs = await all_jobs(session, sim, clock, [("sort_key", "asset_order")])
    order = {j["job_id"]: j["_asset_order"] for j in sim.state.jobs}
    keys = [(order[j["job_id"]], j["job_id"]) for j in jobs]
    assert keys == sorted(keys)
    assert len(set(order.values())) < len(order)


async def test_query_project_id_other_than_the_path_matches_nothing(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """``query_project_id`` naming the path's project is accepted; another project yields no jobs."""
    own = await list_jobs(session, sim, clock, [("query_project_id", sim.project_id)])
    other = await list_jobs(session, sim, clock, [("query_project_id", "someone-else")])
    assert own[1]["count"] == len(sim.state.jobs)
    assert other == (200, {"count": 0, "jobs": []})
    assert sim.state.request_log[-1].query == (("query_project_id", "someone-else"),)


@pytest.mark.parametrize(
    "query",
    [
        [("limit", 0)],
        [("limit", 101)],
        [("limit", "ten")],
        [("offset", -1)],
        [("sort_key", "name")],
        [("state", "NOT_A_STATE")],
        [("create_since", "yesterday")],
        [("is_flexus", "yes")],
        [("model_resolution", "720P")],
        [("unknown", "1")],
    ],
)
async def test_bad_parameter_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock, query: QueryParams
) -> None:
    """An out-of-range, malformed or unknown parameter gets 400 in the upstream's shape."""
    assert await list_jobs(session, sim, clock, query) == (400, INVALID)


async def test_dataset_has_every_documented_state(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Every documented raw state appears in the dataset; jobs waiting for upload have no cover."""
    jobs = await all_jobs(session, sim, clock)
    assert {j["state"] for j in jobs} == set(RAW_STATES)
    assert all("cover_download_url" not in j for j in jobs if j["state"] == "WAIT_FILE_UPLOAD")


# Covers


async def test_cover_url_serves_a_png_until_it_expires(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A cover URL downloads a real 96x96 PNG, and is refused with OBS's 403 once 24 h have passed."""
    url = await a_cover_url(session, sim, clock)
    status, content_type, png = await fetch(session, url)
    assert (status, content_type) == (200, "image/png")
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (96, 96)

    clock.advance(DAY)
    status, content_type, body = await fetch(session, url)
    assert (status, content_type) == (403, "application/xml")
    assert b"<Code>AccessDenied</Code>" in body
    assert b"Request has expired" in body


async def test_tampered_cover_signature_is_refused(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """A cover URL with one byte of its signature or its Expires changed gets 403."""
    url = await a_cover_url(session, sim, clock)
    expires = parse_qs(urlsplit(url).query)["Expires"][0]
    for tampered in (
        replace_byte(url, -2),
        url.replace(f"Expires={expires}", f"Expires={int(expires) + 1}"),
    ):
        status, _, body = await fetch(session, tampered)
        assert status == 403
        assert b"<Error><Code>AccessDenied</Code>" in body


async def test_cover_of_an_unknown_object_is_not_found(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Removing a job makes its still-valid cover URL answer 404 NoSuchKey."""
    url = await a_cover_url(session, sim, clock)
    sim.state.jobs.clear()
    status, _, body = await fetch(session, url)
    assert status == 404
    assert b"<Code>NoSuchKey</Code>" in body


async def test_cover_issue_lag_moves_expires_back(
    session: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock
) -> None:
    """Cover URLs expire 24 h after now, or that much earlier with ``cover_issue_lag_seconds`` set."""
    fresh = parse_qs(urlsplit(await a_cover_url(session, sim, clock)).query)
    sim.state.cover_issue_lag_seconds = 3600
    aged_url = await a_cover_url(session, sim, clock)
    aged = parse_qs(urlsplit(aged_url).query)
    assert int(fresh["Expires"][0]) == int(clock.now()) + DAY
    assert int(aged["Expires"][0]) == int(clock.now()) + DAY - 3600

    clock.advance(DAY - 3600)
    assert (await fetch(session, aged_url))[0] == 403


async def test_jobs_per_user_gives_every_app_user_that_many_full_pages(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """``jobs_per_user`` fixes each user's job count, so ``limit=100`` pages come back full."""
    async with running_simulator(clock=clock, jobs_per_user=250) as big:
        query = [("offset", 150), ("limit", 100)]
        status, body = await list_jobs(session, big, clock, query, {"X-App-UserId": "acme-web"})
        owners = [job.get("app_user_id") for job in big.state.jobs]
    assert status == 200
    assert body["count"] == 250
    assert len(body["jobs"]) == 100
    assert {owners.count(user) for user in ("acme-web", "globex-app", "demo-user")} == {250}
    assert set(RAW_STATES) <= {job["state"] for job in big.state.jobs}
