"""Schemathesis hooks: the cross-parameter rules of ``GET /v1/training-jobs`` that OpenAPI cannot express.

Loaded by the schemathesis CLI through ``SCHEMATHESIS_HOOKS`` (see test_schemathesis.py), never by pytest.
Each parameter's own rules live in openapi.yaml; this rule relates two parameters, so a schema-valid
(positive) request can still break it. Positive cases are made to obey it, the way a correct client
would; negative cases are left alone (the gateway must reject those anyway).

* ``create_since`` must not be later than ``create_until``.
* ``/v1/training-jobs/{job_id}/cover-image`` takes a signed link's query: random values can only be
  refused (403), so a positive case is sent as a genuine link the gateway handed out (read from the
  job list with the key in ``SCHEMATHESIS_GATEWAY_KEY``), as a browser would.

(``state`` and ``state_group`` together are fine: both filters apply, as the spec's own example shows.)
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import schemathesis
from schemathesis import GenerationMode


def _moment(value: Any) -> datetime | None:
    """An RFC 3339 value as an aware datetime, or None when Python cannot read it."""
    try:
        moment = datetime.fromisoformat(str(value).upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def obey_cross_parameter_rules(case: Any) -> Any:
    """Make a positive case's query obey the rule above; leave every other case as it is."""
    meta = case.meta
    query = case.query
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE or not isinstance(query, dict):
        return case
    since, until = _moment(query.get("create_since")), _moment(query.get("create_until"))
    if since is not None and until is not None and since > until:
        query["create_since"], query["create_until"] = query["create_until"], query["create_since"]
    return case


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    """Examples phase: one case combines every parameter's example."""
    for case in examples:
        obey_cross_parameter_rules(case)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Coverage, fuzzing and stateful phases."""
    return obey_cross_parameter_rules(case)


COVER_IMAGE_PATH = "/v1/training-jobs/{job_id}/cover-image"
_LINKS: dict[str, tuple[str, dict[str, str]]] = {}


def _genuine_link(base_url: str) -> tuple[str, dict[str, str]]:
    """A job id and the query of its cover_image_url, as the gateway lists them (fetched once)."""
    if base_url not in _LINKS:
        request = urllib.request.Request(
            f"{base_url}/v1/training-jobs?limit=100",
            headers={"Authorization": f"Bearer {os.environ['SCHEMATHESIS_GATEWAY_KEY']}"},
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            jobs = json.load(response)["jobs"]
        job = next(job for job in jobs if "cover_image_url" in job)
        _LINKS[base_url] = job["job_id"], dict(parse_qsl(urlsplit(job["cover_image_url"]).query))
    return _LINKS[base_url]


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A positive case of the cover-image route is sent as a genuine link."""
    meta = case.meta
    if case.operation.path != COVER_IMAGE_PATH or meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    job_id, query = _genuine_link(case.operation.base_url.rstrip("/"))
    case.path_parameters = {**(case.path_parameters or {}), "job_id": job_id}
    case.query = {**(case.query or {}), **query}
