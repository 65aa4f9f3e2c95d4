"""`metastudio-gateway demo` from a user's seat: it starts, and its printed curl commands work as pasted,
the API-key ones, the JWT one (a token from the demo identity provider) and the header-less cover link."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import clean_env, free_port


@pytest.fixture
def demo_output() -> Iterator[str]:
    """Start the demo, wait (bounded) for its instructions, stop it afterwards."""
    port = free_port()
    # No cloud credentials or upstream settings at all: the demo must not need them.
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--page-port", "0"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("curl -s http") and "/readyz" in line:
                break
        yield "".join(lines)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def _curl_commands(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith("curl ")]


def test_demo_prints_curl_commands_that_work(demo_output: str, tmp_path: Path) -> None:
    """Every printed command succeeds; the list shows jobs, the cover commands download PNGs, and the
    JWT one lists acme's jobs."""
    assert shutil.which("curl"), "curl missing: the test command installs it"
    commands = _curl_commands(demo_output)
    assert len(commands) >= 10, demo_output
    results = [
        subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
        for command in commands
    ]
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout, command
    listed, hit_headers, one_job, cover, other_tenant = (r.stdout for r in results[:5])
    assert '"jobs":[' in listed
    assert '"state_group":"completed"' in listed
    assert re.search(r"(?i)x-cache: HIT", hit_headers)
    assert '"job_id"' in one_job
    assert cover.startswith("200 image/png")
    cover_file = re.search(r" -o (/\S+) ", commands[3])
    assert cover_file, commands[3]
    assert Path(cover_file.group(1)).read_bytes().startswith(b"\x89PNG")
    assert list(tmp_path.iterdir()) == []  # nothing left in the directory the commands ran in (a clone)
    assert '"acme-web"' not in other_tenant
    token, with_jwt, cover_image = (r.stdout for r in results[5:8])
    assert '"access_token"' in token
    assert "Bearer ey" in commands[6]
    assert '"app_user_id":"acme-web"' in with_jwt and '"globex-app"' not in with_jwt
    assert "Authorization" not in commands[7]
    assert cover_image.startswith("200 image/png")
    image_file = re.search(r" -o (/\S+) ", commands[7])
    assert image_file, commands[7]
    assert Path(image_file.group(1)).read_bytes().startswith(b"\x89PNG")
    assert "metastudio_gateway_cache_requests_total" in results[-2].stdout
    assert '"ready"' in results[-1].stdout


def test_demo_starts_without_credentials(demo_output: str) -> None:
    """With no cloud credentials or settings in its environment, the demo starts and says where it listens."""
    assert "gateway on http://127.0.0.1:" in demo_output
    assert re.search(r"Open http://127\.0\.0\.1:\d+/ in a browser", demo_output)
