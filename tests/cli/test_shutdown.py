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


def _slow_upstream(simulator_url: str, seconds: float) -> None:
    """The simulator answers every upstream call ``seconds`` late."""
    faults = urllib.request.Request(
        f"{simulator_url}/_simulator/faults",
        data=json.dumps([{"kind": "latency", "seconds": seconds}]).encode(),
        method="PUT",
    )
    urllib.request.urlopen(faults, timeout=5).close()


def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    """During the drain /readyz says 503, a slow request in flight still gets 200, then exit 0 and no listener."""
    config = "[server]\ndrain_seconds = 1.5\nshutdown_grace_seconds = 5\n"
    with live_gateway(tmp_path, extra_config=config) as live:
        _slow_upstream(live.simulator_url, 2.0)
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


@pytest.mark.parametrize(
    ("server_config", "signalled_in"),
    [("drain_seconds = 30", "the drain"), ("drain_seconds = 0.5\nfast_hit_path = false", "the grace")],
    ids=["drain, fast path", "grace, handler chain"],
)
def test_a_second_signal_stops_at_once(tmp_path: Path, server_config: str, signalled_in: str) -> None:
    """Ctrl-C pressed again while stopping (during the drain, or in the grace after it): the
    process waits out neither for a slow request; it calls the request off, exits at once with
    130, and says so in its log."""
    config = f"[server]\nshutdown_grace_seconds = 30\n{server_config}\n"
    with live_gateway(tmp_path, extra_config=config) as live:
        _slow_upstream(live.simulator_url, 30.0)
        in_flight: list[object] = []

        def slow_request() -> None:
            try:
                in_flight.append(_get(f"{live.base_url}/v1/training-jobs", live.acme_key, timeout=40))
            except (urllib.error.URLError, ConnectionError) as exc:
                in_flight.append(type(exc))

        slow = threading.Thread(target=slow_request)
        slow.start()
        time.sleep(0.5)  # let the slow request reach the upstream
        live.process.send_signal(signal.SIGTERM)
        if signalled_in == "the drain":
            time.sleep(0.5)
            assert _get(f"{live.base_url}/readyz") == 503
        else:
            time.sleep(1.5)  # the drain is over: the listener is closed, the grace runs
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(f"{live.base_url}/healthz", timeout=2)
        signalled = time.monotonic()
        live.process.send_signal(signal.SIGINT)
        assert live.process.wait(timeout=10) == 128 + signal.SIGINT
        assert time.monotonic() - signalled < 10
        slow.join(timeout=10)
        assert in_flight and in_flight[0] != 200  # called off, not answered
    lines = (tmp_path / "gateway.log").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{") and '"event"' in line]
    assert {"event": "stopped", "forced_by": "SIGINT"}.items() <= events[-1].items()
