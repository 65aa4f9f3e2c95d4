"""Throttled warnings (a TLS failure's reason, refused credentials): each said when it first comes,
at most once a minute while it lasts, each on its own, and again at once after it stopped."""

from __future__ import annotations

import logging

import pytest

from gateway.clock import ManualClock
from gateway.observability.throttled import WARNING_SECONDS, ThrottledWarnings


def test_each_reason_is_logged_at_most_once_a_minute_even_alternating(caplog: pytest.LogCaptureFixture) -> None:
    """Two backends failing TLS for two reasons, attempts alternating between them: each reason is
    logged once, then again a minute later (the throttle kept only the last reason, so every
    attempt logged)."""
    caplog.set_level(logging.WARNING, logger="gateway.upstream.client")
    clock = ManualClock()
    warnings = ThrottledWarnings(logging.getLogger("gateway.upstream.client"), clock)
    expired, mismatch = (
        "TLS with the upstream failed: certificate has expired",
        "TLS with the upstream failed: IP address mismatch",
    )
    for _ in range(5):
        warnings.warn(f"{expired}; upstream calls fail as tls_error until it is mended")
        warnings.warn(f"{mismatch}; upstream calls fail as tls_error until it is mended")
    clock.advance(WARNING_SECONDS)
    warnings.warn(f"{expired}; upstream calls fail as tls_error until it is mended")
    said = [record.getMessage().split(";")[0] for record in caplog.records if record.name == "gateway.upstream.client"]
    assert said == [expired, mismatch, expired]
