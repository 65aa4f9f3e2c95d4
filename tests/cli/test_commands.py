"""The command line as an operator uses it: real processes, real exit codes, no tracebacks."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import clean_env

KEY_HASH = hashlib.sha256(b"k1").hexdigest()
GOOD_CONFIG = f"""
[cache]
ttl_seconds = 30

[[tenants]]
id = "acme"
app_user_id = "acme-web"
api_key_sha256 = ["{KEY_HASH}"]
"""
CREDENTIALS = {
    "HUAWEICLOUD_SDK_AK": "AK-VALUE-1",
    "HUAWEICLOUD_SDK_SK": "SK-VALUE-2",
    "METASTUDIO_PROJECT_ID": "p1",
}


def run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=clean_env(**(env or {})),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD_CONFIG)
    return path


@pytest.mark.parametrize("command", ["serve", "demo", "simulator", "check-config", "hash-key"])
def test_every_command_has_help(command: str) -> None:
    """`metastudio-gateway COMMAND --help` exits 0 with usage text."""
    result = run(command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_bad_flag_exits_nonzero_without_traceback() -> None:
    """An unknown flag is a usage error (exit 2), not a traceback."""
    result = run("serve", "--bogus")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--bogus" in result.stderr


@pytest.mark.parametrize("port", ["65536", "-1", "http", "²"])
def test_a_bad_port_is_a_usage_error_in_its_own_words(port: str) -> None:
    """A port that is not a number from 0 to 65535 in ASCII digits ("²" is a digit to
    str.isdigit): exit 2 saying so, not a traceback."""
    result = run("simulator", "--port", port)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"not a port number: {port!r}" in result.stderr


@pytest.mark.parametrize("host", ["", " ", "not a host", "gw/1"])
def test_a_listen_address_that_is_neither_ip_nor_host_name_is_refused(config: Path, host: str) -> None:
    """``--host`` and ``GATEWAY_HOST`` must be an IP address or a host name: refused naming the
    flag or variable (exit 2). ``--host ''`` used to listen on every interface (the default),
    and a space failed only at the bind, in words that named neither."""
    flag = run("serve", "--config", str(config), "--port", "0", "--host", host, env=CREDENTIALS)
    assert flag.returncode == 2
    assert f"argument --host: not an IP address or a host name: {host!r}" in flag.stderr
    if host.strip():  # an empty variable counts as unset
        variable = run("check-config", "--config", str(config), env={**CREDENTIALS, "GATEWAY_HOST": host})
        assert variable.returncode == 2
        assert "GATEWAY_HOST: not an IP address or a host name" in variable.stderr


def test_an_address_serve_cannot_listen_on_is_named(config: Path) -> None:
    """A well-formed address this machine does not have: one line naming it, no traceback."""
    result = run("serve", "--config", str(config), "--port", "0", "--host", "192.0.2.1", env=CREDENTIALS)
    assert result.returncode == 1
    assert "metastudio-gateway: cannot listen on 192.0.2.1:0: " in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_accepts_a_good_configuration(config: Path) -> None:
    """A valid config and credentials: exit 0 and a one-line summary without secret values."""
    result = run("check-config", "--config", str(config), env=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert "1 tenant" in result.stdout
    assert "AK-VALUE-1" not in result.stdout
    assert "SK-VALUE-2" not in result.stdout


def test_check_config_names_each_bad_key(tmp_path: Path) -> None:
    """Bad values exit 2 with a message naming every bad key."""
    path = tmp_path / "bad.toml"
    path.write_text(
        '[cache]\nttl_seconds = -1\ncolour = 1\n[[tenants]]\nid = "Bad Id"\napp_user_id = "名字"\n'
        'api_key_sha256 = ["xyz"]\n'
    )
    result = run("check-config", "--config", str(path), env=CREDENTIALS)
    assert result.returncode == 2
    for key in (
        "cache.ttl_seconds",
        "cache.colour",
        "tenants[0].id",
        "tenants[0].app_user_id",
        "tenants[0].api_key_sha256",
    ):
        assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_reports_unparsable_toml(tmp_path: Path) -> None:
    """A file that is not TOML is a one-line error naming the file."""
    path = tmp_path / "broken.toml"
    path.write_text("[cache\n")
    result = run("check-config", "--config", str(path), env=CREDENTIALS)
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_without_credentials(config: Path) -> None:
    """serve with no AK/SK exits non-zero with one line naming what is missing."""
    result = run("serve", "--config", str(config), "--port", "0", env={"METASTUDIO_PROJECT_ID": "p1"})
    assert result.returncode == 2
    assert "HUAWEICLOUD_SDK_AK" in result.stderr
    assert "HUAWEICLOUD_SDK_SK" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_without_project(config: Path) -> None:
    """serve without a project id names METASTUDIO_PROJECT_ID."""
    env = {k: v for k, v in CREDENTIALS.items() if k != "METASTUDIO_PROJECT_ID"}
    result = run("serve", "--config", str(config), env=env)
    assert result.returncode == 2
    assert "METASTUDIO_PROJECT_ID" in result.stderr


def test_credentials_from_files_are_accepted(config: Path, tmp_path: Path) -> None:
    """The _FILE variants (Kubernetes Secret files) satisfy check-config."""
    (tmp_path / "ak").write_text("AK-FROM-FILE\n")
    (tmp_path / "sk").write_text("SK-FROM-FILE\n")
    env = {
        "HUAWEICLOUD_SDK_AK_FILE": str(tmp_path / "ak"),
        "HUAWEICLOUD_SDK_SK_FILE": str(tmp_path / "sk"),
        "METASTUDIO_PROJECT_ID": "p1",
    }
    result = run("check-config", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "FROM-FILE" not in result.stdout


def test_hash_key_prints_the_sha256() -> None:
    """hash-key reads a key on stdin and prints the value for api_key_sha256."""
    result = run("hash-key", stdin="k1\n")
    assert result.returncode == 0
    assert result.stdout.strip() == KEY_HASH


def test_hash_key_refuses_empty_input() -> None:
    """hash-key with nothing on stdin exits 2 with a message."""
    result = run("hash-key", stdin="")
    assert result.returncode == 2
    assert "no API key" in result.stderr


@pytest.mark.parametrize("stdin", ["\n\nk1\n", "  k1\r\n\n"])
def test_hash_key_reads_the_key_whatever_blank_lines_surround_it(stdin: str) -> None:
    """Blank lines before or after the key (a here-document, a file saved with one) are not the
    key: a blank first line was 'no API key'."""
    result = run("hash-key", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == KEY_HASH


def test_hash_key_answers_without_waiting_for_the_end_of_stdin() -> None:
    """A key written to a stdin left open (``docker run -i``, ``kubectl exec -i``): the hash comes
    at once, as it always did; nothing after the key's line is waited for."""
    with subprocess.Popen(
        [sys.executable, "-m", "gateway", "hash-key"],
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("\nk1\n")
        process.stdin.flush()
        try:
            assert process.stdout.readline().strip() == KEY_HASH
        finally:
            process.kill()


def test_check_config_names_the_outbound_proxy_without_its_password(config: Path) -> None:
    """The proxies of ``HTTPS_PROXY``/``HTTP_PROXY`` (``NO_PROXY`` too) are named in the summary,
    their credentials not; a proxy the gateway cannot use is refused naming its variable only."""
    password = "pr0xy-pa55"
    proxied = {**CREDENTIALS, "HTTPS_PROXY": f"http://egress:{password}@proxy.internal:3128", "NO_PROXY": ".corp"}
    result = run("check-config", "--config", str(config), env=proxied)
    assert result.returncode == 0, result.stderr
    assert "outbound https via http://proxy.internal:3128, not for NO_PROXY=.corp" in result.stdout
    assert password not in result.stdout
    assert "egress" not in result.stdout
    plain = run("check-config", "--config", str(config), env=CREDENTIALS)
    assert "no outbound proxy" in plain.stdout
    socks = run("check-config", "--config", str(config), env={**CREDENTIALS, "https_proxy": f"socks5://u:{password}@p"})
    assert socks.returncode == 2
    assert "https_proxy: must be an http:// proxy URL (socks5:// proxies are not supported)" in socks.stderr
    assert password not in socks.stderr + socks.stdout
