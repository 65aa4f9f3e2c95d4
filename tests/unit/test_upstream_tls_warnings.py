"""What the upstream client logs of TLS failures: each reason, at most once a minute."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from gateway.clock import ManualClock
from gateway.config.settings import CircuitBreakerSettings, UpstreamSettings
from gateway.credentials.holder import StaticHolder
from gateway.credentials.static import CredentialSource
from gateway.observability.metrics import Metrics
from gateway.observability.throttled import WARNING_SECONDS
from gateway.upstream.client import MetaStudioClient
from gateway.upstream.connections import UpstreamConnections


def test_each_reason_is_logged_at_most_once_a_minute_even_alternating(caplog: pytest.LogCaptureFixture) -> None:
    """Two backends failing TLS for two reasons, attempts alternating between them: each reason is
    logged once, then again a minute later (the throttle kept only the last reason, so every
    attempt logged)."""
    caplog.set_level(logging.WARNING, logger="gateway.upstream.client")
    clock = ManualClock()
    client = MetaStudioClient(
        connections=UpstreamConnections(
            "https://upstream.invalid", connect_timeout=1, read_timeout=1, max_body_bytes=1024, max_head_bytes=4096
        ),
        settings=UpstreamSettings(endpoint="https://upstream.invalid", project_id="p1"),
        breaker_policy=CircuitBreakerSettings(),
        credentials=StaticHolder(CredentialSource({"HUAWEICLOUD_SDK_AK": "a", "HUAWEICLOUD_SDK_SK": "b"}, clock=clock)),
        clock=clock,
        metrics=Metrics(CollectorRegistry()),
    )
    expired, mismatch = (
        "TLS with the upstream failed: certificate has expired",
        "TLS with the upstream failed: IP address mismatch",
    )
    for _ in range(5):
        client._warnings.warn(f"{expired}; upstream calls fail as tls_error until it is mended")
        client._warnings.warn(f"{mismatch}; upstream calls fail as tls_error until it is mended")
    clock.advance(WARNING_SECONDS)
    client._warnings.warn(f"{expired}; upstream calls fail as tls_error until it is mended")
    said = [record.getMessage().split(";")[0] for record in caplog.records if record.name == "gateway.upstream.client"]
    assert said == [expired, mismatch, expired]
