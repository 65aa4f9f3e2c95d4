"""The access log and the request counters do their work in batches, and lose nothing doing so."""

from __future__ import annotations

import asyncio
import io

import orjson
import pytest
from prometheus_client import CollectorRegistry

from gateway.observability.accesslog import FLUSH_EVERY_RECORDS, AccessLog, access_record
from gateway.observability.request_stats import FOLD_EVERY, RequestStats
from gateway.web.cors import CorsPolicy
from gateway.web.tail import TURN_LOG_BATCH, ResponseTail


def record(number: int) -> dict[str, object]:
    return access_record(f"id-{number}", "acme", "GET", "/v1/training-jobs", 200, "hit", 0.0001)


def logged_ids(stream: io.BytesIO) -> list[str]:
    """The request ids of the lines written to ``stream``, in order."""
    return [orjson.loads(line)["request_id"] for line in stream.getvalue().splitlines()]


def test_log_lines_are_written_per_batch_in_order_with_their_own_times() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=0.5)
    for number in range(FLUSH_EVERY_RECORDS - 1):
        log.write(record(number))
    assert stream.getvalue() == b""
    log.write(record(FLUSH_EVERY_RECORDS - 1))
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [f"id-{n}" for n in range(FLUSH_EVERY_RECORDS)]
    assert all(line["time"].endswith("Z") and line["duration_ms"] == 0.1 for line in lines)
    assert [line["time"] for line in lines] == sorted(line["time"] for line in lines)


def test_request_lines_are_written_when_settled_with_a_full_batch() -> None:
    """``request`` only notes a line; ``settle`` (which the server calls once the answers are
    written) writes the batch once it is full, in order."""
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=0.5)
    for number in range(FLUSH_EVERY_RECORDS - 1):
        log.request(f"id-{number}", "acme", "GET", "/v1/training-jobs", 200, "hit", 0.0001)
        log.settle()
    assert stream.getvalue() == b""
    log.request(f"id-{FLUSH_EVERY_RECORDS - 1}", "acme", "GET", "/v1/training-jobs", 200, "hit", 0.0001)
    assert stream.getvalue() == b""
    log.settle()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [f"id-{n}" for n in range(FLUSH_EVERY_RECORDS)]


def test_a_flush_writes_what_is_pending_and_nothing_twice() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=0.5)
    log.write(record(1))
    log.flush()
    log.flush()
    log.write(record(2))
    log.flush()
    assert logged_ids(stream) == ["id-1", "id-2"]


class CountingStream(io.BytesIO):
    """A log stream that counts the writes it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: object) -> int:
        self.writes += 1
        return super().write(data)  # type: ignore[call-overload]


def tail_logging_to(stream: io.BytesIO) -> ResponseTail:
    """A response tail whose access log writes to ``stream`` (its periodic flush a minute away)."""
    return ResponseTail(cors=CorsPolicy((), 60), stats=RequestStats(), access_log=AccessLog(stream, flush_interval=60))


def turn_of_reads(tail: ResponseTail, first: int, count: int) -> None:
    """``count`` reads answered in one turn of the loop, one answer each, settled as the chain does."""
    for number in range(first, first + count):
        tail.account(f"id-{number}", "/v1/training-jobs", "GET", 200, "acme", "hit", 0.0001)
        tail.settle()


async def test_a_busy_turns_log_lines_are_written_together_at_its_end() -> None:
    """``ResponseTail.settle``, called after each read's answers, leaves a batch that is not
    full for the end of the event loop's turn: then the turn's lines (half a batch or more)
    are written, in order and in one write, without waiting for a full batch or the
    periodic flush."""
    stream = CountingStream()
    tail = tail_logging_to(stream)
    turn_of_reads(tail, 0, TURN_LOG_BATCH)
    assert stream.getvalue() == b""  # the turn is not over
    await asyncio.sleep(0)
    assert logged_ids(stream) == [f"id-{n}" for n in range(TURN_LOG_BATCH)]
    assert stream.writes == 1


async def test_a_quiet_turns_log_lines_wait_to_be_written_with_later_ones() -> None:
    """A turn with fewer than half a batch of lines leaves them pending (a quiet server does not
    pay a write per request); the first turn that brings the pending lines to half a batch
    writes them all, in order, in one write."""
    stream = CountingStream()
    tail = tail_logging_to(stream)
    turn_of_reads(tail, 0, 3)
    await asyncio.sleep(0)
    assert stream.getvalue() == b""
    turn_of_reads(tail, 3, TURN_LOG_BATCH - 3)
    await asyncio.sleep(0)
    assert logged_ids(stream) == [f"id-{n}" for n in range(TURN_LOG_BATCH)]
    assert stream.writes == 1


def test_at_the_fast_paths_turn_end_half_a_batch_of_lines_is_written_at_once() -> None:
    """``ResponseTail.end_turn``, which the fast path calls once a turn's hits are written, writes
    the pending lines at once when they are half a batch or more (nothing is left for a later
    turn), in one write, and leaves fewer pending."""
    stream = CountingStream()
    tail = tail_logging_to(stream)
    for number in range(TURN_LOG_BATCH - 1):
        tail.account(f"id-{number}", "/v1/training-jobs", "GET", 200, "acme", "hit", 0.0001)
    tail.end_turn()
    assert stream.getvalue() == b""
    tail.account(f"id-{TURN_LOG_BATCH - 1}", "/v1/training-jobs", "GET", 200, "acme", "hit", 0.0001)
    tail.end_turn()
    assert logged_ids(stream) == [f"id-{n}" for n in range(TURN_LOG_BATCH)]
    assert stream.writes == 1


def test_request_counts_are_complete_at_every_scrape() -> None:
    """Counted in batches of ``FOLD_EVERY``, but a scrape sees every request so far."""
    stats = RequestStats()
    registry = CollectorRegistry()
    registry.register(stats)
    labels = {"route": "/v1/training-jobs", "method": "GET", "status": "200", "tenant": "acme"}
    bucket = {"route": "/v1/training-jobs", "le": "0.0025"}
    answered = 0
    for more in (1, FOLD_EVERY - 1, FOLD_EVERY * 2 + 5):
        for _ in range(more):
            stats.request("/v1/training-jobs", "GET", "200", "acme", 0.002)
            stats.settle()  # as the server does: folds whenever a batch is full
        answered += more
        assert registry.get_sample_value("metastudio_gateway_http_requests_total", labels) == answered
        assert registry.get_sample_value("metastudio_gateway_http_request_duration_seconds_bucket", bucket) == answered


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.0, 0.0), (0.000_000_4, 0.0), (0.000_123_4, 0.123), (0.000_123_6, 0.124), (0.0123, 12.3), (2.5, 2500.0)],
)
def test_durations_are_logged_in_milliseconds_to_the_microsecond(seconds: float, shown: float) -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=0)
    log.request("id-1", "acme", "GET", "/v1/training-jobs", 200, "hit", seconds)
    log.settle()
    assert orjson.loads(stream.getvalue())["duration_ms"] == shown


def test_logged_durations_agree_with_rounding_to_three_decimals_but_for_exact_halves() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=0.5)
    durations = [(micro + 0.3) / 1_000_000 for micro in range(0, 5_000_000, 997)]  # 0 to 5 s, off the halves
    for seconds in durations:
        log.request("id-1", "acme", "GET", "/v1/training-jobs", 200, "hit", seconds)
    log.flush()
    logged = [orjson.loads(line)["duration_ms"] for line in stream.getvalue().splitlines()]
    assert logged == [round(seconds * 1000, 3) for seconds in durations]
