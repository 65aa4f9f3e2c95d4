"""The secret-leak check: a test fails if the gateway output any secret while it ran.

What the gateway outputs is recorded where the tests see it: the API fixtures record every
response (client side, so hits answered by the connection count too) and the access log;
``tests/live.py`` watches a live gateway's whole stdout/stderr file; in-process log records
(INFO and up) are recorded as production writes them: the message and the exception type. Secrets are registered by
whoever creates them (fixtures, ``tests/live.py``) and stay known for the rest of the session.

It is a pytest plugin (``tests/conftest.py`` loads it): each test gets a fresh ledger before
its set-up, and after its teardown (so fixture teardown output, and the last output of a
module-scoped live gateway, count) everything recorded is searched for every known secret. A
leak is reported as an error of that test, naming the sources and a prefix of each secret, never
the whole secret. Ledgers nest, so a test can run an inner pytest session in-process
(``tests/test_no_secret_leaks.py`` proves the check fails a leaking test).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.stack import ACME_KEY, GLOBEX_KEY, LIVE_AK, LIVE_SK


@dataclass
class Ledger:
    """What the gateway output during one test, by source."""

    output: list[tuple[str, bytes]] = field(default_factory=list)
    root_level: int = logging.NOTSET
    """The root logger's level before the test, restored after it."""

    def leaked(self, secrets: Iterable[str]) -> dict[str, set[str]]:
        """Each secret found, with the sources it was found in."""
        found: dict[str, set[str]] = {}
        for secret in secrets:
            needle = secret.encode()
            for source, chunk in self.output:
                if needle in chunk:
                    found.setdefault(secret, set()).add(source)
        return found


@dataclass
class _Watched:
    path: Path
    source: str
    offset: int = 0

    def read_new(self) -> bytes:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data


_SECRETS: set[str] = {LIVE_AK, LIVE_SK, ACME_KEY, GLOBEX_KEY}
_LEDGERS: list[Ledger] = []
_WATCHED: list[_Watched] = []
_PENDING = Ledger()
"""Output recorded while no test runs (collection, say): it goes to the next test."""


def register_secrets(values: Iterable[str]) -> None:
    """Remember values that must never appear in anything the gateway outputs."""
    _SECRETS.update(value for value in values if value)


def record(chunk: bytes, source: str = "response") -> None:
    """Keep something the gateway output, for the running test's check."""
    (_LEDGERS[-1] if _LEDGERS else _PENDING).output.append((source, chunk))


def watch(path: Path, source: str = "live gateway output") -> None:
    """Check what is appended to ``path`` from now on, each test for its share."""
    _WATCHED.append(_Watched(path, source))


def unwatch(path: Path) -> None:
    """Record what is left unread in ``path`` and stop watching it."""
    for watched in [w for w in _WATCHED if w.path == path]:
        record(watched.read_new(), watched.source)
        _WATCHED.remove(watched)


class _ProcessLogRecorder(logging.Handler):
    """Records in-process log lines as the gateway's JSON process log has them."""

    def emit(self, entry: logging.LogRecord) -> None:
        if entry.name == "aiohttp.access":  # disabled in production
            return
        error = entry.exc_info[0].__name__ if entry.exc_info and entry.exc_info[0] else ""
        record(f"{entry.name} {entry.getMessage()} {error}".encode(), "process log")


_PROCESS_LOG = _ProcessLogRecorder(logging.INFO)


def _collect_watched() -> None:
    for watched in _WATCHED:
        if data := watched.read_new():
            record(data, watched.source)


def _describe(leaked: dict[str, set[str]]) -> str:
    return "; ".join(f"{secret[:4]}... in {', '.join(sorted(sources))}" for secret, sources in sorted(leaked.items()))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    root = logging.getLogger()
    ledger = Ledger(output=list(_PENDING.output), root_level=root.level)
    _PENDING.output.clear()
    _LEDGERS.append(ledger)
    if _PROCESS_LOG not in root.handlers:
        root.addHandler(_PROCESS_LOG)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _collect_watched()
        ledger = _LEDGERS.pop()
        root = logging.getLogger()
        root.setLevel(ledger.root_level)
        if not _LEDGERS:
            root.removeHandler(_PROCESS_LOG)
        leaked = ledger.leaked(_SECRETS)
        if leaked:
            pytest.fail(f"the gateway output {len(leaked)} secret(s): {_describe(leaked)}", pytrace=False)
