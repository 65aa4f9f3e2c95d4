"""Fault injection: how the simulator misbehaves when tests or the chaos script ask it to.

A ``Fault`` says what goes wrong (``kind``), for whom (``app_user_id``; ``None`` is everyone),
how often (``probability``) and how many times (``remaining``; ``None`` until cleared).
Faults apply to authenticated jobs requests, after the signature check, first match wins.

Kinds: ``status`` (an error status in the upstream's error shape, optional ``Retry-After``:
seconds or any text),
``latency`` (answer normally after ``seconds``), ``reset`` (close the connection without an
answer), ``truncated`` (promise a body, send half, close), ``not_json``, ``wrong_shape``,
``huge`` (a 200 body far above any sane cap, streamed), ``slow_drip`` (a 200 body one byte
every ``seconds``).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from aiohttp import web

KINDS = ("status", "latency", "reset", "truncated", "not_json", "wrong_shape", "huge", "slow_drip")
HUGE_BODY_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class Fault:
    """One way to misbehave, and when."""

    kind: str
    status: int = 500
    retry_after: int | str | None = None
    """Seconds, or a value sent as it is (an HTTP date, or nonsense)."""
    seconds: float = 0.0
    app_user_id: str | None = None
    probability: float = 1.0
    remaining: int | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Fault:
        """Build from the control endpoint's JSON; ``ValueError`` on nonsense."""
        fault = cls(**raw)
        if fault.kind not in KINDS or not 0 <= fault.probability <= 1 or not 100 <= fault.status <= 599:
            raise ValueError(f"bad fault {raw!r}")
        return fault

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pick_fault(faults: list[Fault], app_user_id: str | None, rng: random.Random) -> Fault | None:
    """The first fault that targets this caller and fires this time (consuming one use)."""
    for fault in faults:
        if fault.app_user_id not in (None, app_user_id) or rng.random() >= fault.probability:
            continue
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
        return fault
    return None


async def faulty_response(request: web.Request, fault: Fault, good_body: bytes) -> web.StreamResponse:
    """Answer ``request`` the way ``fault`` says (``latency`` answers ``good_body`` late)."""
    if fault.kind == "latency":
        await asyncio.sleep(fault.seconds)
        return web.Response(body=good_body, content_type="application/json")
    if fault.kind == "not_json":
        return web.Response(body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    if fault.kind == "wrong_shape":
        return web.Response(body=orjson.dumps({"count": "many", "jobs": {"oops": 1}}), content_type="application/json")
    if fault.kind == "reset":
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError  # nothing more to say on a closed connection
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if fault.kind == "truncated":
        response.content_length = len(good_body)
        await response.prepare(request)
        await response.write(good_body[: len(good_body) // 2])
        assert request.transport is not None
        request.transport.abort()
        return response
    if fault.kind == "huge":
        response.enable_chunked_encoding()
        chunk = b"[" + b"0," * 32767 + b"0"
        pieces = [chunk] * (HUGE_BODY_BYTES // len(chunk))
    else:  # slow_drip
        response.content_length = len(good_body)
        pieces = [good_body[index : index + 1] for index in range(len(good_body))]
    await response.prepare(request)
    try:
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(fault.seconds)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client gave up reading: that was the point
    return response
