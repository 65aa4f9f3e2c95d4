"""A real Prometheus (Debian's ``prometheus``) scrapes the live gateway and answers queries about it.

The gateway and the simulator run as real processes (tests/live.py); a few API requests are made
before Prometheus starts, so its first scrape already holds them. Prometheus scrapes every second,
listens on a free loopback port, keeps its TSDB in a temporary directory and is stopped by PID.
Every wait is bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway import __version__
from tests.live import LiveGateway, free_port, live_gateway
from tests.stack import stop_process

pytestmark = pytest.mark.prometheus

JOB = "metastudio-gateway"
WAIT_SECONDS = 30.0
# Made before Prometheus starts: a miss, a hit of the same list, another list (a miss).
API_PATHS = ("/v1/training-jobs", "/v1/training-jobs", "/v1/training-jobs?limit=5")
T = TypeVar("T")


@dataclass(frozen=True)
class Scraped:
    """A running Prometheus and the gateway it scrapes."""

    prometheus_url: str
    gateway: LiveGateway
    log: Path


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _make_api_requests(gateway: LiveGateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.acme_key}"}
    for path in API_PATHS:
        request = urllib.request.Request(gateway.base_url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, path


def _write_config(path: Path, gateway: LiveGateway) -> None:
    target = urllib.parse.urlsplit(gateway.base_url).netloc
    path.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    metrics_path: /metrics\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )


def _eventually(probe: Callable[[], T | None], what: str, scraped: Scraped) -> T:
    """Poll ``probe`` until it returns something (bounded by WAIT_SECONDS), else fail with Prometheus's log."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            found = probe()
        except OSError:  # Prometheus not listening yet
            found = None
        if found is not None:
            return found
        time.sleep(0.5)
    log_tail = scraped.log.read_text(errors="replace")[-4000:]
    pytest.fail(f"{what} not seen within {WAIT_SECONDS} s; Prometheus log:\n{log_tail}")


def _query(scraped: Scraped, promql: str) -> list[dict[str, Any]]:
    """The non-empty instant-vector result of ``promql``, waiting (bounded) for the first scrapes."""

    def probe() -> list[dict[str, Any]] | None:
        url = f"{scraped.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        answer = _get_json(url)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result or None

    return _eventually(probe, f"a result for {promql}", scraped)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    binary = shutil.which("prometheus")
    assert binary is not None, "Debian's prometheus is missing: apt-get install prometheus (./scripts/test does)"
    workdir = tmp_path_factory.mktemp("prometheus")
    with live_gateway(workdir) as gateway:
        _make_api_requests(gateway)
        config = workdir / "prometheus.yml"
        _write_config(config, gateway)
        log = workdir / "prometheus.log"
        with log.open("wb") as log_file:
            port = free_port()
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                yield Scraped(prometheus_url=f"http://127.0.0.1:{port}", gateway=gateway, log=log)
            finally:
                stop_process(process)


def test_prometheus_scrapes_the_gateway_and_finds_it_up(scraped: Scraped) -> None:
    """Prometheus's only target is the gateway's /metrics under the job name, and its health becomes up."""

    def up_target() -> dict[str, Any] | None:
        targets = _get_json(f"{scraped.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        if not targets:  # the scrape manager has not loaded the config yet
            return None
        assert [target["labels"]["job"] for target in targets] == [JOB]
        return targets[0] if targets[0]["health"] == "up" else None

    target = _eventually(up_target, "the gateway target up", scraped)
    assert target["scrapeUrl"] == f"{scraped.gateway.base_url}/metrics"
    assert target["lastError"] == ""


def test_request_counter_carries_route_method_status_and_tenant(scraped: Scraped) -> None:
    """http_requests_total for the list route is one series: GET, 200, tenant acme, counting the three requests."""
    series = _query(scraped, 'metastudio_gateway_http_requests_total{route="/v1/training-jobs"}')
    assert len(series) == 1, series
    labels, (_, value) = series[0]["metric"], series[0]["value"]
    target = urllib.parse.urlsplit(scraped.gateway.base_url).netloc
    assert labels == {
        "__name__": "metastudio_gateway_http_requests_total",
        "job": JOB,
        "instance": target,
        "route": "/v1/training-jobs",
        "method": "GET",
        "status": "200",
        "tenant": "acme",
    }
    assert float(value) == len(API_PATHS)


def test_cache_counter_sums_to_one_lookup_per_list_request(scraped: Scraped) -> None:
    """sum(cache_requests_total) counts each list request once; by result: two misses and one hit."""
    (total,) = _query(scraped, "sum(metastudio_gateway_cache_requests_total)")
    assert float(total["value"][1]) == len(API_PATHS)
    by_result = _query(scraped, "sum by (result) (metastudio_gateway_cache_requests_total) > 0")
    assert {entry["metric"]["result"]: float(entry["value"][1]) for entry in by_result} == {"miss": 2.0, "hit": 1.0}


def test_build_info_reports_the_running_version(scraped: Scraped) -> None:
    """build_info is 1 with the package's version label."""
    (series,) = _query(scraped, "metastudio_gateway_build_info")
    assert series["metric"]["version"] == __version__
    assert float(series["value"][1]) == 1.0
