"""The e2e stack's vLLM model runs for real on the real node: GPUs the scheduler hands out (the node advertises two of
the e2e pool's, scripts/cluster/real-node.sh), the pool's RuntimeClass (runc under the `nvidia` handler), and llm-d's
inference simulator in vLLM's place, which serves the OpenAI API and exports vLLM's `vllm:` metrics.

The model is the e2e stack's `llama` as the program renders it, moved onto the real node (its nodeSelector and
toleration), with the simulator's image and the program's vLLM flags mapped to the simulator's in one place
(:func:`stand_in_args`). Timings go to .cluster/logs/e2e-vllm.json.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import KUBECONFIG, Kube, Load, Stack, new_stack, record_timing, wait_until
from tests.e2e.stand_in import (
    NODE,
    NODE_GPUS,
    SERVED,
    chat,
    keda_on_the_queue,
    on_the_real_node,
    ready,
    rendered,
    simulator_patch,
)
from tests.project import Project

STACK = "e2e"
PREFIX = "sim"  # the tests' own namespaces
NAMESPACE = f"{PREFIX}-llama"
TIMINGS = KUBECONFIG.parent / "logs" / "e2e-vllm.json"


def _stand_in_model(project: Project) -> dict[str, Any]:
    """The e2e stack's llama, on the real node with the simulator; fixed at one replica until a test says."""
    config = project.config(STACK)
    model = next(m for m in config["models"] if m["name"] == "llama")
    for key in ("canary", "routing", "hubToken"):
        model.pop(key, None)
    on_the_real_node(model, autoscaling=keda_on_the_queue(NODE_GPUS))
    model["containerPatch"] = simulator_patch(rendered(config, model, namespace=PREFIX))
    return model


def _deploy(stack: Stack, model: dict[str, Any]) -> Any:
    stack.project.edit_config(STACK, {"models": [model]})
    return stack.make("up", check=False)


@pytest.fixture(scope="module")
def deployed(e2e_project: Project) -> Iterator[Stack]:
    model = _stand_in_model(e2e_project)
    e2e_project.edit_config(
        STACK, {"namespace": PREFIX, "imageLock": ".cluster/images.json", "gateway": None, "models": [model]}
    )
    stack = new_stack(e2e_project, STACK)
    stack.make("up")
    yield stack


def _pods(kube: Kube) -> list[dict[str, Any]]:
    return [
        p
        for p in kube.items("pods", NAMESPACE, "app.kubernetes.io/instance=llama")
        if not p["metadata"].get("deletionTimestamp")
    ]


def test_the_vllm_model_runs_on_the_real_node_holding_its_gpu(deployed: Stack, kube: Kube) -> None:
    node = kube.get("node", NODE)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(NODE_GPUS)
    (pod,) = _pods(kube)
    assert pod["spec"]["nodeName"] == NODE and pod["status"]["phase"] == "Running" and ready(pod)
    assert pod["spec"]["runtimeClassName"] == "nvidia"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["containers"][0]["image"].startswith("model-serving.local/llm-d-inference-sim@sha256:")
    answer = chat(deployed.endpoint("llama"))
    assert answer["model"] == SERVED and answer["choices"][0]["message"]["content"]
    metrics = kube.run(
        "get", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}:8000/proxy/metrics"
    )
    for series in ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"):
        assert series in metrics.stdout, series


def test_queue_depth_on_vllms_metric_scales_out_to_the_gpus_and_back(deployed: Stack, kube: Kube) -> None:
    url = deployed.endpoint("llama")

    def request() -> str | None:
        return None if chat(url)["choices"] else "no choices"

    start = time.monotonic()
    with Load(request, clients=4, limit=300) as load:
        wait_until(
            f"{NODE_GPUS} ready replicas under load",
            lambda: sum(ready(p) for p in _pods(kube)) == NODE_GPUS,
            timeout=240,
            interval=2,
        )
        record_timing(TIMINGS, "scale_out_seconds", time.monotonic() - start)
        assert {p["spec"]["nodeName"] for p in _pods(kube)} == {NODE}
    assert load.ok > 0 and not load.failures, load.failures[:3]
    stopped = time.monotonic()
    wait_until("one replica again", lambda: len(_pods(kube)) == 1, timeout=300, interval=3)
    record_timing(TIMINGS, "scale_in_seconds", time.monotonic() - stopped)


def test_a_rollout_on_an_exact_gpu_budget_completes(deployed: Stack, kube: Kube) -> None:
    """Both GPUs held, maxSurge 0: the rollout frees a GPU before it takes one (KEDA held at two replicas)."""
    model = _stand_in_model(deployed.project)
    model["autoscaling"].update(minReplicas=NODE_GPUS, maxReplicas=NODE_GPUS)
    result = _deploy(deployed, model)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wait_until("two ready replicas", lambda: sum(ready(p) for p in _pods(kube)) == NODE_GPUS, timeout=180)
    model["env"] = {"E2E_ROLL": "1"}
    start = time.monotonic()
    result = _deploy(deployed, model)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    kube.run("rollout", "status", "deployment/llama", "-n", NAMESPACE, "--timeout=180s", timeout=200)
    record_timing(TIMINGS, "exact_budget_rollout_seconds", time.monotonic() - start)
    pods = _pods(kube)
    assert len(pods) == NODE_GPUS and all(ready(p) for p in pods)
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env.get("E2E_ROLL") == "1", pod["metadata"]["name"]


def test_a_replica_beyond_the_gpus_stays_pending_and_up_says_why(deployed: Stack, kube: Kube) -> None:
    """Three replicas of one GPU on a node of two: the third pod waits, Pulumi's await runs out (bounded by the
    progress deadline: 30 s, then its own margin), and `make up` fails naming the scheduler's reason."""
    model = _stand_in_model(deployed.project)
    model.pop("autoscaling")
    rollout = {"maxSurge": 0, "maxUnavailable": 1, "progressDeadlineSeconds": 30}
    # First off KEDA at a count that fits: the autoscaler goes in that update and may still set the count meanwhile
    # (the fixed count is the program's again afterwards: pulumi.com/patchForce).
    model.update(replicas=NODE_GPUS, rollout=rollout)
    first = _deploy(deployed, model)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    model["replicas"] = NODE_GPUS + 1
    start = time.monotonic()
    result = _deploy(deployed, model)
    record_timing(TIMINGS, "beyond_budget_up_seconds", time.monotonic() - start)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "Insufficient nvidia.com/gpu" in output, output[-4000:]
    pending = [p for p in _pods(kube) if p["status"]["phase"] == "Pending"]
    assert len(pending) == 1, [(p["metadata"]["name"], p["status"]["phase"]) for p in _pods(kube)]
    (scheduled,) = [c for c in pending[0]["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled["reason"] == "Unschedulable" and "nvidia.com/gpu" in scheduled["message"]
