"""The llama.cpp image's container, run as the local stack's pod runs it: scripts/image-test builds the image, starts
its private Docker daemon and runs these tests with DOCKER, DOCKER_HOST and LLAMACPP_IMAGE set. Without them they
fail: there is nothing to skip to."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components import specs
from tests.unit.mocking import model

# The client, its daemon, the image, and the context and build base it was built from.
ENV = ("DOCKER", "DOCKER_HOST", "LLAMACPP_IMAGE", "LLAMACPP_CONTEXT", "LLAMACPP_BUILD_IMAGE")


@dataclass
class Container:
    """One container of the image, reached on 127.0.0.1:``port``."""

    docker: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 120
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, payload, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        status, raw = self.request(method, path, body)
        return status, json.loads(raw or b"null")

    def logs(self) -> str:
        result = subprocess.run([self.docker, "logs", self.name], capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod_args(port: int, **llamacpp: Any) -> list[str]:
    """The container args the program renders for the local stack's gemma (``llamacpp`` keys changed as given),
    on 127.0.0.1:``port``: the host network is shared, and nothing but this machine may reach it."""
    edits = {f"models[1].llamacpp.{key}": value for key, value in llamacpp.items()}
    gemma = model("local", "gemma", edits)
    args = specs.container_args(gemma)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    return args


@pytest.fixture(scope="session")
def docker() -> tuple[str, str]:
    missing = [name for name in ENV if not os.environ.get(name)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: these tests run from scripts/image-test (make image-test)")
    return os.environ["DOCKER"], os.environ["LLAMACPP_IMAGE"]


_serial = itertools.count()  # container names: unique within this run


class Containers:
    """Starts containers as the pod runs them (uid 10001, read-only root, no capabilities, no new privileges, a
    writable /tmp only); ``remove_all`` keeps each one's log in ``logs`` and removes it."""

    def __init__(self, client: str, image: str, logs: Path) -> None:
        self.client, self.image, self.logs = client, image, logs
        self.started: list[Container] = []

    def __call__(self, *, drain_seconds: int = 25, **llamacpp: Any) -> Container:
        port = free_port()
        name = f"model-serving-llamacpp-test-{os.getpid()}-{next(_serial)}"
        command = [self.client, "run", "-d", "--name", name, "--network", "host", "--read-only"]
        command += ["--tmpfs", "/tmp:rw,size=64m", "--user", "10001:10001", "--cap-drop", "ALL"]
        command += ["--security-opt", "no-new-privileges", "-e", f"DRAIN_SECONDS={drain_seconds}"]
        run = subprocess.run([*command, self.image, *pod_args(port, **llamacpp)], capture_output=True, timeout=60)
        assert run.returncode == 0, f"docker run failed: {run.stderr.decode()}"
        container = Container(self.client, name, port)
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        for container in self.started:
            (self.logs / f"{container.name}.log").write_text(container.logs())
            subprocess.run([self.client, "rm", "-f", container.name], capture_output=True, timeout=60)
        self.started.clear()


@pytest.fixture(scope="module")
def start(docker: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containers]:
    """For the container the API tests share: removed after the module."""
    containers = Containers(*docker, tmp_path_factory.mktemp("llamacpp-logs"))
    yield containers
    containers.remove_all()


@pytest.fixture
def fresh(docker: tuple[str, str], tmp_path: Path) -> Iterator[Containers]:
    """For a test that needs a container of its own (other settings, a signal): removed after that test."""
    containers = Containers(*docker, tmp_path)
    yield containers
    containers.remove_all()


def wait_healthy(container: Container, timeout: float = 120) -> list[int]:
    """Poll /health until it answers 200; the statuses seen on the way (connection refused: 0)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = container.request("GET", "/health", timeout=5)
        except OSError:
            status = 0
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"/health never answered 200 within {timeout:.0f}s: {seen}\n{container.logs()[-3000:]}")


@pytest.fixture(scope="module")
def server(start: Containers) -> tuple[Container, list[int]]:
    """One container for the API tests, and the /health statuses it went through while loading."""
    container = start()
    return container, wait_healthy(container)
