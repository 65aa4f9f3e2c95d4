"""Shared test set-up.

Importing the official Huawei Cloud SDK (the signing reference) writes
``~/.huaweicloud/application_id``; ``HOME`` points at a fresh temporary directory before any
test module can import it, so a test run never touches the real home directory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

_TEST_HOME = tempfile.mkdtemp(prefix="metastudio-gateway-home-")
os.environ["HOME"] = _TEST_HOME
atexit.register(shutil.rmtree, _TEST_HOME, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "runs_last: run after every other test (it inspects their output)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)
