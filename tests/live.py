"""Live processes for tests (browser, Prometheus, fuzzing, shutdown): the shared stack from
``tests.stack``, with its secrets registered and the gateway's whole output watched by the
leak check (``tests/leaks.py``), each test checked for what the gateway wrote while it ran."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.leaks import register_secrets, unwatch, watch
from tests.stack import ACME_KEY, GLOBEX_KEY, LIVE_AK, LIVE_SK, LiveGateway, free_port, live_stack

__all__ = ["LiveGateway", "free_port", "live_gateway"]


@contextmanager
def live_gateway(tmp_path: Path, *, extra_config: str = "") -> Iterator[LiveGateway]:
    """Simulator + gateway as processes in ``tmp_path``; their output is checked for leaks as it comes."""
    register_secrets([LIVE_AK, LIVE_SK, ACME_KEY, GLOBEX_KEY])
    log = tmp_path / "gateway.log"
    watch(log)
    try:
        with live_stack(tmp_path, extra_config=extra_config) as live:
            yield live
    finally:
        unwatch(log)
