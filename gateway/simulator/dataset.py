"""A realistic, deterministic set of upstream training jobs for the simulator to serve.

Same ``seed`` and same clock reading, same jobs. Per app user id there are 25 to 40 jobs
(or exactly ``jobs_per_user``, for benchmarks that need many full pages), plus a few jobs
created without an ``X-App-UserId``; every raw state of the upstream's
documentation appears at least once. Optional fields come and go as in real responses.

Any other app user id gets jobs too, from ``user_jobs``: their seed is derived from the id
(and ``seed``), so the same id always gets the same jobs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gateway.clock import rfc3339
from gateway.simulator.state import JobRecord

# The upstream's documented states, copied here from its API page on purpose rather than imported
# from gateway.jobs.states: the double must not reuse the code it checks.
RAW_STATES: tuple[str, ...] = (
    "WAIT_FILE_UPLOAD",
    "AUTO_VERIFYING",
    "MANUAL_VERIFYING",
    "AUTO_VERIFY_FAILED",
    "MANUAL_VERIFY_FAILED",
    "MANUAL_VERIFY_SUCCESS",
    "WAIT_TRAINING_DATA_PREPROCESS",
    "TRAINING_DATA_PREPROCESSING",
    "TRAINING_DATA_PREPROCESS_FAILED",
    "TRAINING_DATA_PREPROCESS_SUCCESS",
    "TRAINING",
    "TRAIN_FAILED",
    "TRAIN_SUCCESS",
    "INFERENCE_DATA_PREPROCESSING",
    "INFERENCE_DATA_PREPROCESS_FAILED",
    "WAIT_MAIN_FILE_UPLOAD",
    "MANUAL_STOP_INFERENCE_DATA_PREPROCESS",
    "MANUAL_STOP_TRAIN",
    "MANUAL_STOP_TRAINING_DATA_PREPROCESS",
    "WAIT_ADMIN_CONFIRM",
    "WAIT_COMPILE",
    "COMPILING",
    "COMPILE_FAILED",
    "WAIT_GENERATE_ACTION",
    "WAIT_ARRANGE",
    "ACTION_GENERATE_DATA_PROCESSING",
    "MANUAL_STOP_ACTION_GENERATE_DATA_PROCESSING",
    "MANUAL_STOP_ACTION_GENERATE_ORI_PROCESSING",
    "ACTION_GENERATE_ORI_PROCESSING",
    "ACTION_GENERATE_DATA_FAILED",
    "ACTION_GENERATE_ORI_FAILED",
    "ACTION_GENERATE_ORI_SUCCESS",
    "GENERATE_ACTION_PREPROCESS_FAILED",
    "WAIT_ADMIN_CALIBRATION",
    "WAIT_ASSET_SYNC",
    "WAIT_USER_CONFIRM",
    "JOB_REJECT",
    "JOB_SUCCESS",
    "JOB_FINISH",
    "JOB_PENDING",
)
"""Every raw job state the upstream documents, in the documentation's order."""

# Beyond one job per state, most jobs of a real account are finished or in flight.
_COMMON_STATE_WEIGHTS = {
    "JOB_SUCCESS": 30,
    "JOB_FINISH": 20,
    "TRAINING": 8,
    "WAIT_FILE_UPLOAD": 8,
    "AUTO_VERIFYING": 4,
    "MANUAL_VERIFYING": 4,
    "TRAIN_FAILED": 2,
}
_NEVER_COVERED = frozenset({"WAIT_FILE_UPLOAD"})
_OFTEN_UNCOVERED = frozenset({"AUTO_VERIFYING", "AUTO_VERIFY_FAILED", "WAIT_MAIN_FILE_UPLOAD"})

_SURNAMES = "张王李赵刘陈杨黄周吴"
_GIVEN_NAMES = ("三", "小明", "丽", "伟", "芳", "静", "强", "娜", "磊", "洋")
_ASCII_NAMES = ("news-anchor", "Lisa", "sales-avatar", "teacher", "host", "support-bot")
_BATCHES = ("batch-2024-01", "batch-2024-02", "春季批次", "客服项目", "demo")
_TAGS = ("news", "education", "客服", "marketing", "vip", "livestream")

_DAY = 86_400


