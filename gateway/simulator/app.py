"""The simulator's aiohttp application: the MetaStudio jobs endpoint, the OBS cover download
and the fake cloud that issues credentials (``cloud``).

``create_simulator_app`` wires it: dataset, credentials and knobs go into ``SimulatorState``
(under ``SIMULATOR_STATE``), the fake cloud's state under ``CLOUD_STATE``; the clock and the
OBS URL signer into a private app key. Every jobs request is recorded, refused ones too.

The jobs endpoint accepts a request signed with the static keys, or with temporary credentials
the fake cloud issued (unexpired, their own security token signed), or carrying an IAM token
the fake cloud issued (``X-Auth-Token``: known, unexpired, scoped to the path's project).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.clock import Clock
from gateway.simulator.cloud import MAX_FIELD_SIZE, CloudState, FakeCloud
from gateway.simulator.covers import ObsDenial, ObsUrlSigner, cover_png, error_xml, job_id_of
from gateway.simulator.dataset import generate_jobs, user_jobs
from gateway.simulator.faults import Fault, faulty_response, pick_fault
from gateway.simulator.query import InvalidQuery, parse_query, select_jobs
from gateway.simulator.state import SIMULATOR_STATE, JobRecord, RecordedRequest, SimulatorState
from gateway.simulator.verify import Credentials, check_signature, parse_raw_query
from gateway.upstream.signing import parse_authorization

JOBS_ROUTE = "/v1/{project_id}/digital-human-training-manage/user/jobs"
COVERS_ROUTE = "/obs/metastudio-covers/{name}"
DEFAULT_APP_USER_IDS = ("acme-web", "globex-app", "demo-user")
MAX_APP_USER_IDS = 10_000  # bounds the dataset when callers make up many ids
OBS_ACCESS_KEY_ID = "SIMULATOROBSACCESSKEY"
# The bucket's CORS rule: any origin may GET a cover (the pre-signed URL is the authorisation), so a
# browser that followed the gateway's 302 on a fetch() can read the image and its error answers.
COVER_CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}

# The order of TrainingJobBasicInfo's fields in the upstream documentation.
_FIELD_ORDER = (
    "job_id",
    "name",
    "state",
    "asset_id",
    "project_id",
    "cover_download_url",
    "last_update_time",
    "create_time",
    "contact",
    "batch_name",
    "tags",
    "model_version",
    "matting_type",
    "model_resolution",
    "app_user_id",
    "is_flexus",
    "is_only_human_model",
)

_UPSTREAM_ERRORS: dict[int, tuple[str, str]] = {
    400: ("MSS.00000003", "Invalid parameter"),
    401: ("APIGW.0301", "Incorrect IAM authentication information: verify aksk signature fail"),
    403: ("APIGW.0302", "The IAM user is not authorized to access the API"),
    404: ("APIGW.0101", "The API does not exist or has not been published in the environment"),
    429: ("APIGW.0308", "The throttling threshold has been reached"),
    500: ("MSS.00000004", "Internal Error"),
    502: ("APIGW.0202", "Backend unavailable"),
    503: ("APIGW.0203", "Backend service unavailable"),
    504: ("APIGW.0201", "Backend timeout"),
}


@dataclass(frozen=True, slots=True)
class _Wiring:
    """Collaborators the handlers need that tests do not tune."""

    clock: Clock
    obs: ObsUrlSigner


_WIRING: web.AppKey[_Wiring] = web.AppKey("simulator_wiring", _Wiring)
CLOUD_STATE: web.AppKey[CloudState] = web.AppKey("simulator_cloud", CloudState)


def _authentication_failure(request: web.Request, query: list[tuple[str, str]], now: float) -> str | None:
    """``None`` when the jobs request is authentic (static keys, issued credentials or an issued
    IAM token), else why not."""
    state = request.app[SIMULATOR_STATE]
    cloud = request.app[CLOUD_STATE]
    path_project_id = request.match_info["project_id"]
    token = request.headers.get("X-Auth-Token")
    if token is not None:
        if "Authorization" in request.headers:
            return "both X-Auth-Token and Authorization"
        return cloud.check_token(token, path_project_id, now)
    credentials = Credentials(state.access_key, state.secret_key, state.security_token)
    parsed = parse_authorization(request.headers.get("Authorization", ""))
    if parsed is not None and parsed.access_key != state.access_key:
        issued = cloud.credentials_for(parsed.access_key, now)
        if isinstance(issued, str):
            return issued
        credentials = Credentials(parsed.access_key, issued.secret_key, issued.security_token)
    return check_signature(
        method=request.method,
        raw_path=request.raw_path.partition("?")[0],
        query=query,
        headers=request.headers.items(),
        credentials=credentials,
        path_project_id=path_project_id,
        now=now,
    )


def _error(status: int) -> dict[str, str]:
    """The upstream's error body for a status."""
    code, message = _UPSTREAM_ERRORS.get(status, ("APIGW.0201", "Request error"))
    return {"error_code": code, "error_msg": message}


