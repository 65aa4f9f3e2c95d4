"""The gateway's route templates: metric and log labels, and where each handler is mounted."""

from __future__ import annotations

LIST_ROUTE = "/v1/training-jobs"
JOB_ROUTE = "/v1/training-jobs/{job_id}"
COVER_ROUTE = f"{JOB_ROUTE}/cover"
COVER_IMAGE_ROUTE = f"{JOB_ROUTE}/cover-image"
"""A signed cover-image link (``gateway.jobs.image_links``): its query is never logged, only this template."""
JOB_PREFIX = "/v1/training-jobs/"
UNMATCHED_ROUTE = "unmatched"
