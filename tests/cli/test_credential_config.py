"""Choosing the cloud credential source, as an operator meets it: ``check-config`` names the source
it would use without fetching anything; ``serve`` refuses to start, naming every source tried and
why it was skipped, when none is usable."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_commands import run
from tests.stack import clean_env, free_port


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text('[[tenants]]\nid = "acme"\napp_user_id = "acme-web"\napi_key_sha256 = ["' + "a" * 64 + '"]\n')
    return path


def test_check_config_names_the_source_without_fetching(config: Path, tmp_path: Path) -> None:
    """Pod identity whose agent nobody runs: check-config still exits 0, naming pod identity."""
    env = {
        "METASTUDIO_PROJECT_ID": "p1",
        "HC_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{free_port()}/v1/credentials",
        "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "not-yet-mounted"),
    }
    result = run("check-config", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "credentials: pod-identity" in result.stdout


def test_token_mode_is_named_and_its_password_never_shown(config: Path) -> None:
    """METASTUDIO_AUTH_MODE=token: check-config names the IAM token source and the user, not the password."""
    env = {
        "METASTUDIO_PROJECT_ID": "p1",
        "METASTUDIO_AUTH_MODE": "token",
        "METASTUDIO_IAM_DOMAIN": "acme-account",
        "METASTUDIO_IAM_USER": "gateway",
        "METASTUDIO_IAM_PASSWORD": "iam-password-cli-secret",
    }
    result = run("check-config", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "credentials: iam-token" in result.stdout
    assert "gateway@acme-account" in result.stdout
    assert "iam-password-cli-secret" not in result.stdout + result.stderr


def test_a_half_configured_source_is_an_error_not_a_skip(config: Path) -> None:
    """An OIDC agency without its provider and token file: refused, naming what is missing."""
    env = {"METASTUDIO_PROJECT_ID": "p1", "HUAWEICLOUD_OIDC_AGENCY_URN": "iam::1:agency:gw"}
    result = run("check-config", "--config", str(config), env=env)
    assert result.returncode == 2
    assert "HUAWEICLOUD_OIDC_PROVIDER_URN" in result.stderr
    assert "HUAWEICLOUD_OIDC_TOKEN_FILE" in result.stderr


def test_serve_without_any_source_names_every_source_tried(config: Path) -> None:
    """Nothing configured and no metadata service answering: one line, every source and why."""
    env = {"METASTUDIO_PROJECT_ID": "p1", "METASTUDIO_METADATA_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    result = run("serve", "--config", str(config), "--port", "0", env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    for source in ("oidc:", "federation:", "static:", "profile:", "pod-identity:", "metadata:"):
        assert source in result.stderr
    assert "Traceback" not in result.stderr


def test_a_forced_source_that_is_not_configured_says_so(config: Path) -> None:
    """METASTUDIO_CREDENTIALS_SOURCE=pod-identity without its variables: refused, naming them."""
    env = {"METASTUDIO_PROJECT_ID": "p1", "METASTUDIO_CREDENTIALS_SOURCE": "pod-identity"}
    result = run("check-config", "--config", str(config), env=env)
    assert result.returncode == 2
    assert "HC_CONTAINER_CREDENTIALS_FULL_URI" in result.stderr


def test_ctrl_c_while_serve_waits_for_its_first_credentials_ends_it_quietly(config: Path) -> None:
    """In auto mode the metadata service is the last resort and must answer before serving
    starts; a metadata address that accepts and never answers keeps serve waiting (2 s at most).
    Ctrl-C meanwhile: serve ends at once with 130, saying so in one line, without a traceback."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        env = {
            "METASTUDIO_PROJECT_ID": "p1",
            "METASTUDIO_METADATA_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", "0"],
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As from a terminal: a suite started in the background by a shell without job
            # control ignores SIGINT, and the child would inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        asking, _ = silent.accept()  # serve is asking the metadata service now
        with asking:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1
