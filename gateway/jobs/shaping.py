"""Turning the upstream's answer into what callers receive.

Validates the upstream body's shape (garbage becomes ``UpstreamRejected``), keeps the
documented job fields minus personal data (``contact``) and internals (``project_id``), adds
``state_group``, ``cover_expires_at``, the stable ``cover_url`` and the signed ``cover_image_url``
(made by the caller, who knows the tenant: see ``gateway.jobs.image_links``), and drops any
``cover_download_url`` that is not servable for longer than the refresh margin. A job whose URL
cannot be handed out (not http(s), or holding a space or control character) has no cover.

A job is shown to a tenant only if its ``app_user_id`` is the tenant's: the upstream's page says
only that ``X-App-UserId`` names a third-party user and that a job carries the id it was created
with, not that the header limits the list. Tenant isolation does not rest on the upstream alone;
a job the upstream returns for another app user, or for none, is left out and counted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gateway.cache.entry import CoverLink
from gateway.clock import rfc3339
from gateway.errors import UpstreamRejected
from gateway.jobs.covers import cover_expiry, is_servable, is_usable_url
from gateway.jobs.states import state_group

_expiry_text = functools.lru_cache(maxsize=256)(rfc3339)
"""``rfc3339`` remembered for cover expiries: the links of one upstream page mostly share one
expiry, and formatting costs 2 µs a job."""

ImageUrl = Callable[[str], str]
"""A job id's ``cover_image_url``."""

# Documented TrainingJobBasicInfo fields a caller may see (allow-list: anything new or
# undocumented the upstream adds stays out until someone decides it is safe to show).
PUBLIC_FIELDS = (
    "job_id",
    "name",
    "state",
    "asset_id",
    "cover_download_url",
    "last_update_time",
    "create_time",
    "batch_name",
    "tags",
    "model_version",
    "matting_type",
    "model_resolution",
    "app_user_id",
    "is_flexus",
    "is_only_human_model",
)


@dataclass(frozen=True, slots=True)
class ShapedPage:
    """One upstream page as callers see it, plus every cover link found in it (servable or not)."""

    count: int
    jobs: list[dict[str, Any]]
    covers: dict[str, CoverLink]
    coverless: list[str]
    """The ids of the page's jobs without a cover (or with one that cannot be handed out)."""
    foreign: int
    """The jobs left out for not being the tenant's (another app user's, or no app user's)."""


@functools.lru_cache(maxsize=4096)
def job_path(job_id: str) -> str:
    """The gateway's path of a job (the job id percent-encoded as one segment). Remembered for
    the last 4,096 ids: a job's path is made twice per fetch (its cover and image links), and the
    same jobs come back in every fetch of a page."""
    return f"/v1/training-jobs/{quote(job_id, safe='')}"


def cover_path(job_id: str) -> str:
    """The gateway's stable cover path for a job."""
    return f"{job_path(job_id)}/cover"


def _shape_job(
    raw: Mapping[str, Any],
    *,
    fetched_at: float,
    margin_seconds: float,
    image_url: ImageUrl,
    covers: dict[str, CoverLink],
    coverless: list[str],
) -> dict[str, Any]:
    job = {name: raw[name] for name in PUBLIC_FIELDS if name in raw}
    job_id = job["job_id"]
    job["state_group"] = state_group(job.get("state"))
    url = job.pop("cover_download_url", None)
    if isinstance(url, str) and is_usable_url(url):  # else no cover: one odd URL costs only its job's
        expires_at = cover_expiry(url, fetched_at)
        covers[job_id] = CoverLink(url, expires_at)
        if is_servable(expires_at, fetched_at, margin_seconds):
            job["cover_download_url"] = url
            job["cover_expires_at"] = _expiry_text(expires_at)
        job["cover_url"] = cover_path(job_id)
        job["cover_image_url"] = image_url(job_id)
    else:
        coverless.append(job_id)
    return job


def shape_page(
    body: Any, *, app_user_id: str, fetched_at: float, margin_seconds: float, image_url: ImageUrl
) -> ShapedPage:
    """Validate and shape an upstream list body asked for as ``app_user_id``; raises
    ``UpstreamRejected`` on a wrong shape. Jobs of another app user are left out (``foreign``).
    ``image_url`` gives each job with a cover its ``cover_image_url``."""
    if not isinstance(body, dict):
        raise UpstreamRejected("the upstream answered with an unexpected body")
    count, jobs = body.get("count"), body.get("jobs")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0 or not isinstance(jobs, list):
        raise UpstreamRejected("the upstream answered with an unexpected body")
    covers: dict[str, CoverLink] = {}
    coverless: list[str] = []
    shaped = []
    foreign = 0
    for raw in jobs:
        if not isinstance(raw, dict) or not isinstance(raw.get("job_id"), str) or not raw["job_id"]:
            raise UpstreamRejected("the upstream answered with an unexpected body")
        if raw.get("app_user_id") != app_user_id:
            foreign += 1
            continue
        shaped.append(
            _shape_job(
                raw,
                fetched_at=fetched_at,
                margin_seconds=margin_seconds,
                image_url=image_url,
                covers=covers,
                coverless=coverless,
            )
        )
    return ShapedPage(count=count, jobs=shaped, covers=covers, coverless=coverless, foreign=foreign)
