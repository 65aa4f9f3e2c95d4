"""Strict validation of ``GET /v1/training-jobs`` query strings.

The result is the normalised upstream query: a sorted tuple of ``(name, value)`` pairs with
the gateway's defaults made explicit (``offset``, ``limit``), so equivalent requests (other
order, a default spelled out, a group versus its states) produce the same cache key and the same
upstream request. ``sort_dir=asc`` is sent as asked, not left out as the upstream's documented
default: its page's own example, asked without it, comes back in descending order, so what
``asc`` alone does upstream is not known to be the same as nothing. Times are whole seconds in UTC,
rounded so that no job outside the range asked for can match: ``create_since`` up,
``create_until`` down. Anything unknown, repeated or malformed raises ``InvalidParameter``
naming the parameter.

``state`` and ``state_group`` given together both apply: the upstream is asked for the states in
both sets. When no state is in both, or the time range holds no whole second, the query carries
``NO_STATE_MATCHES`` (``state`` with an empty value, which no client can send): no job can match,
so the service answers an empty page without calling the upstream (see ``matches_nothing``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from gateway.errors import InvalidParameter
from gateway.jobs.states import ALL_STATES, STATE_GROUPS
from gateway.numbers import ascii_digits
from gateway.upstream.query import UpstreamQuery

MAX_INT32 = 2_147_483_647
DEFAULT_OFFSET = 0
DEFAULT_LIMIT = 10
MAX_TEXT_LENGTH = 256
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RFC3339 = re.compile(
    r"(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _integer(name: str, value: str, low: int, high: int) -> str:
    if not ascii_digits(value) or len(value) > 10 or not low <= int(value) <= high:
        raise InvalidParameter(name, f"must be an integer from {low} to {high}")
    return str(int(value))


def _choice(*choices: str) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        if value not in choices:
            raise InvalidParameter(name, f"must be one of {', '.join(choices)}")
        return value

    return check


def _text(name: str, value: str) -> str:
    if not value or len(value) > MAX_TEXT_LENGTH or _CONTROL.search(value):
        raise InvalidParameter(name, f"must be 1 to {MAX_TEXT_LENGTH} printable characters")
    if "\ufffd" in value:  # what percent-encoded bytes that are not UTF-8 decode to
        raise InvalidParameter(name, "must be percent-encoded UTF-8")
    return value


def is_job_id(value: str) -> bool:
    """Whether ``value`` is a job id as MetaStudio issues them (letters, digits, '-', '_'; at most 64)."""
    return _JOB_ID.fullmatch(value) is not None


def check_job_id(name: str, value: str) -> str:
    """``value``, if it is a job id (see ``is_job_id``)."""
    if not is_job_id(value):
        raise InvalidParameter(name, "must be 1 to 64 letters, digits, '-' or '_'")
    return value


def parse_time(name: str, value: str) -> datetime:
    """An RFC 3339 time with an explicit offset, as an aware UTC datetime."""
    if len(value) > 40 or not _RFC3339.fullmatch(value):
        if " " in value:  # a '+' sent as it is: a query string decodes it to a space
            raise InvalidParameter(name, "must be an RFC 3339 time; write a '+' in its offset as %2B")
        raise InvalidParameter(name, "must be an RFC 3339 time, e.g. 2024-05-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidParameter(name, "must be an RFC 3339 time, e.g. 2024-05-01T00:00:00Z") from exc
    if moment.tzinfo is None:
        raise InvalidParameter(name, "must carry a UTC offset or Z")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: clamp to the representable range
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def _whole_second(moment: datetime, *, up: bool) -> str:
    """``moment`` to the whole second (``up``: the next one, if it has a fraction), as the upstream
    takes it."""
    if up and moment.microsecond:
        with contextlib.suppress(OverflowError):  # the last second of year 9999: none comes after it
            moment += timedelta(seconds=1)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _comma_list(name: str, value: str, known: Iterable[str]) -> list[str]:
    items = value.split(",")
    allowed = set(known)
    for item in items:
        if item not in allowed:
            raise InvalidParameter(name, f"unknown value '{item[:64]}'")
    return items


_SIMPLE: dict[str, Callable[[str, str], str]] = {
    "offset": lambda n, v: _integer(n, v, 0, MAX_INT32),
    "limit": lambda n, v: _integer(n, v, 1, 100),
    "sort_key": _choice("create_time", "update_time", "asset_order"),
    "sort_dir": _choice("asc", "desc"),
    "batch_name": _text,
    "tag": _text,
    "name": _text,
    "job_id": check_job_id,
    "model_resolution": _choice("1080P", "4K"),
    "is_flexus": _choice("true", "false"),
}
_ROUNDED_UP = {"create_since": True, "create_until": False}
"""The time filters, and whether each is rounded up to a whole second (else down)."""
ACCEPTED_PARAMETERS = frozenset({*_SIMPLE, *_ROUNDED_UP, "state", "state_group"})
NO_STATE_MATCHES = ("state", "")
"""The pair a query carries when ``state`` and ``state_group`` have no state in common."""


def matches_nothing(query: UpstreamQuery) -> bool:
    """Whether the query's filters exclude every job (see ``NO_STATE_MATCHES``): never sent upstream."""
    return NO_STATE_MATCHES in query