def _render(job: JobRecord, cover_url: str | None) -> dict[str, Any]:
    """The job as the upstream sends it: documented fields in order, bookkeeping keys dropped."""
    merged = {**job, "cover_download_url": cover_url} if cover_url is not None else job
    shown = {key: merged[key] for key in _FIELD_ORDER if key in merged}
    shown.update((key, value) for key, value in merged.items() if not key.startswith("_"))
    return shown


def _add_jobs_of(state: SimulatorState, app_user_id: str) -> None:
    """Give an app user id seen for the first time its own jobs (see ``dataset.user_jobs``)."""
    if app_user_id in state.app_user_ids or len(state.app_user_ids) >= MAX_APP_USER_IDS:
        return
    state.app_user_ids.add(app_user_id)
    state.jobs.extend(
        user_jobs(
            seed=state.seed,
            app_user_id=app_user_id,
            project_id=state.project_id,
            now=state.dataset_time,
            jobs_per_user=state.jobs_per_user,
        )
    )


def _answer(request: web.Request, query: list[tuple[str, str]]) -> tuple[int, Any, str | None]:
    """Decide the jobs endpoint's status, JSON body and (for refusals) the reason."""
    state = request.app[SIMULATOR_STATE]
    wiring = request.app[_WIRING]
    now = wiring.clock.now()
    if request.method != "GET":
        return 404, _error(404), "method not GET"
    path_project_id = request.match_info["project_id"]
    rejection = _authentication_failure(request, query, now)
    if rejection is not None:
        return 401, _error(401), rejection
    if path_project_id != state.project_id:
        return 404, _error(404), "unknown project id"
    app_user_id = request.headers.get("X-App-UserId")
    if app_user_id is not None and not app_user_id.isascii():
        return 400, _error(400), "X-App-UserId not ASCII"
    try:
        parsed = parse_query(query)
    except InvalidQuery as exc:
        return 400, _error(400), str(exc)
    if state.fail_next:
        status = state.fail_next.pop(0)
        return status, _error(status), "injected failure"

    if app_user_id is not None:
        _add_jobs_of(state, app_user_id)
    scope = app_user_id if state.scoped_by_app_user_id else None
    count, page = select_jobs(state.jobs, parsed, project_id=state.project_id, app_user_id=scope)
    base_url = f"{request.scheme}://{request.host}"
    issued_at = now - state.cover_issue_lag_seconds
    jobs = [
        _render(
            job,
            wiring.obs.presign(base_url=base_url, job_id=job["job_id"], issued_at=issued_at)
            if job.get("_has_cover")
            else None,
        )
        for job in page
    ]
    return 200, {"count": count, "jobs": jobs}, None


async def _list_jobs(request: web.Request) -> web.StreamResponse:
    """``GET /v1/{project_id}/digital-human-training-manage/user/jobs``."""
    state = request.app[SIMULATOR_STATE]
    query = parse_raw_query(request.rel_url.raw_query_string)
    status, body, rejection = _answer(request, query)
    app_user_id = request.headers.get("X-App-UserId")
    fault = pick_fault(state.faults, app_user_id, state.rng) if status == 200 else None
    if fault is not None:
        status = fault.status if fault.kind == "status" else 200
        rejection = f"fault: {fault.kind}"
    state.request_log.append(
        RecordedRequest(
            method=request.method,
            path=request.raw_path.partition("?")[0],
            query=tuple(query),
            headers=dict(request.headers.items()),
            app_user_id=app_user_id,
            status=status,
            rejection=rejection,
        )
    )
    if state.response_delay_seconds > 0:
        await asyncio.sleep(state.response_delay_seconds)
    headers = {"X-Request-Id": uuid.uuid4().hex}
    if fault is not None and fault.kind == "status":
        body = _error(fault.status)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
    elif fault is not None:
        return await faulty_response(request, fault, orjson.dumps(body))
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


