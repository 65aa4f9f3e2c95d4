"""Timing one piece of Python in a loop, for the benchmarks that split a request into pieces."""

from __future__ import annotations

import timeit
from collections.abc import Callable

CALLS = 100_000
"""Calls per run when a benchmark does not say."""


def best_microseconds(call: Callable[[], object], calls: int = CALLS) -> float:
    """The best of 3 runs of ``calls`` calls of ``call``, in µs per call (``timeit``: the
    collector is off while it runs)."""
    return min(timeit.repeat(call, number=calls, repeat=3)) / calls * 1e6
