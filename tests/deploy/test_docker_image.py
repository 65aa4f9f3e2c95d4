"""The image the Dockerfile builds: it serves a tenant's jobs from the simulator, as a non-root user.

No registry is reachable here, so the test brings its own Docker: a private ``dockerd`` (own
socket, data root and exec root; no bridge, no iptables) and, in place of the official base
image, a Debian bookworm root filesystem made by debootstrap (``scripts/docker-base-image``,
cached in /var/tmp/metastudio-gateway) imported under the base image's name, so ``FROM``
resolves locally. The classic builder (``DOCKER_BUILDKIT=0``) works with any docker CLI against
this daemon. Builds and containers use the host network; PyPI is reached through the host's CA
bundle, handed to the build as ``pip-ca.crt`` in a copy of the build context.

Needs root, dockerd, docker and debootstrap (``./scripts/test`` installs them); a missing tool
fails the test rather than skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.admission.api_keys import hash_key
from tests.deploy import DOCKERFILE, REPO, base_images

pytestmark = pytest.mark.docker

AK = "image-test-ak"
SK = "image-test-sk-never-logged"
API_KEY = "image-test-acme-key"
IMAGE = "metastudio-gateway:smoke-test"
CONFIG_PATH = "/etc/metastudio-gateway/gateway.toml"  # the image's GATEWAY_CONFIG default
CA_BUNDLES = (os.environ.get("PIP_CERT", ""), "/etc/ssl/certs/ca-certificates.crt")
# Copying the repository into a build context: leave out what is big and never needed.
CONTEXT_SKIP = shutil.ignore_patterns(
    ".git", ".venv", "venv", "node_modules", "__pycache__", ".*_cache", ".hypothesis", ".benchmarks", "*.egg-info"
)
_STRIPPED_PREFIXES = ("HUAWEICLOUD_", "CLOUD_SDK_", "METASTUDIO_", "GATEWAY_", "DOCKER_")


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is not installed; ./scripts/test installs it (apt-get install docker.io debootstrap)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of a GET, error statuses included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _stop(process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """SIGTERM, bounded wait, then SIGKILL for the process group it leads."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _unmount_below(root: Path) -> None:
    """Unmount whatever dockerd left mounted under root (its netns file, overlays), deepest first."""
    prefix = str(root) + "/"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30, check=False)


