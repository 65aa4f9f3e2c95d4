"""The gateway's route templates: metric and log labels, and where each handler is mounted."""

from __future__ import annotations

LIST_ROUTE = "/v1/training-jobs"
JOB_ROUTE = "/v1/training-jobs/{job_id}"
COVER_ROUTE = f"{JOB_ROUTE}/cover"
JOB_PREFIX = "/v1/training-jobs/"
UNMATCHED_ROUTE = "unmatched"
