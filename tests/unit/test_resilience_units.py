"""The pure resilience pieces on a fake clock: circuit breaker, token bucket, retry budget, key
backoff, the delay between upstream attempts."""

from __future__ import annotations

import gc
import logging
import tracemalloc
import weakref

import pytest

from gateway.admission.rate_limit import RateLimit, TenantRateLimiter
from gateway.cache.backoff import KEPT_BYTES, RETRY_AFTER_MAX_SECONDS, KeyBackoff
from gateway.cache.keys import job_key, list_key
from gateway.clock import ManualClock
from gateway.config.settings import CircuitBreakerSettings
from gateway.errors import UpstreamRejected, UpstreamUnavailable
from gateway.upstream.breaker import ADMITTED, CLOSED, HALF_OPEN, OPEN, PROBE, CircuitBreaker
from gateway.upstream.client import retry_delay
from gateway.upstream.retry_budget import RetryBudget

POLICY = CircuitBreakerSettings(window_seconds=10, min_calls=4, failure_ratio=0.5, open_seconds=5)


K, J, R, S = (job_key("acme", name) for name in "kjrs")


def test_breaker_stays_closed_below_min_calls() -> None:
    """Three failures out of three calls do not open it when min_calls is four."""
    breaker = CircuitBreaker(POLICY, ManualClock())
    for _ in range(3):
        breaker.record(ADMITTED, failed=True)
    assert breaker.state == CLOSED


def test_breaker_opens_on_the_failure_ratio_and_probes_once() -> None:
    """At the ratio it opens; after open_seconds exactly one probe is let through; success closes it."""
    clock = ManualClock()
    breaker = CircuitBreaker(POLICY, clock)
    for failed in (True, False, True, False):
        breaker.record(ADMITTED, failed=failed)
    assert breaker.state == OPEN and not breaker.allow()
    clock.advance(5)
    assert breaker.state == HALF_OPEN
    probe = breaker.allow()
    assert probe == PROBE and not breaker.allow()
    breaker.record(probe, failed=False)
    assert breaker.state == CLOSED and breaker.allow()


def test_failed_probe_reopens() -> None:
    """A failed half-open probe opens the circuit for another open_seconds."""
    clock = ManualClock()
    breaker = CircuitBreaker(POLICY, clock)
    for _ in range(4):
        breaker.record(ADMITTED, failed=True)
    clock.advance(5)
    probe = breaker.allow()
    assert probe == PROBE
    breaker.record(probe, failed=True)
    assert breaker.state == OPEN


def test_only_the_probe_decides_half_open(caplog: pytest.LogCaptureFixture) -> None:
    """A call let through while closed that ends after the circuit opened (a slow one) does not
    close it when it succeeds in half-open, nor does it log that calls flow again: the probe's
    outcome decides (its failure opens the circuit again)."""
    clock = ManualClock()
    breaker = CircuitBreaker(POLICY, clock, "acme-web")
    slow = breaker.allow()
    for _ in range(4):
        breaker.record(breaker.allow(), failed=True)
    clock.advance(5)
    probe = breaker.allow()
    caplog.clear()  # the opening's warning
    with caplog.at_level(logging.INFO, logger="gateway.upstream.breaker"):
        breaker.record(slow, failed=False)
        assert breaker.state == HALF_OPEN and not caplog.records
        breaker.record(probe, failed=True)
    assert breaker.state == OPEN


def test_old_failures_leave_the_window() -> None:
    """Failures older than window_seconds no longer count."""
    clock = ManualClock()
    breaker = CircuitBreaker(POLICY, clock)
    for _ in range(3):
        breaker.record(ADMITTED, failed=True)
    clock.advance(11)
    breaker.record(ADMITTED, failed=True)
    assert breaker.state == CLOSED


