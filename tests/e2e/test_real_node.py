"""The `local` stack served for real: `make up` on the local cluster's real node, traffic through the LoadBalancer.

The tests run in order on one deployed stack: the pod and its security context, embeddings through the load
balancer, its source ranges, elastic scaling under load and back, a rolling update under load, and last a rollout
whose pods fail their startup probe. Timings go to .cluster/logs/e2e-real-node.json.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import KUBECONFIG, Kube, Load, Stack, new_stack, post_embeddings, record_timing, wait_until
from tests.harness import ROOT
from tests.project import Project

STACK = "local"
NODE = "model-serving-node"
REFERENCE = json.loads((ROOT / "tests" / "app" / "data" / "minilm_reference.json").read_text())
TIMINGS = KUBECONFIG.parent / "logs" / "e2e-real-node.json"
# A text long enough that a few clients keep the pods' CPU over the HPA's target.
LOAD_TEXT = " ".join(["Elastic scaling keeps a model's latency flat while its load grows."] * 12)


def embeddings_load(url: str, clients: int, limit: float) -> Load:
    """Clients posting embeddings of LOAD_TEXT in a loop (a bounded load)."""

    def request() -> str | None:
        status, body = post_embeddings(url, {"input": LOAD_TEXT})
        return None if status == 200 and body.get("data") else f"HTTP {status}: {str(body)[:200]}"

    return Load(request, clients, limit)


@pytest.fixture(scope="module")
def stack(e2e_project: Project) -> Stack:
    # A namespace of the tests' own: a `make up` of the checkout's local stack may be serving in `local-minilm`.
    # The embeddings model alone: its scaling and rollouts need the node's CPUs (test_llm.py serves both models).
    models = [m for m in e2e_project.config(STACK)["models"] if m["name"] == "minilm"]
    e2e_project.edit_config(STACK, {"namespace": "realnode", "models": models})
    return new_stack(e2e_project, STACK)


@pytest.fixture(scope="module")
def deployed(stack: Stack) -> Iterator[Stack]:
    started = time.monotonic()
    stack.make("up")
    record_timing(TIMINGS, "make_up_seconds", time.monotonic() - started)
    yield stack


@pytest.fixture(scope="module")
def endpoint(deployed: Stack) -> str:
    return deployed.endpoint("minilm")


def _namespace(stack: Stack) -> str:
    return next(iter(stack.namespaces()))


def _deployment(kube: Kube, stack: Stack) -> dict[str, Any]:
    deployments = kube.items("deployments", _namespace(stack))
    assert len(deployments) == 1
    return deployments[0]


def _pods(kube: Kube, stack: Stack) -> list[dict[str, Any]]:
    return [p for p in kube.items("pods", _namespace(stack)) if not p["metadata"].get("deletionTimestamp")]


def _hpa_at_rest(kube: Kube, stack: Stack) -> bool:
    """The HPA wants, has and asks the Deployment for one replica, and the Deployment has only that one."""
    hpa = kube.get("hpa", "minilm", "-n", _namespace(stack))
    status = hpa.get("status", {})
    deployment = _deployment(kube, stack)
    return (
        status.get("desiredReplicas") == status.get("currentReplicas") == 1
        and deployment["spec"]["replicas"] == 1
        and deployment.get("status", {}).get("replicas") == 1
    )


def _ready_since(pod: dict[str, Any]) -> datetime | None:
    for condition in pod.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready" and condition["status"] == "True":
            return datetime.fromisoformat(condition["lastTransitionTime"].replace("Z", "+00:00"))
    return None


def _log_times(kube: Kube, stack: Stack, pod: str, marker: str) -> list[datetime]:
    """Times of the pod's log lines containing ``marker`` (the kubelet's timestamps)."""
    logs = kube.run("logs", pod, "-n", _namespace(stack), "--timestamps").stdout
    return [datetime.fromisoformat(line.split(" ", 1)[0]) for line in logs.splitlines() if marker in line]


def _exec(kube: Kube, stack: Stack, pod: str, *command: str) -> str:
    return kube.run("exec", pod, "-n", _namespace(stack), "--", *command).stdout


def test_model_pod_runs_on_the_real_node_restricted(deployed: Stack, kube: Kube) -> None:
    pods = _pods(kube, deployed)
    assert len(pods) == 1
    pod = pods[0]
    assert pod["spec"]["nodeName"] == NODE
    name = pod["metadata"]["name"]
    # What the kernel says about the running server, not what the spec asked for.
    status = dict(
        line.split(":\t", 1)
        for line in _exec(kube, deployed, name, "cat", "/proc/1/status").splitlines()
        if ":\t" in line
    )
    assert status["Uid"].split()[0] == "10001" and status["Gid"].split()[0] == "10001"
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
    assert status["Seccomp"].strip() == "2"  # filter mode: the runtime's default profile
    assert status["NoNewPrivs"].strip() == "1"
    touched = kube.run("exec", name, "-n", _namespace(deployed), "--", "touch", "/opt/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr


def test_readiness_follows_the_model_load(deployed: Stack, kube: Kube) -> None:
    pod = _pods(kube, deployed)[0]
    loaded = _log_times(kube, deployed, pod["metadata"]["name"], "model ready in")
    ready = _ready_since(pod)
    assert loaded and ready is not None
    # The Ready condition's time has whole seconds; the model was loaded before the probe could pass.
    assert ready >= loaded[0].replace(microsecond=0)


def test_embeddings_through_the_load_balancer(endpoint: str) -> None:
    status, body = post_embeddings(endpoint, {"input": REFERENCE["sentences"]})
    assert status == 200, body
    got = [item["embedding"] for item in sorted(body["data"], key=lambda item: item["index"])]
    assert len(got) == len(REFERENCE["embeddings"])
    for vector, expected in zip(got, REFERENCE["embeddings"], strict=True):
        assert len(vector) == 384
        assert max(abs(a - b) for a, b in zip(vector, expected, strict=True)) < 1e-5


def test_load_balancer_honours_source_ranges(deployed: Stack, kube: Kube, endpoint: str) -> None:
    """A second LoadBalancer Service over the same pods, admitting only 10.0.0.0/8: loopback clients are refused."""
    namespace = _namespace(deployed)
    service = kube.items("services", namespace)[0]
    closed = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "closed", "namespace": namespace},
        "spec": {
            "type": "LoadBalancer",
            "selector": service["spec"]["selector"],
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
        },
    }
    kube.run("apply", "-f", "-", stdin=json.dumps(closed))
    try:
        wait_until(
            "the closed Service's address",
            lambda: bool(
                kube.get("service", "closed", "-n", namespace)["status"].get("loadBalancer", {}).get("ingress")
            ),
            timeout=60,
        )
        address = kube.get("service", "closed", "-n", namespace)["status"]["loadBalancer"]["ingress"][0]["ip"]
        with pytest.raises((OSError, http.client.HTTPException)):
            post_embeddings(f"http://{address}:80", {"input": "hello"}, timeout=10)
        status, _ = post_embeddings(endpoint, {"input": "hello"})  # the stack's own Service admits 127.0.0.0/8
        assert status == 200
    finally:
        kube.run("delete", "service", "closed", "-n", namespace, "--ignore-not-found")


def test_scales_out_under_load_and_back(deployed: Stack, kube: Kube, endpoint: str) -> None:
    before = {p["metadata"]["name"] for p in _pods(kube, deployed)}
    assert len(before) == 1
    started = time.monotonic()
    with embeddings_load(endpoint, clients=4, limit=420) as load:
        wait_until(
            "the HPA to scale the model out", lambda: _deployment(kube, deployed)["spec"]["replicas"] >= 2, 300, 2
        )
        scaled = time.monotonic()
        record_timing(TIMINGS, "scale_out_seconds", scaled - started)

        def new_ready_pod() -> dict[str, Any] | None:
            return next(
                (p for p in _pods(kube, deployed) if p["metadata"]["name"] not in before and _ready_since(p)), None
            )

        wait_until("a new replica to be ready", lambda: new_ready_pod() is not None, 180, 1)
        pod = new_ready_pod()
        assert pod is not None
        name = pod["metadata"]["name"]
        wait_until(
            "traffic on the new replica", lambda: bool(_log_times(kube, deployed, name, "POST /v1/embeddings")), 120, 2
        )
        record_timing(TIMINGS, "new_replica_serving_seconds", time.monotonic() - scaled)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 0
    served = _log_times(kube, deployed, name, "POST /v1/embeddings")
    ready = _ready_since(pod)
    assert ready is not None and served[0] >= ready, "the new replica got traffic before it was ready"
    stopped = time.monotonic()
    wait_until(
        "the HPA to scale back to one replica", lambda: _deployment(kube, deployed)["spec"]["replicas"] == 1, 420, 3
    )
    record_timing(TIMINGS, "scale_in_seconds", time.monotonic() - stopped)
    record_timing(TIMINGS, "load_requests_ok", load.ok)


def test_rolling_update_under_load_fails_no_request(deployed: Stack, kube: Kube, endpoint: str) -> None:
    project = deployed.project
    models = project.config(STACK)["models"]
    models[0]["env"] = {**models[0].get("env", {}), "ROLLOUT_MARK": "2"}
    project.edit_config(STACK, {"models": models})
    started = time.monotonic()
    with embeddings_load(endpoint, clients=2, limit=600) as load:
        deployed.make("up")
        # pulumi-kubernetes' awaiter can report the rollout done when the HPA rescales the Deployment in the same
        # instant the template changes (the controller handles both as one scaling event, so the revision it sees
        # is the old one); the load goes on until the controller itself says the rollout is complete.
        kube.run("rollout", "status", "deployment/minilm", "-n", _namespace(deployed), "--timeout=300s")
    record_timing(TIMINGS, "rolling_update_seconds", time.monotonic() - started)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 0
    pods = _pods(kube, deployed)
    assert pods
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
        assert env.get("ROLLOUT_MARK") == "2", pod["metadata"]["name"]


def test_startup_probe_failure_is_restarted_and_reported(deployed: Stack, kube: Kube, endpoint: str) -> None:
    """A model that loads slower than its budget: the kubelet restarts it, `make up` fails naming the Deployment,
    and the previous replicas keep serving (maxUnavailable 0)."""
    project = deployed.project
    models = project.config(STACK)["models"]
    models[0]["env"] = {**models[0].get("env", {}), "DEBUG_LOAD_DELAY_SECONDS": "600"}
    models[0]["probes"] = {"modelLoadSeconds": 10, "periodSeconds": 5}
    models[0]["rollout"] = {**models[0].get("rollout", {}), "progressDeadlineSeconds": 30}
    project.edit_config(STACK, {"models": models})
    # The HPA at rest first: a rescale in the same instant as the template change lets pulumi-kubernetes' awaiter
    # take the previous revision for the rollout (docs/troubleshooting.md), and the rolling update before this test
    # may have left it scaling in.
    wait_until("the HPA to rest at one replica", lambda: _hpa_at_rest(kube, deployed), 300, 3)
    result = deployed.make("up", check=False)
    output = result.stdout + result.stderr
    (KUBECONFIG.parent / "logs" / "e2e-startup-failure.log").write_text(output)
    assert result.returncode != 0
    namespace, deployment = _namespace(deployed), _deployment(kube, deployed)["metadata"]["name"]
    # Pulumi names the Deployment and its deadline; explain_rollout.py adds the restarts and the probe's verdict.
    assert f'"{namespace}/{deployment}" failed to fully initialize' in output, output[-4000:]
    assert "ProgressDeadlineExceeded" in output
    explained = re.findall(rf"Deployment {namespace}/{deployment}: pod \S+: (.*)", output)
    assert any("restarted" in line for line in explained), output[-4000:]
    assert any("Startup probe failed" in line for line in explained), output[-4000:]
    restarted = [
        p
        for p in _pods(kube, deployed)
        if any(s.get("restartCount", 0) >= 1 for s in p.get("status", {}).get("containerStatuses", []))
    ]
    assert restarted, "no container was restarted after failing its startup probe"
    status, _ = post_embeddings(endpoint, {"input": "still serving"})
    assert status == 200
