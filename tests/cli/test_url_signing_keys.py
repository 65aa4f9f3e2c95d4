"""GATEWAY_URL_SIGNING_KEYS as an operator sets it: check-config accepts good keys, and refuses bad ones
with exit 2 and a message naming the variable, never any part of the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_commands import CREDENTIALS, GOOD_CONFIG, run
from tests.leaks import register_secrets

GOOD_SECRET = "url-signing-secret-good-0123456789abcdef"
SHORT_SECRET = "short-url-signing-secret"
register_secrets([GOOD_SECRET, SHORT_SECRET])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD_CONFIG)
    return path


def test_good_keys_pass_and_the_summary_names_the_signing_key_id(config: Path) -> None:
    """Two keys: exit 0; the summary says which key id signs, never a secret."""
    keys = f"k2:{GOOD_SECRET},k1:{GOOD_SECRET[::-1]}"
    result = run("check-config", "--config", str(config), env={**CREDENTIALS, "GATEWAY_URL_SIGNING_KEYS": keys})
    assert result.returncode == 0, result.stderr
    assert "2 URL signing key(s), 'k2' signs" in result.stdout
    assert GOOD_SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"k1:{SHORT_SECRET}", "shorter than 32 bytes"),
        (SHORT_SECRET + GOOD_SECRET, "is not kid:secret"),
        (f"k1:{GOOD_SECRET},k1:{GOOD_SECRET}", "appears twice"),
        (f"bad kid!:{GOOD_SECRET}", "is not kid:secret"),
        (f"k1:{GOOD_SECRET},", "entry 2 of 2 is not kid:secret"),
    ],
    ids=["short-secret", "no-kid", "duplicate-kid", "bad-kid", "empty-entry"],
)
def test_bad_keys_are_a_config_error_naming_the_variable_not_the_value(config: Path, value: str, reason: str) -> None:
    """Each malformed value: exit 2, one message naming GATEWAY_URL_SIGNING_KEYS and what is wrong."""
    result = run("check-config", "--config", str(config), env={**CREDENTIALS, "GATEWAY_URL_SIGNING_KEYS": value})
    assert result.returncode == 2
    assert "GATEWAY_URL_SIGNING_KEYS" in result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    for secret in (SHORT_SECRET, GOOD_SECRET):
        assert secret[:12] not in result.stdout + result.stderr


def test_keys_from_a_file(config: Path, tmp_path: Path) -> None:
    """GATEWAY_URL_SIGNING_KEYS_FILE (a mounted Secret) works; setting both variables is an error."""
    keys = tmp_path / "url-signing-keys"
    keys.write_text(f"k1:{GOOD_SECRET}\n")
    env = {**CREDENTIALS, "GATEWAY_URL_SIGNING_KEYS_FILE": str(keys)}
    assert run("check-config", "--config", str(config), env=env).returncode == 0
    both = run("check-config", "--config", str(config), env={**env, "GATEWAY_URL_SIGNING_KEYS": f"k2:{GOOD_SECRET}"})
    assert both.returncode == 2
    assert "GATEWAY_URL_SIGNING_KEYS and GATEWAY_URL_SIGNING_KEYS_FILE are both set" in both.stderr
    keys.write_text("k1:short\n")
    short = run("check-config", "--config", str(config), env=env)
    assert short.returncode == 2
    assert "GATEWAY_URL_SIGNING_KEYS_FILE: entry 1 of 1" in short.stderr


def test_without_keys_check_config_says_a_random_key_will_sign(config: Path) -> None:
    """Unset: still valid; the summary says links are signed with a random key."""
    result = run("check-config", "--config", str(config), env=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    assert "a random URL signing key" in result.stdout