def test_the_breaker_and_the_retry_budget_keep_their_windows_when_the_clock_steps_back() -> None:
    """An hour of healthy traffic, then the wall clock steps back an hour: the retry budget still
    grants retries at its ratio of the last 10 s (not of the hour), and failures open the breaker
    once they are half of the last 30 s of calls (the hour's successes are out of its window)."""
    clock = ManualClock()
    budget = RetryBudget(clock, ratio=0.2, floor=3, window_seconds=10)
    breaker = CircuitBreaker(CircuitBreakerSettings(window_seconds=30, min_calls=10, failure_ratio=0.5), clock)
    for _ in range(3600):
        budget.record_first_attempt()
        breaker.record(ADMITTED, failed=False)
        clock.advance(1)
    clock.advance(-3600)
    opened_after = None
    for second in range(1, 31):
        budget.record_first_attempt()
        breaker.record(ADMITTED, failed=True)
        if opened_after is None and breaker.state == OPEN:
            opened_after = second
        clock.advance(1)
    granted = 0
    while budget.try_retry():
        granted += 1
    assert granted <= 3 + 0.2 * 10
    assert opened_after == 15  # half of the last 30 s of calls failed


def test_token_bucket_allows_burst_then_rate() -> None:
    """Burst tokens first, then one per 1/rate seconds; the wait is reported in whole seconds."""
    clock = ManualClock()
    limiter = TenantRateLimiter({"acme": RateLimit(per_second=0.5, burst=2)}, clock)
    assert [limiter.retry_after("acme") for _ in range(3)] == [0, 0, 2]
    clock.advance(2)
    assert limiter.retry_after("acme") == 0
    assert limiter.retry_after("other") == 0


def test_retry_budget_grants_the_floor_then_the_ratio() -> None:
    """With no first attempts only the floor is granted; 10 first attempts add 2 at ratio 0.2."""
    clock = ManualClock()
    budget = RetryBudget(clock, ratio=0.2, floor=1, window_seconds=10)
    assert budget.try_retry() and not budget.try_retry()
    for _ in range(10):
        budget.record_first_attempt()
    assert budget.try_retry() and budget.try_retry() and not budget.try_retry()
    clock.advance(11)
    assert budget.try_retry()


def test_retry_budget_forgets_first_attempts_that_left_its_window() -> None:
    """An upstream that never fails never asks for a retry; the first attempts the budget counts
    must still age out, or every upstream call would hold memory for good."""
    clock = ManualClock()
    budget = RetryBudget(clock, window_seconds=10)
    tracemalloc.start()
    try:
        for _ in range(1_000):  # the window filled: from here on, one in and one out
            budget.record_first_attempt()
            clock.advance(0.5)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            budget.record_first_attempt()
            clock.advance(0.5)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 10_000  # kept for good, 100,000 attempts would hold about 3 MB
    for _ in range(7):  # the 20 first attempts of the last 10 s, at 0.2, add 4 retries to the floor of 3
        assert budget.try_retry()
    assert not budget.try_retry()


def test_key_backoff_doubles_and_honours_retry_after() -> None:
    """Each failure doubles the key's wait (capped); a longer Retry-After wins; success forgets."""
    clock = ManualClock()
    backoff = KeyBackoff(clock, base_seconds=1, cap_seconds=8)
    backoff.failed(K, UpstreamUnavailable())
    assert backoff.blocked(K) is not None
    clock.advance(1)
    assert backoff.blocked(K) is None
    backoff.failed(K, UpstreamUnavailable())
    clock.advance(1.5)
    assert backoff.blocked(K) is not None
    backoff.failed(J, UpstreamUnavailable(retry_after_seconds=5))
    clock.advance(4)
    assert backoff.blocked(J) is not None
    backoff.succeeded(K)
    assert backoff.blocked(K) is None


