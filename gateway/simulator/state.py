"""What a running simulator remembers and what tests may inspect or tune.

Everything lives in one ``SimulatorState`` stored on the app under ``SIMULATOR_STATE``: the
dataset, the request log and a few knobs. Nothing here is module-level and mutable.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.simulator.faults import Fault

JobRecord = dict[str, Any]
"""One upstream job as stored: the documented fields plus ``_``-prefixed bookkeeping keys."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the jobs endpoint received, accepted or not."""

    method: str
    path: str
    """The raw (still percent-encoded) path, without the query."""
    query: tuple[tuple[str, str], ...]
    """Decoded ``(name, value)`` pairs in wire order."""
    headers: Mapping[str, str]
    """As received, names case-preserved (a plain dict: a repeated header keeps its last value)."""
    app_user_id: str | None
    status: int
    rejection: str | None = None
    """Why the request was refused (for test diagnostics only; never sent to the caller)."""


@dataclass(slots=True)
class SimulatorState:
    """The simulator's mutable state: its dataset, its request log and the knobs tests turn.

    ``access_key``/``secret_key``/``security_token`` are the credentials the jobs endpoint
    accepts; assigning new values models a credential rotation. ``project_id`` is fixed at
    creation (the dataset's jobs carry it).

    ``jobs`` holds raw upstream job dicts. Keys starting with ``_`` are bookkeeping and never
    sent: ``_asset_order`` (int, the ``sort_key=asset_order`` order) and ``_has_cover`` (bool,
    whether the job gets a ``cover_download_url``). Tests may edit, add or remove jobs.
    """

    project_id: str
    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    jobs: list[JobRecord] = field(default_factory=list)
    request_log: list[RecordedRequest] = field(default_factory=list)
    cover_issue_lag_seconds: float = 0.0
    """Cover URLs are issued as if signed this many seconds ago (an upstream handing out aging URLs)."""
    fail_next: list[int] = field(default_factory=list)
    """Statuses to answer, one per authenticated jobs request, before serving normally again."""
    response_delay_seconds: float = 0.0
    """Real seconds the jobs endpoint waits before answering (for client timeout tests)."""
    faults: list[Fault] = field(default_factory=list)
    """Richer misbehaviour (see ``faults``): targeted, probabilistic, of any kind."""
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 - not for secrets
    """Decides which requests a probabilistic fault hits (seeded: runs repeat)."""
    seed: int = 0
    """The dataset's seed; other app user ids' jobs are derived from it and the id."""
    dataset_time: float = 0.0
    """The clock reading the dataset was generated at (job times are before it)."""
    jobs_per_user: int | None = None
    """Each app user id's job count (``None``: 25 to 40)."""
    app_user_ids: set[str] = field(default_factory=set)
    """App user ids whose jobs are in ``jobs``: the built-in ones, then each other id on its first request."""
    scoped_by_app_user_id: bool = True
    """Whether ``X-App-UserId`` limits the list to that user's jobs, as the gateway expects. The
    upstream's page does not say it does (only that a job carries the id it was created with):
    ``False`` models an upstream that ignores the header and returns every job of the project."""


SIMULATOR_STATE: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)