def parse_list_query(items: Iterable[tuple[str, str]]) -> UpstreamQuery:
    """Validate a client's query pairs and return the normalised upstream query."""
    seen: dict[str, str] = {}
    for name, value in items:
        if name not in ACCEPTED_PARAMETERS:
            raise InvalidParameter(name[:64], "is not a supported parameter")
        if name in seen:
            raise InvalidParameter(name, "may be given only once")
        seen[name] = value
    params = {name: _SIMPLE[name](name, value) for name, value in seen.items() if name in _SIMPLE}
    states = _states(seen)
    if states is not None:
        params["state"] = ",".join(states)  # empty: NO_STATE_MATCHES
    times = {name: parse_time(name, seen[name]) for name in _ROUNDED_UP if name in seen}
    params.update((name, _whole_second(moment, up=_ROUNDED_UP[name])) for name, moment in times.items())
    if len(times) == 2:
        if times["create_since"] > times["create_until"]:
            raise InvalidParameter("create_since", "must not be later than create_until")
        if params["create_since"] > params["create_until"]:  # within one second: no whole second
            params["state"] = NO_STATE_MATCHES[1]
    params.setdefault("offset", str(DEFAULT_OFFSET))
    params.setdefault("limit", str(DEFAULT_LIMIT))
    return tuple(sorted(params.items()))


def _states(seen: dict[str, str]) -> list[str] | None:
    """The raw states asked for (both filters apply when both are given), or ``None`` for any."""
    wanted: set[str] | None = None
    if "state" in seen:
        wanted = set(_comma_list("state", seen["state"], ALL_STATES))
    if "state_group" in seen:
        groups = _comma_list("state_group", seen["state_group"], STATE_GROUPS)
        in_groups = {state for group in groups for state in STATE_GROUPS[group]}
        wanted = in_groups if wanted is None else wanted & in_groups
    return None if wanted is None else sorted(wanted)


REMEMBERED_QUERY_BYTES = 512
"""The longest raw query string remembered: the lists asked again and again are short; with
long filters each query held up to about 8 KB (its text and its parse), 32 MiB at the bound,
and the fast path reads the query before the caller, so anyone could fill it."""


class ParsedQueries:
    """Raw query strings already validated, with their normalised queries: popular lists skip
    parsing and validation. Only valid queries up to ``REMEMBERED_QUERY_BYTES`` are remembered (a
    bad one raises every time, a longer one is parsed every time), at most ``maxsize``, then all
    are forgotten at once: a plain dict look-up on the hit path."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._maxsize = maxsize
        self._queries: dict[str, UpstreamQuery] = {}

    def known(self, raw_query: str) -> UpstreamQuery | None:
        """The normalised query for a raw query string seen before, else ``None``."""
        return self._queries.get(raw_query)

    def parse(self, raw_query: str, items: Callable[[], Iterable[tuple[str, str]]]) -> UpstreamQuery:
        """The normalised query for ``raw_query``, parsing ``items()`` (its decoded pairs) the first time."""
        query = self._queries.get(raw_query)
        if query is None:
            query = parse_list_query(items())
            if len(raw_query) <= REMEMBERED_QUERY_BYTES:
                if len(self._queries) >= self._maxsize:
                    self._queries.clear()
                self._queries[raw_query] = query
        return query
