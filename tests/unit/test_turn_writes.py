"""The answers a turn of the event loop holds are written at its end, each connection's in order."""

from __future__ import annotations

import asyncio

from gateway.fastpath.turn_writes import QUIET_TURNS, TurnWrites


class Holder:
    """A connection holding answers: ``write_held`` moves them to ``events`` (what was sent)."""

    def __init__(self, name: str, events: list[str], *, failing: bool = False) -> None:
        self.name = name
        self.events = events
        self.failing = failing
        self.held: list[str] = []

    def write_held(self) -> None:
        held, self.held = self.held, []
        if held and self.failing:
            raise OSError("the transport refused the write")
        self.events.extend(f"{self.name}:{answer}" for answer in held)

    def force_close(self) -> None:
        self.events.append(f"{self.name} closed")


async def test_a_turns_held_answers_are_written_at_its_end_then_the_batch_work() -> None:
    loop = asyncio.get_running_loop()
    events: list[str] = []
    writes = TurnWrites(loop, lambda: events.append("batch work"), lambda exc: events.append(repr(exc)))
    first, second = Holder("a", events), Holder("b", events)
    for holder, answer in ((first, "1"), (first, "2"), (second, "1"), (first, "3")):
        holder.held.append(answer)
        writes.answered(holder)
    assert events == []  # nothing is sent before the turn's reads are done
    await asyncio.sleep(0)
    assert events == ["a:1", "a:2", "a:3", "b:1", "batch work"]
    second.held.append("2")  # the next turn schedules its own writes
    writes.answered(second)
    await asyncio.sleep(0)
    assert events[5:] == ["b:2", "batch work"]


async def test_answers_are_held_for_a_turns_end_until_turns_answer_one_connection_at_a_time() -> None:
    """With one connection at a time there is nothing to write together: answers are held for
    a turn's end from a turn that answered more than one connection (a connection answering
    twice in a row counts once) until ``QUIET_TURNS`` turns in a row answered one at most."""
    loop = asyncio.get_running_loop()
    writes = TurnWrites(loop, lambda: None, lambda exc: None)
    first, second = Holder("a", []), Holder("b", [])

    async def turn(*holders: Holder) -> bool:
        for holder in holders:
            writes.answered(holder)
        await asyncio.sleep(0)
        return writes.holding

    assert not writes.holding  # a quiet server writes at once
    assert not await turn(first, first)
    assert await turn(first, second)
    assert [await turn(second) for _ in range(QUIET_TURNS)] == [True] * (QUIET_TURNS - 1) + [False]
    assert await turn(second, first)


async def test_a_connection_whose_write_fails_is_closed_and_the_others_are_written() -> None:
    loop = asyncio.get_running_loop()
    events: list[str] = []
    failures: list[Exception] = []
    writes = TurnWrites(loop, lambda: events.append("batch work"), failures.append)
    failing, sound = Holder("a", events, failing=True), Holder("b", events)
    for holder in (failing, sound):
        holder.held.append("1")
        writes.answered(holder)
    await asyncio.sleep(0)
    assert events == ["a closed", "b:1", "batch work"]
    assert [type(exc) for exc in failures] == [OSError]
