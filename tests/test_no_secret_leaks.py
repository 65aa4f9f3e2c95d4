"""Across the whole suite, no credential or API key appears in any response or log line."""

from __future__ import annotations

import pytest

from tests.leaks import OUTPUT, SECRETS


@pytest.mark.runs_last
def test_no_secret_in_any_response_or_log_line() -> None:
    """Every response and log line gathered during the session is free of every secret the tests used."""
    if not OUTPUT:
        pytest.skip("searches what the rest of the suite produced; run it with the suite")
    everything = b"\n".join(OUTPUT)
    leaked = sorted(secret for secret in SECRETS if secret.encode() in everything)
    assert not leaked, f"secrets found in gateway output: {len(leaked)}"
    assert len(OUTPUT) > 100 and len(SECRETS) >= 4  # the search really covered the suite