def test_key_backoff_says_how_long_and_stays_at_its_cap_however_long_a_key_fails() -> None:
    """``failed`` gives the seconds until the key may be tried again (what callers are told to
    wait). A key failing for hours on end (asked again as soon as it may be: 1,100 failures, nine
    hours at the default 30 s cap) stays at the cap: the doubling overflowed a float from the
    1,025th failure on, and ``failed`` raised instead of blocking the key (a 500 for the caller,
    and the key asked again on every request)."""
    clock = ManualClock()
    backoff = KeyBackoff(clock, base_seconds=1, cap_seconds=8)
    assert [backoff.failed(K, UpstreamUnavailable()) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert backoff.failed(J, UpstreamUnavailable(retry_after_seconds=5)) == 5
    # The upstream's word is kept past the doubling's cap, up to five minutes.
    assert backoff.failed(R, UpstreamUnavailable(retry_after_seconds=120)) == 120
    clock.advance(100)  # past four caps since that failure, not past its backoff: still remembered
    assert backoff.blocked(R) is not None
    assert backoff.failed(S, UpstreamUnavailable(retry_after_seconds=1e9)) == RETRY_AFTER_MAX_SECONDS
    defaults = KeyBackoff(clock)  # as the app builds it
    delays = []
    for _ in range(1_100):
        clock.advance(30)
        delays.append(defaults.failed(K, UpstreamUnavailable()))
    assert delays[:6] == [1, 2, 4, 8, 16, 30] and set(delays[5:]) == {30}
    assert defaults.blocked(K) is not None


def test_key_backoff_holds_at_most_its_bytes_whatever_keys_fail() -> None:
    """A tenant asking many distinct long queries while the upstream fails: the failing keys
    held stay within twice KEPT_BYTES (cachetools keeps evicted items in its heap until it holds
    twice the live ones), the least recently failed going first. 100,000 keys of about 4 KB were
    kept: 400 MiB no limit counted (48 MiB for these 20,000)."""
    clock = ManualClock()
    backoff = KeyBackoff(clock, base_seconds=1, cap_seconds=8)

    def query(page: int) -> tuple[tuple[str, str], ...]:  # as parsed from a request: new strings each time
        return tuple((f"name_{index}", f"{page}:" + "漢" * 250) for index in range(3))

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for page in range(20_000):  # about 80 MB of keys
            backoff.failed(list_key("acme", query(page)), UpstreamUnavailable())
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < KEPT_BYTES * 2
    assert backoff.blocked(list_key("acme", query(19_999))) is not None
    assert backoff.blocked(list_key("acme", query(0))) is None  # the least recently failed went first


class _Held:
    """Something a failed load held (a weak reference can watch it)."""


def _failed_load() -> tuple[UpstreamRejected, weakref.ref[_Held]]:
    held = _Held()
    try:
        raise UpstreamRejected("the upstream's body is over the limit", outcome="oversized_body")
    except UpstreamRejected as error:  # its traceback holds this frame, and the frame ``held``
        return error, weakref.ref(held)


def test_key_backoff_keeps_neither_the_error_nor_what_the_failed_load_held() -> None:
    """A failing key answers with an error of the same kind and message, and the failed load's
    frames (a refused body among what they held) are not kept with it."""
    clock = ManualClock()
    backoff = KeyBackoff(clock, base_seconds=1, cap_seconds=8)
    error, held = _failed_load()
    backoff.failed(K, error)
    del error
    gc.collect()
    assert held() is None
    blocked = backoff.blocked(K)
    assert isinstance(blocked, UpstreamRejected)
    assert (blocked.message, blocked.outcome) == ("the upstream's body is over the limit", "backoff")


def test_key_backoff_forgets_old_failures_once_loads_succeed_again() -> None:
    """After an outage the failures stop; the keys that failed then are dropped once their time
    is up, with the next success, not kept until the next failure."""
    clock = ManualClock()
    backoff = KeyBackoff(clock, base_seconds=1, cap_seconds=8)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for page in range(2_000):
            backoff.failed(("acme", "list", page), UpstreamUnavailable())
        during = tracemalloc.get_traced_memory()[0] - before
        clock.advance(8 * 4)  # the longest any failure is remembered: four caps
        backoff.succeeded(("acme", "list", "another page"))
        gc.collect()  # cachetools' unlinked links point at each other until the collector runs
        after = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert during > 400_000  # held while the outage lasts
    assert after < during / 2  # what stays is the cache's two tables, which never shrink


def test_retry_delay_is_jittered_exponential_and_honours_a_capped_retry_after() -> None:
    """Full jitter up to 0.05 s doubled per failed attempt, at most 1 s; a Retry-After is a floor,
    capped."""
    for attempt in range(1, 10):
        ceiling = min(0.05 * 2 ** (attempt - 1), 1.0)
        delays = [retry_delay(attempt, None, 5.0) for _ in range(500)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread over the range
    assert all(retry_delay(1, 2.0, 5.0) == 2.0 for _ in range(100))  # above the backoff: the wait
    assert all(retry_delay(1, 30.0, 5.0) == 5.0 for _ in range(100))  # capped
    under_backoff = [retry_delay(6, 0.001, 5.0) for _ in range(500)]  # below the backoff: a floor
    assert all(0.001 <= delay <= 1.0 for delay in under_backoff) and max(under_backoff) > 0.5
    assert retry_delay(10_000, None, 5.0) <= 1.0
