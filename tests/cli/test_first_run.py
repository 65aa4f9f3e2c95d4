"""Rough edges a new user hit, from the user's seat: real processes, real sockets, a real terminal."""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.stack import clean_env, free_port, live_stack, stop_process

KEY_HASH = hashlib.sha256(b"k1").hexdigest()


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as a JSON object (fails on any line that is not one)."""
    records = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
    return records


class Lines:
    """Every line a process writes to one pipe, collected by a thread (so waiting is bounded)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def wait_for(self, wanted: str, seconds: float = 30) -> None:
        """Return once a line holding ``wanted`` was written; fail after ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(wanted in line for line in self.lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"{wanted!r} not seen in time; got {self.lines!r}")

    def text(self) -> str:
        """Everything written, once the process has exited."""
        self._thread.join(timeout=10)
        self._stream.close()
        return "".join(self.lines)


@pytest.fixture
def serve_config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[[tenants]]\nid = "acme"\napp_user_id = "acme-web"\napi_key_sha256 = ["{KEY_HASH}"]\n')
    return path


@pytest.mark.parametrize("how", ["--port 0", "GATEWAY_PORT=0"])
def test_serve_port_zero_listens_on_a_free_port_and_logs_it(serve_config: Path, how: str) -> None:
    """`serve --port 0` (or GATEWAY_PORT=0): the JSON start-up line names the port really bound,
    and the gateway answers there."""
    env = clean_env(
        HUAWEICLOUD_SDK_AK="ak-port-zero",
        HUAWEICLOUD_SDK_SK="sk-port-zero",
        METASTUDIO_PROJECT_ID="p1",
        METASTUDIO_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # never called: only /healthz is asked
    )
    port_flag = ["--port", "0"] if how == "--port 0" else []
    if how == "GATEWAY_PORT=0":
        env["GATEWAY_PORT"] = "0"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(serve_config), "--host", "127.0.0.1", *port_flag],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    stderr = Lines(process.stderr)
    try:
        stderr.wait_for('"listening"')
        started = _json_lines("".join(stderr.lines))
        listening = next(record for record in started if record.get("event") == "listening")
        port = listening["port"]
        assert isinstance(port, int)
        assert port not in (0, 8080)
        assert f"127.0.0.1:{port}" in listening["message"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        stop_process(process)
    assert process.returncode == 0
    events = [record.get("event") for record in _json_lines(stderr.text())]
    assert "draining" in events


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], int, Lines, Lines]]:
    """A running demo, its gateway port and its two outputs, once its instructions are printed."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(port)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = Lines(process.stdout), Lines(process.stderr)
    try:
        stdout.wait_for("/readyz")
        yield process, port, stdout, stderr
    finally:
        if process.poll() is None:
            stop_process(process)


def test_demo_logs_json_and_never_a_long_request_line(demo: tuple[subprocess.Popen[str], int, Lines, Lines]) -> None:
    """A 9 KiB request line gets a 400; the demo logs JSON lines only: no traceback, nothing of the request."""
    process, port, stdout_lines, stderr_lines = demo
    marker = "Bearer-like-SECRET-in-the-line"
    line = f"GET /v1/training-jobs?name={marker}{'x' * 9 * 1024} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line)
        answer = sock.recv(65536)
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:100]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200  # still serving
    time.sleep(0.6)  # the access log is flushed at least every half second
    stop_process(process)
    stdout, stderr = stdout_lines.text(), stderr_lines.text()
    assert process.returncode == 0
    for output in (stdout, stderr):
        assert "Traceback" not in output
        assert marker not in output
        assert "xxxxxxxx" not in output
    logged = _json_lines(stderr)  # process logs: every line JSON
    events = [record.get("event") for record in logged]
    assert "listening" in events
    assert "stopped" in events
    assert any("malformed" in record["message"] for record in logged)
    instructions, _, access_log = stdout.partition("/readyz\n")
    assert "curl -s" in instructions
    access = _json_lines(access_log)  # after the printed instructions: the access log, JSON too
    assert any(record.get("route") == "/healthz" for record in access)


def _read_until(fd: int, wanted: bytes, seconds: float = 15) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_hash_key_prompts_on_a_terminal_without_echoing_the_key() -> None:
    """At a terminal, hash-key asks for the key on stderr, does not echo it, and prints only the hash."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "hash-key"],
        env=clean_env(),
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=terminal,
        start_new_session=True,  # no controlling terminal: getpass uses this one, never the runner's
    )
    os.close(terminal)
    try:
        prompt = _read_until(controller, b"API key")
        assert b"API key" in prompt
        os.write(controller, b"k1\n")
        stdout, _ = process.communicate(timeout=15)
        after = _read_until(controller, b"k1", seconds=0.5)
    finally:
        if process.poll() is None:
            stop_process(process)
        os.close(controller)
    assert process.returncode == 0
    assert stdout.decode().strip() == KEY_HASH
    assert b"k1" not in after


def test_piped_hash_key_prints_only_the_hash() -> None:
    """With the key on a pipe there is no prompt: stdout is the hash alone, stderr empty."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "hash-key"],
        env=clean_env(),
        input="k1\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == KEY_HASH + "\n"
    assert result.stderr == ""


def _list_as(base_url: str, key: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/v1/training-jobs?limit=100&sort_key=asset_order", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def test_simulator_serves_a_made_up_app_user_id_the_same_jobs_every_time(tmp_path: Path) -> None:
    """`simulator` + `serve` with a tenant whose app_user_id is not built in: jobs (count > 0), the same
    ones from a second, separate simulator process; the simulator's start-up names the built-in ids."""
    tenants = (("mine", "my-own-app-user-42", "made-up-tenant-key"),)
    seen = []
    for run in ("first", "second"):
        workdir = tmp_path / run
        workdir.mkdir()
        with live_stack(workdir, tenants=tenants) as live:
            seen.append(_list_as(live.base_url, "made-up-tenant-key"))
        assert "built-in app user ids: acme-web, globex-app, demo-user" in (workdir / "simulator.log").read_text()
    first, second = seen
    assert first["count"] > 0
    assert {job["app_user_id"] for job in first["jobs"]} == {"my-own-app-user-42"}
    assert second["count"] == first["count"]

    def identity(body: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(job["job_id"], job["name"], job["state"]) for job in body["jobs"]]

    assert identity(second) == identity(first)
