"""SIGTERM on `metastudio-gateway serve`: not ready at once, in-flight requests finish, then a clean exit."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.live import live_gateway


def _get(url: str, key: str | None = None, timeout: float = 10) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    """During the drain /readyz says 503, a slow request in flight still gets 200, then exit 0 and no listener."""
    config = "[server]\ndrain_seconds = 1.5\nshutdown_grace_seconds = 5\n"
    with live_gateway(tmp_path, extra_config=config) as live:
        faults = urllib.request.Request(
            f"{live.simulator_url}/_simulator/faults",
            data=json.dumps([{"kind": "latency", "seconds": 2.0}]).encode(),
            method="PUT",
        )
        urllib.request.urlopen(faults, timeout=5).close()
        in_flight: list[int] = []
        slow = threading.Thread(
            target=lambda: in_flight.append(_get(f"{live.base_url}/v1/training-jobs", live.acme_key))
        )
        slow.start()
        time.sleep(0.5)  # let the slow request reach the upstream
        live.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert _get(f"{live.base_url}/readyz") == 503
        slow.join(timeout=15)
        assert in_flight == [200]
        assert live.process.wait(timeout=15) == 0
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{live.base_url}/healthz", timeout=2)
