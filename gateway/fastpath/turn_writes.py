"""The plain hits answered in a turn of the event loop, written together at its end.

A connection that answers plain hits (``gateway.fastpath.protocol``) does not write each answer
as it makes it while the server is busy: it holds the bytes, and ``TurnWrites`` writes every
held answer once the loop has run the turn's reads, before it polls again, then does the batch
work of their counters and log lines (``after``). This is Netty's flush consolidation
(``FlushConsolidationHandler``: flushes passed on at ``channelReadComplete``, or as a task on
the loop). Under load a turn holds a read from many connections; making their answers back to
back and then sending them back to back costs the server less CPU per hit than alternating a
hit's Python with its ``send``. In interleaved A/B rounds against stop 33's code (``wrk -c50``,
eight pairs each): 1.31x the hits a second, 7.2 µs less CPU each, the p99 0.69x (holding in
every turn, a quiet hour); 1.37x, 9.8 µs less, 0.83x (this form, a noisy hour); at ``-c8``
1.11x. A quiet server (``QUIET_TURNS``) writes at once, as before: at one connection there is
nothing to write together, and holding cost about 5 µs a hit (writing at once, 1.02x and 1.05x
against stop 33's code). An answer waits at most for the rest of its
turn's reads. What a connection holds is its own to keep in order: it writes what it holds
before anything else is written or closed on it (see ``HitServingRequestHandler``), and past
``HOLD_AT_MOST`` bytes it writes at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

HOLD_AT_MOST = 65536
"""Bytes of answers a connection holds within a turn beyond which it writes them at once: the
transport's own flow control (a client not reading) then sees them, as it would have."""

QUIET_TURNS = 8
"""Turns in a row answering one connection at most after which answers are written at once.
Under load a turn now and then answers a single connection (31 turns in 4,000 at ``wrk -c50``);
one such turn is no sign of a quiet server. With 8, answers were written at once in 7 turns of
those 4,000; with 1, hits a second read 0.963x of holding them always (medians of eight
interleaved pairs; two runs of the same code read 0.973x)."""


class HoldsAnswers(Protocol):
    """A connection holding answers for the end of the turn."""

    def write_held(self) -> None:
        """Write the answers held, if any (none: nothing happens); they are held no more."""

    def force_close(self) -> None:
        """Close the connection."""


class TurnWrites:
    """The connections that answered in this turn of ``loop``; ``after`` runs once their held
    answers are written. A connection whose write fails is closed (its later answers could not
    follow in order) and the failure given to ``failed``; the others are written all the same."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, after: Callable[[], None], failed: Callable[[Exception], None]
    ) -> None:
        self._loop = loop
        self._after = after
        self._failed = failed
        self._answered: list[HoldsAnswers] = []
        self._quiet_turns = QUIET_TURNS
        """Turns in a row, up to the last, whose answers came from one connection at most."""
        self.holding = False
        """Whether this turn's answers are held for its end: unless the last ``QUIET_TURNS``
        turns each answered one connection at most (a quiet server, or one client at a time:
        there is nothing to write together, and a write at once costs less)."""

    def answered(self, connection: HoldsAnswers) -> None:
        """Note that ``connection`` answered in this turn: its held answers are written at the
        turn's end (the turn's first answer schedules the writes). A connection answering again
        right after itself is noted once; noted twice in a turn, it is written once (the second
        ``write_held`` finds nothing)."""
        answered = self._answered
        if not answered:
            self._loop.call_soon(self._write)
        elif answered[-1] is connection:
            return
        answered.append(connection)

    def _write(self) -> None:
        answered, self._answered = self._answered, []
        self._quiet_turns = 0 if len(answered) > 1 else min(self._quiet_turns + 1, QUIET_TURNS)
        self.holding = self._quiet_turns < QUIET_TURNS
        for connection in answered:
            try:
                connection.write_held()
            except Exception as exc:
                connection.force_close()
                self._failed(exc)
        self._after()
