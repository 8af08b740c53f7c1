"""End-to-end: the real Pulumi CLI against the local Kubernetes cluster (scripts/local-cluster).

`make e2e` (part of `make test`) starts the cluster, runs these tests and stops it. They check what the API
server holds afterwards, not what the program meant to send. Stacks run in copies of the project, so the
checkout's stack files and state stay untouched. Without a running cluster they skip on a developer's
machine and fail in CI.
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from components import specs
from components.config import SECRET_KEYS, parse_stack_config
from tests.harness import ROOT, TEST_SECRETS
from tests.project import Project, cli_available, copy_project, require

KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"


@dataclass(frozen=True)
class Kube:
    """kubectl against the local cluster, JSON in and out."""

    kubeconfig: Path = KUBECONFIG

    def run(
        self, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json").stdout)

    def items(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        args = [kind, "-n", namespace] if namespace else [kind, "--all-namespaces"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = self.get(*args)["items"]
        return items

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        args = ["get", kind, name, *(["-n", namespace] if namespace else []), "--ignore-not-found", "-o", "name"]
        return bool(self.run(*args).stdout.strip())

    def secret_data(self, name: str, namespace: str) -> dict[str, str]:
        data = self.get("secret", name, "-n", namespace).get("data", {})
        return {k: base64.b64decode(v).decode() for k, v in data.items()}


def post_embeddings(url: str, body: dict[str, Any], timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """POST /v1/embeddings on a connection of its own, so that a load balancer picks a pod for each request."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("POST", "/v1/embeddings", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def record_timing(path: Path, name: str, seconds: float) -> None:
    """Add ``name``'s measured seconds to the JSON file of a module's timings (under .cluster/logs)."""
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[name] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timings, indent=2) + "\n")


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 120, interval: float = 1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Load:
    """``clients`` threads calling ``request`` in a loop until stopped or ``limit`` seconds have passed (a bounded
    load). ``request`` returns None for a success, else what failed; an exception counts as a failure too."""

    request: Callable[[], str | None]
    clients: int = 4
    limit: float = 300
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        deadline = time.monotonic() + self.limit
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, args=(deadline,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=300)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                failure = self.request()
            except Exception as error:  # every failure counts, whatever its kind
                failure = f"{type(error).__name__}: {error}"
            with self._lock:
                if failure:
                    self.failures.append(failure)
                else:
                    self.ok += 1


@pytest.fixture(scope="session")
def kube() -> Kube:
    require(cli_available(), "the Pulumi CLI is missing: run scripts/install-pulumi (make test does)")
    require(KUBECTL.exists(), "kubectl is missing: run scripts/install-k8s (make test does)")
    ready = KUBECONFIG.exists() and Kube().run("get", "--raw", "/readyz", check=False).returncode == 0
    require(ready, "the local cluster is not running: make cluster-up (make e2e starts and stops it itself)")
    return Kube()


@dataclass
class Stack:
    """One stack of a project copy, deployed to the local cluster."""

    project: Project
    name: str

    def make(self, target: str, *args: str, check: bool = True, timeout: float = 900) -> Any:
        return self.project.make(target, f"STACK={self.name}", *args, check=check, timeout=timeout)

    def pulumi(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.project.pulumi(*args, "--stack", self.name, check=check, timeout=timeout)

    def outputs(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.pulumi("stack", "output", "--json").stdout)
        return result

    def namespaces(self) -> set[str]:
        """The model namespaces this stack's config declares."""
        config = self.project.config(self.name)
        prefix = config.get("namespace", "models")
        return {f"{prefix}-{m['name']}" for m in config["models"]}

    def endpoint(self, model: str) -> str:
        """The model's endpoint output: a LoadBalancer stand-in address."""
        url: str = self.outputs()[f"{model}_endpoint"]
        assert url.startswith("http://127.0.10."), url
        return url

    def export(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.pulumi("stack", "export").stdout)
        return result


def planned_objects(project: Project, stack: str) -> dict[str, list[str]]:
    """What the program registers for each model of the project's stack, by kind: `namespace/name`."""
    raw = {k: v for k, v in project.config(stack).items() if k not in SECRET_KEYS}
    config = parse_stack_config(raw, has_hub_token=True)
    scheduling = specs.gpu_scheduling(config.gpu_pool)
    found: dict[str, list[str]] = {}
    for model in config.models:
        steps = [
            *specs.admission.plan(model, scheduling),
            *specs.workloads.plan(model, "image", scheduling, "token"),
            *specs.network.plan(model, config.monitoring, config.gateway),
            *specs.scaling.plan(model, config.monitoring),
            *(specs.routing.plan(model, config.gateway, config.monitoring) if model.routing.mode != "service" else []),
        ]
        for step in steps:
            found.setdefault(step.obj["kind"], []).append(f"{model.namespace}/{step.obj['metadata']['name']}")
    return found


def new_stack(project: Project, name: str, *, secrets: dict[str, str] | None = None) -> Stack:
    """Create ``name`` in the copy's file backend and set its secrets (``--secret``, as the README says)."""
    project.pulumi("stack", "select", "--create", name)
    for key, value in (secrets or {}).items():
        project.pulumi("config", "set", "--secret", "--stack", name, f"model-serving:{key}", value)
    return Stack(project, name)


@pytest.fixture(scope="module")
def e2e_project(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A project copy whose Pulumi commands reach the local cluster; its stacks are destroyed afterwards."""
    project = copy_project(tmp_path_factory.mktemp("e2e"))
    # The stacks name .cluster/kubeconfig (model-serving:kubeconfig): the running cluster's, not a copy's.
    (project.path / ".cluster").symlink_to(KUBECONFIG.parent)
    yield project
    # Leave the cluster as found for the next module: destroy whatever stack is still deployed.
    listing = project.pulumi("stack", "ls", "--json", check=False)
    if listing.returncode == 0:
        for entry in json.loads(listing.stdout or "[]"):
            if entry.get("resourceCount"):
                project.pulumi("cancel", "--yes", "--stack", entry["name"], check=False)
                project.make("destroy", f"STACK={entry['name']}", "DESTROY_ARGS=--refresh", check=False)


@pytest.fixture(scope="module")
def hub_token() -> str:
    return TEST_SECRETS["hubToken"]