async def _faults(request: web.Request) -> web.Response:
    """``/_simulator/faults``: GET lists, PUT replaces (a JSON list of faults), DELETE clears."""
    state = request.app[SIMULATOR_STATE]
    if request.method == "PUT":
        try:
            state.faults = [Fault.from_json(raw) for raw in orjson.loads(await request.read())]
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
    elif request.method == "DELETE":
        state.faults.clear()
        state.fail_next.clear()
        state.response_delay_seconds = 0
    return web.json_response([fault.to_json() for fault in state.faults])


async def _stats(request: web.Request) -> web.Response:
    """``GET /_simulator/stats``: how many jobs requests came, by status and by app user id."""
    log = request.app[SIMULATOR_STATE].request_log
    return web.json_response(
        {
            "requests": len(log),
            "by_status": dict(Counter(str(entry.status) for entry in log)),
            "by_app_user_id": dict(Counter(entry.app_user_id or "" for entry in log)),
        }
    )


async def _download_cover(request: web.Request) -> web.Response:
    """``GET /obs/metastudio-covers/{name}``: the PNG, if the pre-signed URL is valid now."""
    state = request.app[SIMULATOR_STATE]
    wiring = request.app[_WIRING]
    request_id = uuid.uuid4().hex.upper()
    name = request.match_info["name"]
    denial = wiring.obs.check(
        name=name, query=parse_raw_query(request.rel_url.raw_query_string), now=wiring.clock.now()
    )
    if denial is None:
        job_id = job_id_of(name)
        if job_id is not None and any(job.get("job_id") == job_id and job.get("_has_cover") for job in state.jobs):
            return web.Response(
                body=cover_png(job_id),
                content_type="image/png",
                headers={"x-obs-request-id": request_id, **COVER_CORS_HEADERS},
            )
        denial = ObsDenial(404, "NoSuchKey", "The specified key does not exist.")
    return web.Response(
        status=denial.status,
        body=error_xml(denial, request_id),
        content_type="application/xml",
        headers={"x-obs-request-id": request_id, **COVER_CORS_HEADERS},
    )


def create_simulator_app(
    *,
    access_key: str,
    secret_key: str,
    clock: Clock,
    project_id: str = "sim-project",
    security_token: str | None = None,
    seed: int = 0,
    app_user_ids: Sequence[str] = DEFAULT_APP_USER_IDS,
    jobs_per_user: int | None = None,
) -> web.Application:
    """Build the simulator app; its dataset is generated from ``seed`` at the clock's current time.

    ``app_user_ids`` get their jobs at once; any other id gets its own on its first request.
    ``jobs_per_user``: each app user id's job count (default: 25 to 40, see ``dataset``).
    """
    # Header fields up to 32 KB: an IAM token in X-Auth-Token is about 9 KB.
    app = web.Application(handler_args={"max_field_size": MAX_FIELD_SIZE})
    now = clock.now()
    app[SIMULATOR_STATE] = SimulatorState(
        project_id=project_id,
        access_key=access_key,
        secret_key=secret_key,
        security_token=security_token,
        jobs=generate_jobs(
            seed=seed, project_id=project_id, app_user_ids=app_user_ids, now=now, jobs_per_user=jobs_per_user
        ),
        seed=seed,
        dataset_time=now,
        jobs_per_user=jobs_per_user,
        app_user_ids=set(app_user_ids),
    )
    app[_WIRING] = _Wiring(clock=clock, obs=ObsUrlSigner(OBS_ACCESS_KEY_ID, secrets.token_urlsafe(24)))
    cloud = app[CLOUD_STATE] = CloudState(project_id=project_id)
    FakeCloud(cloud, clock).add_routes(app)
    app.router.add_route("*", JOBS_ROUTE, _list_jobs)
    app.router.add_get(COVERS_ROUTE, _download_cover)
    app.router.add_route("*", "/_simulator/faults", _faults)
    app.router.add_get("/_simulator/stats", _stats)
    return app
