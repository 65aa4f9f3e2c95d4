"""Everything the gateway said during the test session, gathered for the secret-leak check.

The API fixtures record every response (status line, headers, body) and every access-log line;
live-process tests record the gateway's whole stdout/stderr. The secrets each test used are
registered here too. ``tests/test_no_secret_leaks.py`` runs last and searches it all.
"""

from __future__ import annotations

from collections.abc import Iterable

OUTPUT: list[bytes] = []
SECRETS: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember values that must never appear in anything the gateway outputs."""
    SECRETS.update(value for value in values if value)


def record(chunk: bytes) -> None:
    """Keep something the gateway output."""
    OUTPUT.append(chunk)
