"""Monitoring: the alert rules (promtool-checked and unit-tested), ServiceMonitor, PrometheusRule, dashboard."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import CHART, find, require_command

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
ALERT_TESTS = Path(__file__).parent / "alerts_test.yaml"
METRIC = re.compile(r"\bmetastudio_gateway_[a-z0-9_]+")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$namespace": ".*", "$job": ".*"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_command("promtool"), *args], capture_output=True, text=True, check=False)


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


@pytest.mark.prometheus
def test_promtool_check_rules_passes() -> None:
    """`promtool check rules files/alerts.yaml` passes."""
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    """The alert unit tests pass: alerts fire on synthetic trouble and stay quiet on healthy series."""
    result = _promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_cover_the_key_alerts() -> None:
    """The unit tests prove at least the expired-cover and low-hit-ratio alerts both ways."""
    cases = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    checks = [c for case in cases for c in case["alert_rule_test"]]
    for alert in ("MetastudioGatewayExpiredCoverServed", "MetastudioGatewayCacheHitRatioLow"):
        outcomes = {bool(c["exp_alerts"]) for c in checks if c["alertname"] == alert}
        assert outcomes == {True, False}, alert


def test_every_alert_is_documented() -> None:
    """Every alert has a duration, a severity and summary, description and runbook annotations."""
    for rule in _rules():
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


def test_alerts_cover_the_failure_modes() -> None:
    """Alerts exist for being down, upstream errors and unavailability, cache, covers and credentials."""
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    wanted = [
        'up{job=~".*metastudio-gateway.*"} == 0',
        "absent(up",
        "metastudio_gateway_upstream_requests_total",
        'status="503"',
        'metastudio_gateway_cache_requests_total{result="hit"}',
        "increase(metastudio_gateway_expired_covers_served_total",
        "metastudio_gateway_cover_earliest_expiry_timestamp_seconds - time() < 3600",
        'trigger="upstream_auth_failure"',
    ]
    for fragment in wanted:
        assert any(fragment in expr for expr in exprs.values()), fragment


def test_alerts_use_only_metrics_the_gateway_exports(metric_names: set[str]) -> None:
    """Every metastudio_gateway_* series an alert reads is one the gateway's /metrics can expose."""
    used = {name for rule in _rules() for name in METRIC.findall(rule["expr"])}
    assert used and used <= metric_names, used - metric_names


def test_service_monitor_scrapes_metrics_on_http(full_docs: list[dict[str, Any]]) -> None:
    """The ServiceMonitor scrapes /metrics on the port named http of the chart's Service."""
    monitor = find(full_docs, "ServiceMonitor")
    service = find(full_docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # job = the chart name, which the alerts' up{job=~".*metastudio-gateway.*"} selects.
    assert "metastudio-gateway" in service["metadata"]["labels"][monitor["spec"]["jobLabel"]]


@pytest.mark.prometheus
def test_prometheus_rule_ships_the_alerts_file(full_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """The PrometheusRule holds files/alerts.yaml's groups, with ruleLabels added, and promtool accepts it."""
    rule = find(full_docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    expected = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for group in expected:
        for alert in group["rules"]:
            alert["labels"]["team"] = "avatars"
    assert rule["spec"]["groups"] == expected
    rendered = tmp_path / "rendered-rules.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]), encoding="utf-8")
    result = _promtool("check", "rules", str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_config_map_is_found_by_the_grafana_sidecar(full_docs: list[dict[str, Any]]) -> None:
    """The dashboard ConfigMap carries grafana_dashboard: "1" and holds files/dashboard.json unchanged."""
    config_map = find(full_docs, "ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Avatars"}
    (text,) = config_map["data"].values()
    assert json.loads(text) == json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_dashboard_is_templated_on_the_datasource() -> None:
    """The dashboard (schemaVersion 39) picks its Prometheus through a datasource variable."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] == 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_uses_only_metrics_the_gateway_exports(metric_names: set[str]) -> None:
    """Every metastudio_gateway_* series the dashboard queries is one the gateway's /metrics can expose."""
    used = {name for expr in _dashboard_exprs() for name in METRIC.findall(expr)}
    assert used <= metric_names, used - metric_names
    wanted = {
        "metastudio_gateway_http_requests_total",
        "metastudio_gateway_http_request_duration_seconds_bucket",
        "metastudio_gateway_cache_requests_total",
        "metastudio_gateway_upstream_requests_total",
        "metastudio_gateway_upstream_request_duration_seconds_bucket",
        "metastudio_gateway_cover_earliest_expiry_timestamp_seconds",
        "metastudio_gateway_expired_covers_served_total",
        "metastudio_gateway_cache_bytes",
        "metastudio_gateway_cache_entries",
        "metastudio_gateway_shared_tier_up",
        "metastudio_gateway_shared_tier_operations_total",
        "metastudio_gateway_shared_tier_operation_duration_seconds_bucket",
        "metastudio_gateway_jwt_validations_total",
        "metastudio_gateway_jwks_fetches_total",
        "metastudio_gateway_jwks_age_seconds",
    }
    assert wanted <= used, wanted - used


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    """Grafana places panels by gridPos (24 columns): none shares an id or a cell with another."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), sorted(ids)
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_chart_readme_lists_every_alert() -> None:
    """The chart README's alert table names every alert files/alerts.yaml defines."""
    documented = set(re.findall(r"`(MetastudioGateway[A-Za-z]+)`", (CHART / "README.md").read_text(encoding="utf-8")))
    assert {rule["alert"] for rule in _rules()} <= documented


@pytest.mark.prometheus
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query parses as PromQL (checked by promtool, Grafana variables filled in)."""
    rules = []
    for index, expr in enumerate(_dashboard_exprs()):
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_prometheus_operator_objects_have_the_crd_shape(full_docs: list[dict[str, Any]], kind: str) -> None:
    """ServiceMonitor and PrometheusRule (no offline schema) have metadata and a spec with their required parts."""
    doc = find(full_docs, kind)
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    required = {"ServiceMonitor": {"selector", "endpoints"}, "PrometheusRule": {"groups"}}[kind]
    assert required <= set(doc["spec"])