@dataclass(frozen=True)
class Docker:
    """The docker CLI pointed at the test's private engine."""

    cli: str
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def check(self, *args: str, timeout: float = 60) -> str:
        """stdout of a docker command that must succeed."""
        result = self.run(*args, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(
                f"docker {args[0]} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result.stdout

    def inspect(self, target: str) -> Any:
        return json.loads(self.check("inspect", target))[0]


@dataclass(frozen=True)
class Container:
    """A running gateway container and where it answers."""

    id: str
    base_url: str


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    """A private dockerd for this module, stopped and wiped afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the image test runs its own dockerd and debootstrap, which need root")
    dockerd, cli = _require("dockerd"), _require("docker")
    root = Path(tempfile.mkdtemp(prefix="msgw-docker-"))  # short: containerd's socket path lives below it
    socket_path = root / "docker.sock"
    (root / "daemon.json").write_text("{}\n")  # ignore any /etc/docker/daemon.json on this machine
    log_path = root / "dockerd.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [
                dockerd,
                "--config-file",
                str(root / "daemon.json"),
                "--host",
                f"unix://{socket_path}",
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(root / "exec"),
                "--pidfile",
                str(root / "dockerd.pid"),
                "--bridge=none",
                "--iptables=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{socket_path}", DOCKER_CONFIG=str(root / "cli"), DOCKER_BUILDKIT="0")
    engine = Docker(cli=cli, env=env)
    try:
        deadline = time.monotonic() + 60
        while engine.run("version", timeout=10).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not come up:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)
        yield engine
    finally:
        _stop(daemon)
        _unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built from the repository's Dockerfile, on the debootstrap stand-in base."""
    _require("debootstrap")
    bases = base_images(DOCKERFILE.read_text(encoding="utf-8"))
    prepared = subprocess.run(
        [str(REPO / "scripts" / "docker-base-image"), "--import", *bases],
        env=docker.env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert prepared.returncode == 0, prepared.stderr[-4000:]
    context = tmp_path_factory.mktemp("context")
    shutil.copytree(REPO, context, symlinks=True, ignore=CONTEXT_SKIP, dirs_exist_ok=True)
    ca_bundle = next((Path(path) for path in CA_BUNDLES if path and Path(path).is_file()), None)
    build_args = []
    if ca_bundle is not None:
        shutil.copyfile(ca_bundle, context / "pip-ca.crt")
        build_args = ["--build-arg", "PIP_CERT=/src/pip-ca.crt"]
    docker.check("build", "--network", "host", *build_args, "--tag", IMAGE, str(context), timeout=900)
    return IMAGE


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    """The MetaStudio simulator on a loopback port, as a subprocess of the host's Python."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(_STRIPPED_PREFIXES)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "simulator", "--port", str(port), "--ak", AK, "--sk", SK],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(url + "/")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the simulator did not answer on {url}")
                time.sleep(0.1)
        yield url
    finally:
        _stop(process, seconds=15)


def _start_gateway(docker: Docker, image: str, simulator: str, config: Path) -> Container:
    """docker run the image on the host network against the simulator; wait (bounded) for /readyz."""
    port = _free_port()
    container_id = docker.check(
        "run",
        "--detach",
        "--network",
        "host",
        "--name",
        f"msgw-smoke-{uuid.uuid4().hex[:8]}",
        # Locked down the way the Helm chart runs it: read-only root, writable /tmp only, no capabilities.
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        # The image's own probe command, run every second instead of every 30 s.
        "--health-interval",
        "1s",
        "--env",
        f"HUAWEICLOUD_SDK_AK={AK}",
        "--env",
        f"HUAWEICLOUD_SDK_SK={SK}",
        "--env",
        "METASTUDIO_PROJECT_ID=sim-project",
        "--env",
        f"METASTUDIO_ENDPOINT={simulator}",
        "--env",
        "GATEWAY_HOST=127.0.0.1",
        "--env",
        f"GATEWAY_PORT={port}",
        "--volume",
        f"{config}:{CONFIG_PATH}:ro",
        image,
    ).strip()
    container = Container(id=container_id, base_url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while True:
        try:
            if _get(container.base_url + "/readyz")[0] == 200:
                return container
        except OSError:
            pass
        state = docker.inspect(container_id)["State"]
        if not state["Running"] or time.monotonic() > deadline:
            logs = docker.run("logs", container_id)
            docker.run("rm", "--force", container_id)
            pytest.fail(f"gateway container not ready ({state['Status']}):\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway config with one tenant whose API key is API_KEY."""
    path = tmp_path_factory.mktemp("config") / "gateway.toml"
    path.write_text(f'[[tenants]]\nid = "acme"\napp_user_id = "acme-web"\napi_key_sha256 = ["{hash_key(API_KEY)}"]\n')
    path.chmod(0o644)  # read by the image's unprivileged user
    return path


@pytest.fixture(scope="module")
def gateway(docker: Docker, image: str, simulator: str, config: Path) -> Iterator[Container]:
    """The gateway container shared by this module's read-only checks."""
    container = _start_gateway(docker, image, simulator, config)
    try:
        yield container
    finally:
        docker.run("rm", "--force", container.id)


def _exec_python(docker: Docker, container: Container, code: str) -> str:
    return docker.check("exec", container.id, "python3", "-c", code).strip()


def test_container_becomes_ready(gateway: Container) -> None:
    """/readyz answers 200 once the container has loaded its config and credentials."""
    assert _get(gateway.base_url + "/readyz")[0] == 200


def test_container_lists_the_tenants_training_jobs(gateway: Container) -> None:
    """A tenant's bearer key lists its jobs, fetched from the simulator and signed in the container."""
    status, body = _get(gateway.base_url + "/v1/training-jobs", {"Authorization": f"Bearer {API_KEY}"})
    assert status == 200, body[:500]
    listing = json.loads(body)
    assert listing["jobs"]
    assert listing["count"] >= len(listing["jobs"])
    assert {job["app_user_id"] for job in listing["jobs"]} == {"acme-web"}


def test_container_rejects_an_unknown_api_key(gateway: Container) -> None:
    """A key that is not in the mounted config gets 401."""
    status, body = _get(gateway.base_url + "/v1/training-jobs", {"Authorization": "Bearer not-a-key"})
    assert (status, json.loads(body)["error"]["code"]) == (401, "unauthenticated")


def test_container_process_is_not_root(docker: Docker, gateway: Container) -> None:
    """The server runs with a non-zero uid."""
    assert int(docker.check("exec", gateway.id, "id", "-u")) != 0


def test_image_declares_a_numeric_non_root_user(docker: Docker, image: str) -> None:
    """The image's configured user is a fixed non-zero uid (what Kubernetes runAsNonRoot can verify)."""
    uid = docker.inspect(image)["Config"]["User"].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_image_declares_a_healthcheck_on_healthz(docker: Docker, image: str) -> None:
    """docker inspect shows an exec-form HEALTHCHECK that requests /healthz."""
    test = docker.inspect(image)["Config"]["Healthcheck"]["Test"]
    assert test[0] == "CMD"
    assert "/healthz" in " ".join(test[1:])


def test_healthcheck_reports_the_container_healthy(docker: Docker, gateway: Container) -> None:
    """The image's health probe passes against the running server."""
    deadline = time.monotonic() + 30
    status = docker.inspect(gateway.id)["State"]["Health"]["Status"]
    while status != "healthy" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = docker.inspect(gateway.id)["State"]["Health"]["Status"]
    assert status == "healthy", docker.inspect(gateway.id)["State"]["Health"]["Log"]


def test_image_contains_no_compiler(docker: Docker, gateway: Container) -> None:
    """No C compiler or make in the runtime image."""
    code = "import shutil; print(sorted(t for t in ('cc', 'gcc', 'c++', 'g++', 'clang', 'make') if shutil.which(t)))"
    assert _exec_python(docker, gateway, code) == "[]"


def test_image_leaves_build_inputs_behind(docker: Docker, gateway: Container) -> None:
    """Sources, wheels, build tools and the build's CA bundle stay in the build stage."""
    code = "import os; print(sorted(p for p in ('/src', '/wheels', '/opt/build-tools') if os.path.exists(p)))"
    assert _exec_python(docker, gateway, code) == "[]"


def test_container_exits_zero_on_docker_stop(docker: Docker, image: str, simulator: str, config: Path) -> None:
    """docker stop's SIGTERM reaches the server as PID 1, which drains and exits 0."""
    container = _start_gateway(docker, image, simulator, config)
    try:
        docker.check("stop", "--time", "30", container.id, timeout=60)
        assert docker.inspect(container.id)["State"]["ExitCode"] == 0
    finally:
        docker.run("rm", "--force", container.id)
