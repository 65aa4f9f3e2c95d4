"""Shared test set-up.

Importing the official Huawei Cloud SDK (the signing reference) writes
``~/.huaweicloud/application_id``; ``HOME`` points at a fresh temporary directory before any
test module can import it, so a test run never touches the real home directory.

``tests.leaks`` is loaded as a plugin: every test fails if the gateway output a secret while it ran.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_TEST_HOME = tempfile.mkdtemp(prefix="metastudio-gateway-home-")
os.environ["HOME"] = _TEST_HOME
atexit.register(shutil.rmtree, _TEST_HOME, ignore_errors=True)

pytest_plugins = ["tests.leaks"]
