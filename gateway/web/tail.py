"""The response tail: what every answer gets on its way out, whichever path made it.

The request id (echoed or made), the browser-safety headers (``X-Content-Type-Options: nosniff``
on every answer, ``Cache-Control: no-store`` on every error), the CORS headers, the request
counters and the access-log line. The handler chain (``gateway.web.observe``) and the fast path
(``gateway.fastpath.hits``) both take the request id from ``request_id``, their headers from
``decorate`` and are counted and logged by ``account``, so both send and record the same (the
fast path calls ``decorate`` once per head it builds (a memo hit reuses one), ``account`` on
every hit). ``settle`` does the batch work of what was accounted for, at once when a batch is
full and at the end of the event loop's turn once half a batch is pending: the chain calls it
as it finishes each answer (before aiohttp writes it, as before), the fast path after writing a
fetched answer; for the hits it answers, ``end_turn`` does, once the turn's answers are written
(``gateway.fastpath.turn_writes``).
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence

from gateway.observability.accesslog import FLUSH_EVERY_RECORDS, AccessLog, milliseconds
from gateway.observability.request_stats import RequestStats
from gateway.web.cors import CorsPolicy
from gateway.web.request_ids import RequestIds

TURN_LOG_BATCH = FLUSH_EVERY_RECORDS // 2
"""Log lines pending from which the end of the loop's turn does the batch work (see
``ResponseTail._end_turn``): half a batch."""

NOSNIFF = "nosniff"
NO_STORE = "no-store"
SERVER = "metastudio-gateway"
"""The ``Server`` of every answer: the product, no version of it or of Python and aiohttp (which
aiohttp's own says, and a scanner reads to pick known flaws; OWASP ASVS 14.3.3)."""


class ResponseTail:
    """Finishes an answer: headers every response carries, counted and logged once."""

    def __init__(self, *, cors: CorsPolicy, stats: RequestStats, access_log: AccessLog) -> None:
        self._ids = RequestIds()
        self._cors = cors
        self._stats = stats
        self._access_log = access_log
        self._turn_ending = False

    def request_id(self, given: str | None) -> str:
        """The id of a request that sent ``given`` as its X-Request-Id (``None`` if none)."""
        return self._ids.of(given)

    def decorate(self, headers: MutableMapping[str, str], origin: str | None, status: int) -> None:
        """The headers every answer with this status gets for this ``Origin``: browser safety
        and CORS (every header the tail adds but the request id)."""
        headers["X-Content-Type-Options"] = NOSNIFF
        if status >= 400:
            headers["Cache-Control"] = NO_STORE
        self._cors.decorate(origin, headers)

    def account(
        self,
        request_id: str,
        route: str,
        method: str,
        status: int,
        tenant: str,
        cache: str | None,
        seconds: float,
        attempts: Sequence[tuple[str, float]] = (),
    ) -> None:
        """Count and log one answer. ``attempts`` are the upstream calls made for it: (status or
        outcome, seconds). Only the route template is logged, never the path or query (a signed
        link's signature)."""
        self._stats.request(route, method, str(status), tenant, seconds)
        upstream = None
        if attempts:
            upstream = {
                "upstream_status": attempts[-1][0],
                "upstream_duration_ms": milliseconds(sum(s for _, s in attempts)),
                "upstream_attempts": len(attempts),
            }
        self._access_log.request(request_id, tenant, method, route, status, cache, seconds, upstream)

    def settle(self) -> None:
        """Do the batch work of what ``account`` noted (counters folded, log lines written):
        at once if a batch is full, and at the end of this turn of the event loop once half a
        batch of lines is pending (``_end_turn``). It is called once the answers accounted for
        are written, so none of them waits for it (the chain's: before aiohttp writes one)."""
        self._stats.settle()
        self._access_log.settle()
        if not self._turn_ending and self._access_log.pending >= TURN_LOG_BATCH:
            self._turn_ending = True
            asyncio.get_running_loop().call_soon(self._end_turn)

    def end_turn(self) -> None:
        """The batch work at the end of the loop's turn, once the turn's answers are written
        (the fast path's ``TurnWrites`` calls it): all of it once half a batch of lines is
        pending, as ``_end_turn`` would do next, else what ``settle`` does."""
        if self._access_log.pending >= TURN_LOG_BATCH:
            self._end_turn()
        else:
            self.settle()

    def _end_turn(self) -> None:
        """The batch work of what is pending, run by the loop after the turn's reads and before
        it polls again.

        Why there: libuv (uvloop) registers sockets with epoll level-triggered, so a poll
        returns the ready connections in the order of the last poll, and a connection whose
        next request has not arrived when the loop polls (the ones answered last) joins the
        list behind all the others and waits for most of two turns. Work done between the
        turn's last answer and the next poll lets those requests arrive in time: on a stand-in
        server the p99 drops from about two p50s towards one and a half
        (``benchmarks/epoll_tails.py``, "uvloop, turn-end work"), and in interleaved rounds
        against the gateway without it, to 0.81-0.86x (README, Performance; within the spread
        of the rounds in full runs). Under load every turn has this work (a
        turn holds a read from each busy connection); at a few connections a turn now and
        then does, so a quiet server does not pay a loop callback and a write per request."""
        self._turn_ending = False
        self._stats.fold()
        self._access_log.flush()
