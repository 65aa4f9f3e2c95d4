"""The secret-leak check (``tests/leaks.py``) fails the test that leaked, and only that test."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER_TESTS = """
import logging

from tests.leaks import record, register_secrets

def test_leaks_a_secret_into_a_response():
    register_secrets(["inner-secret-0001"])
    record(b"200 {'X-Debug': 'inner-secret-0001'}", "response")

def test_leaks_a_secret_into_a_process_log_line():
    register_secrets(["inner-secret-0002"])
    logging.getLogger("gateway.inner").warning("token %s", "inner-secret-0002")

def test_stays_clean():
    register_secrets(["inner-secret-0003"])
    record(b"200 {'X-Cache': 'HIT'}", "response")
"""


def run_inner(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_inner=INNER_TESTS)
    # Only the leak check: no other plugin of the outer session (asyncio, log capture, ...).
    plugins = ("tests.leaks", "no:asyncio", "no:aiohttp", "no:logging", "no:randomly", "no:cacheprovider")
    return pytester.runpytest(*(arg for plugin in plugins for arg in ("-p", plugin)))


def test_a_test_that_outputs_a_registered_secret_fails_and_a_clean_one_passes(pytester: pytest.Pytester) -> None:
    """A secret in a recorded response or a log line is an error of the test that produced it;
    the clean test in the same session passes."""
    result = run_inner(pytester)
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_a_secret_into_a_response*",
            "the gateway output 1 secret(s): inne... in response",
            "*ERROR at teardown of test_leaks_a_secret_into_a_process_log_line*",
            "the gateway output 1 secret(s): inne... in process log",
        ]
    )
    result.stdout.no_fnmatch_line("*ERROR at teardown of test_stays_clean*")


def test_the_report_never_quotes_the_secret(pytester: pytest.Pytester) -> None:
    """The failure names where a secret appeared and its first characters, not the secret."""
    result = run_inner(pytester)
    result.assert_outcomes(passed=3, errors=2)  # the check did report both leaks
    assert "inner-secret" not in result.stdout.str() + result.stderr.str()
