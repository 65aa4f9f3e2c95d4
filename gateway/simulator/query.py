"""The jobs endpoint's query parameters: validation, then filtering, sorting and paging.

Stricter than the documentation requires, so that a client bug shows up as a 400 instead of
silently ignored input: unknown and repeated parameters are refused too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gateway.simulator.dataset import RAW_STATES
from gateway.simulator.state import JobRecord

MAX_OFFSET = 2_147_483_647
MAX_LIMIT = 100
SORT_KEYS = ("create_time", "update_time", "asset_order")
MODEL_RESOLUTIONS = ("1080P", "4K")
_DIGITS = re.compile(r"[0-9]{1,10}")
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class InvalidQuery(Exception):
    """A query parameter is unknown, repeated or has a bad value."""

    def __init__(self, parameter: str) -> None:
        super().__init__(f"invalid parameter {parameter!r}")
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A validated jobs query. ``None`` means "no such filter"."""

    offset: int = 0
    limit: int = 10
    sort_key: str = "create_time"
    descending: bool = False
    create_since: float | None = None
    create_until: float | None = None
    states: frozenset[str] | None = None
    query_project_id: str | None = None
    batch_name: str | None = None
    tag: str | None = None
    job_id: str | None = None
    name: str | None = None
    model_resolution: str | None = None
    is_flexus: bool | None = None


def parse_rfc3339(value: str) -> float | None:
    """Unix seconds of an RFC 3339 date-time (offset required), or ``None`` if it is not one."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    date, time, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{date}T{time}{(fraction or '')[:7]}{offset}").timestamp()
    except ValueError:
        return None


def _integer(value: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= high:
        raise ValueError(value)
    return int(value)


def _one_of(value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(value)
    return value


def _time(value: str) -> float:
    moment = parse_rfc3339(value)
    if moment is None:
        raise ValueError(value)
    return moment


def _states(value: str) -> frozenset[str]:
    states = value.split(",")
    if any(state not in RAW_STATES for state in states):
        raise ValueError(value)
    return frozenset(states)


def _boolean(value: str) -> bool:
    return {"true": True, "false": False}[value]


_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "offset": ("offset", lambda v: _integer(v, 0, MAX_OFFSET)),
    "limit": ("limit", lambda v: _integer(v, 1, MAX_LIMIT)),
    "sort_key": ("sort_key", lambda v: _one_of(v, SORT_KEYS)),
    "sort_dir": ("descending", lambda v: _one_of(v, ("asc", "desc")) == "desc"),
    "create_since": ("create_since", _time),
    "create_until": ("create_until", _time),
    "state": ("states", _states),
    "query_project_id": ("query_project_id", str),
    "batch_name": ("batch_name", str),
    "tag": ("tag", str),
    "job_id": ("job_id", str),
    "name": ("name", str),
    "model_resolution": ("model_resolution", lambda v: _one_of(v, MODEL_RESOLUTIONS)),
    "is_flexus": ("is_flexus", _boolean),
}


def parse_query(pairs: Sequence[tuple[str, str]]) -> ListQuery:
    """Validate decoded query pairs; raises ``InvalidQuery`` naming the first bad parameter."""
    seen: set[str] = set()
    values: dict[str, Any] = {}
    for name, raw in pairs:
        if name not in _PARSERS or name in seen:
            raise InvalidQuery(name)
        seen.add(name)
        field_name, parse = _PARSERS[name]
        try:
            values[field_name] = parse(raw)
        except (ValueError, KeyError) as exc:
            raise InvalidQuery(name) from exc
    return replace(ListQuery(), **values)


def _seconds(job: JobRecord, field_name: str) -> float:
    """A job's time field in Unix seconds (0 when absent or unparsable)."""
    value = job.get(field_name)
    moment = parse_rfc3339(value) if isinstance(value, str) else None
    return moment if moment is not None else 0.0


def _matches(job: JobRecord, query: ListQuery, app_user_id: str | None) -> bool:
    """Whether the job passes every filter of the query and the app user id."""
    if app_user_id is not None and job.get("app_user_id") != app_user_id:
        return False
    if query.states is not None and job.get("state") not in query.states:
        return False
    if query.create_since is not None and _seconds(job, "create_time") < query.create_since:
        return False
    if query.create_until is not None and _seconds(job, "create_time") > query.create_until:
        return False
    if query.batch_name is not None and job.get("batch_name") != query.batch_name:
        return False
    if query.tag is not None and query.tag not in job.get("tags", ()):
        return False
    if query.job_id is not None and job.get("job_id") != query.job_id:
        return False
    if query.name is not None and query.name not in job.get("name", ""):
        return False
    # The documented default resolution is 1080P, so a job without the field is a 1080P one.
    if query.model_resolution is not None and job.get("model_resolution", "1080P") != query.model_resolution:
        return False
    return query.is_flexus is None or job.get("is_flexus") is query.is_flexus


def _sort_value(job: JobRecord, sort_key: str) -> float:
    """The value ``sort_key`` orders a job by."""
    if sort_key == "asset_order":
        return float(job.get("_asset_order", 0))
    return _seconds(job, "create_time" if sort_key == "create_time" else "last_update_time")


def select_jobs(
    jobs: Sequence[JobRecord], query: ListQuery, *, project_id: str, app_user_id: str | None
) -> tuple[int, list[JobRecord]]:
    """Return the number of matching jobs of ``project_id`` and the requested page of them.

    ``app_user_id`` (the ``X-App-UserId`` header) limits the jobs to that user's; a
    ``query_project_id`` other than ``project_id`` matches nothing. Sorting is by
    ``sort_key`` (default ``create_time``) in ``sort_dir`` order, ties by ascending ``job_id``.
    """
    if query.query_project_id is not None and query.query_project_id != project_id:
        return 0, []
    matching = [job for job in jobs if job.get("project_id") == project_id and _matches(job, query, app_user_id)]
    matching.sort(key=lambda job: str(job.get("job_id", "")))
    # Python's sort is stable, also with reverse=True, so the job_id order survives ties.
    matching.sort(key=lambda job: _sort_value(job, query.sort_key), reverse=query.descending)
    return len(matching), matching[query.offset : query.offset + query.limit]