def _hex32(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _name(rng: random.Random, number: int) -> str:
    """A model name: mostly Chinese ("数字人-张三-01"), sometimes ASCII."""
    if rng.random() < 0.25:
        return f"{rng.choice(_ASCII_NAMES)}-{number:02d}"
    person = rng.choice(_SURNAMES) + rng.choice(_GIVEN_NAMES)
    if rng.random() < 0.7:
        return f"数字人-{person}-{number:02d}"
    return f"{person}主播{number:02d}"


def _has_cover(rng: random.Random, state: str) -> bool:
    """Whether a job in ``state`` has a cover yet: never before upload, usually after."""
    if state in _NEVER_COVERED:
        return False
    if state in _OFTEN_UNCOVERED:
        return rng.random() < 0.5
    return rng.random() < 0.95


def _job(rng: random.Random, *, number: int, state: str, owner: str | None, project_id: str, now: float) -> JobRecord:
    """One job, optional fields present or absent at random."""
    created = int(now - rng.uniform(3600, 180 * _DAY))
    updated = created + int(rng.uniform(0, now - created))
    is_flexus = rng.random() < 0.3
    job: JobRecord = {"job_id": _hex32(rng), "name": _name(rng, number), "state": state}
    if rng.random() < 0.8:
        job["asset_id"] = _hex32(rng)
    job["project_id"] = project_id
    job["last_update_time"] = rfc3339(updated)
    job["create_time"] = rfc3339(created)
    job["contact"] = "1**********"
    if rng.random() < 0.6:
        job["batch_name"] = rng.choice(_BATCHES)
    if rng.random() < 0.8:
        job["tags"] = rng.sample(_TAGS, rng.randint(0, 3))
    job["model_version"] = "V3.2" if rng.random() < 0.8 else "V3"
    job["matting_type"] = "AI" if rng.random() < 0.8 else "MANUAL"
    if rng.random() < 0.85:
        job["model_resolution"] = "1080P" if rng.random() < 0.7 else "4K"
    if owner is not None:
        job["app_user_id"] = owner
    job["is_flexus"] = is_flexus
    if rng.random() < 0.6:
        job["is_only_human_model"] = is_flexus and rng.random() < 0.5
    job["_asset_order"] = rng.randint(1, 30)
    job["_has_cover"] = _has_cover(rng, state)
    return job


def user_jobs(
    *, seed: int, app_user_id: str, project_id: str, now: float, jobs_per_user: int | None = None
) -> list[JobRecord]:
    """The jobs of an app user id outside the built-in dataset: 25 to 40 (or ``jobs_per_user``),
    drawn from a generator seeded with ``seed`` and the id, so an id always gets the same jobs."""
    rng = random.Random(f"{seed}:{app_user_id}")  # noqa: S311 - reproducible test data, not secrets
    count = rng.randint(25, 40) if jobs_per_user is None else jobs_per_user
    weights = [_COMMON_STATE_WEIGHTS.get(state, 1) for state in RAW_STATES]
    states = rng.choices(RAW_STATES, weights, k=count)
    return [
        _job(rng, number=number, state=state, owner=app_user_id, project_id=project_id, now=now)
        for number, state in enumerate(states, start=1)
    ]


def generate_jobs(
    *, seed: int, project_id: str, app_user_ids: Sequence[str], now: float, jobs_per_user: int | None = None
) -> list[JobRecord]:
    """Build the dataset: jobs of every app user id and some without one, all of ``project_id``.

    ``jobs_per_user`` fixes each app user id's job count (default: 25 to 40 at random).

    Times are whole seconds within the 180 days before ``now``; ``_asset_order`` values
    repeat on purpose, so sorting by it needs the ``job_id`` tie-break.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    owners: list[str | None] = []
    for app_user_id in app_user_ids:
        count = rng.randint(25, 40)  # drawn even when fixed: the rest of the dataset stays the same
        owners.extend([app_user_id] * (count if jobs_per_user is None else jobs_per_user))
    owners.extend([None] * rng.randint(3, 6))
    owners.extend([None] * (len(RAW_STATES) - len(owners)))
    rng.shuffle(owners)

    weights = [_COMMON_STATE_WEIGHTS.get(state, 1) for state in RAW_STATES]
    states = list(RAW_STATES) + rng.choices(RAW_STATES, weights, k=len(owners) - len(RAW_STATES))
    rng.shuffle(states)

    return [
        _job(rng, number=number, state=state, owner=owner, project_id=project_id, now=now)
        for number, (owner, state) in enumerate(zip(owners, states, strict=True), start=1)
    ]
