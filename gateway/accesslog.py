"""The access log: one JSON object per request on a byte stream (stdout in production).

Hand-written on orjson rather than structlog: the hot path needs exactly one dict encoded per
request, and a processor chain would only add cost. Never given a credential, API key or
Authorization header: records are built field by field from known-safe values.

``UpstreamTrace`` lets the upstream client note its calls on the request that triggered them,
through a context variable (a load task inherits the triggering request's context).
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import IO, Any

import orjson


@dataclass(slots=True)
class UpstreamTrace:
    """Upstream attempts made on behalf of one request: (status or outcome, seconds)."""

    attempts: list[tuple[str, float]] = field(default_factory=list)


CURRENT_TRACE: contextvars.ContextVar[UpstreamTrace | None] = contextvars.ContextVar(
    "metastudio_gateway_upstream_trace", default=None
)


def note_upstream_attempt(outcome: str, seconds: float) -> None:
    """Record an upstream attempt on the request being served, if any."""
    trace = CURRENT_TRACE.get()
    if trace is not None:
        trace.attempts.append((outcome, seconds))


class AccessLog:
    """Writes one JSON line per record."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, record: dict[str, Any]) -> None:
        record["time"] = _utc_now()
        self._stream.write(orjson.dumps(record) + b"\n")
        self._stream.flush()


def _utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
