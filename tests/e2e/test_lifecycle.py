"""The `e2e` stack's whole life on a real API server: up, no-op up, refresh, in-place update, destroy.

The tests of this module run in order and share one deployed stack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Kube, Stack, new_stack, wait_until
from tests.project import Project

STACK = "e2e"


@pytest.fixture(scope="module")
def stack(e2e_project: Project, hub_token: str) -> Stack:
    return new_stack(e2e_project, STACK, secrets={"hubToken": hub_token})


@pytest.fixture(scope="module")
def deployed(stack: Stack) -> Stack:
    stack.make("up")
    return stack


def _model(stack: Stack, name: str) -> dict[str, Any]:
    return next(m for m in stack.project.config(stack.name)["models"] if m["name"] == name)


def _available(deployment: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in deployment.get("status", {}).get("conditions", [])}
    status = deployment.get("status", {})
    return (
        conditions.get("Available") == "True"
        and status.get("updatedReplicas") == status.get("replicas") == status.get("readyReplicas")
        and status.get("observedGeneration") == deployment["metadata"]["generation"]
    )


def test_up_creates_namespaces_with_pod_security(deployed: Stack, kube: Kube) -> None:
    for name in deployed.namespaces():
        labels = kube.get("namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", name
    plugin = kube.get("namespace", "nvidia-device-plugin")["metadata"]["labels"]
    assert plugin["pod-security.kubernetes.io/enforce"] == "privileged"


def test_every_deployment_is_available(deployed: Stack, kube: Kube) -> None:
    for namespace in deployed.namespaces():
        deployments = kube.items("deployments", namespace)
        assert len(deployments) == 1, namespace
        assert _available(deployments[0]), deployments[0]["status"]
    plugin = kube.get("daemonset", "nvidia-device-plugin", "-n", "nvidia-device-plugin")["status"]
    assert plugin["numberReady"] == plugin["desiredNumberScheduled"] > 0


def test_gpu_pods_land_on_the_pool_with_whole_gpus(deployed: Stack, kube: Kube) -> None:
    config = deployed.project.config(STACK)
    nodes = {n["metadata"]["name"]: n for n in kube.items("nodes")}
    gpu_pods = 0
    for namespace in deployed.namespaces():
        for pod in kube.items("pods", namespace):
            assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
            limits = pod["spec"]["containers"][0]["resources"]["limits"]
            requests = pod["spec"]["containers"][0]["resources"]["requests"]
            node = nodes[pod["spec"]["nodeName"]]
            if "nvidia.com/gpu" not in limits:
                assert "nvidia.com/gpu" not in node["status"]["allocatable"], "CPU model on a GPU node"
                continue
            gpu_pods += 1
            assert requests["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
            assert int(limits["nvidia.com/gpu"]) >= 1
            assert node["metadata"]["labels"].get("nvidia.com/gpu.present") == "true"
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints", [])}
            assert ("nvidia.com/gpu", "NoSchedule") in taints
    llama = _model(deployed, "llama")
    assert gpu_pods == llama["autoscaling"]["minReplicas"]
    assert config["gpuPool"]["gpuBudget"] == sum(
        int(n["status"]["allocatable"].get("nvidia.com/gpu", 0)) for n in nodes.values()
    )


def test_load_balancers_have_the_exported_address(deployed: Stack, kube: Kube) -> None:
    outputs = deployed.outputs()
    for model in deployed.project.config(STACK)["models"]:
        namespace = f"e2e-{model['name']}"
        service = kube.get("service", model["name"], "-n", namespace)
        assert service["spec"]["type"] == "LoadBalancer"
        assert service["spec"]["loadBalancerSourceRanges"] == model["service"]["sourceRanges"]
        ingress = service["status"]["loadBalancer"]["ingress"]
        assert len(ingress) == 1 and ingress[0]["ip"].startswith("127.")
        assert outputs[f"{model['name']}_endpoint"] == f"http://{ingress[0]['ip']}:{model['service']['port']}"


def test_autoscalers_budgets_policies_and_node_pool_are_accepted(deployed: Stack, kube: Kube) -> None:
    for model in deployed.project.config(STACK)["models"]:
        namespace = f"e2e-{model['name']}"
        if model["autoscaling"].get("driver") == "keda":  # a ScaledObject instead (test_keda_monitoring.py)
            scaled = kube.get("scaledobjects.keda.sh", model["name"], "-n", namespace)
            assert scaled["spec"]["minReplicaCount"] == model["autoscaling"]["minReplicas"]
        else:
            hpa = kube.get("hpa", model["name"], "-n", namespace)
            assert hpa["spec"]["minReplicas"] == model["autoscaling"]["minReplicas"]
            assert hpa["spec"]["metrics"][0]["type"] == "Pods"
        assert kube.exists("pdb", model["name"], namespace)
        assert kube.items("networkpolicies", namespace), namespace
    pool = kube.get("nodepools.karpenter.sh", "gpu")
    assert pool["spec"]["template"]["spec"]["taints"][0]["key"] == "nvidia.com/gpu"


def test_hub_token_is_in_the_cluster_and_encrypted_in_state(deployed: Stack, kube: Kube, hub_token: str) -> None:
    secrets = [s for s in kube.items("secrets", "e2e-llama") if s.get("type") == "Opaque"]
    values = [v for s in secrets for v in kube.secret_data(s["metadata"]["name"], "e2e-llama").values()]
    assert hub_token in values
    state_files = list((deployed.project.path / ".pulumi-state").rglob("*.json"))
    assert state_files
    for path in state_files:
        assert hub_token not in path.read_text(errors="replace"), path
    assert hub_token not in json.dumps(deployed.export())


def test_second_up_changes_nothing_and_refresh_finds_no_drift(deployed: Stack) -> None:
    deployed.make("preview", "PREVIEW_ARGS=--expect-no-changes")
    deployed.pulumi("refresh", "--yes", "--expect-no-changes", "--skip-preview")


def test_memory_and_env_changes_update_in_place_and_roll_out(deployed: Stack, kube: Kube) -> None:
    config = deployed.project.config(STACK)
    models = config["models"]
    embeddings = next(m for m in models if m["name"] == "embeddings")
    embeddings["resources"]["memory"] = "5Gi"
    llama = next(m for m in models if m["name"] == "llama")
    llama["env"] = {**llama.get("env", {}), "E2E_ROLL": "2"}
    deployed.project.edit_config(STACK, {"models": models})
    preview = json.loads(deployed.pulumi("preview", "--json").stdout)
    ops = {(s["urn"].rsplit("::", 1)[-1], s["op"]) for s in preview["steps"] if s["op"] != "same"}
    assert ops == {("embeddings", "update"), ("llama", "update")}, ops
    deployed.make("up")
    memory = kube.get("deployment", "embeddings", "-n", "e2e-embeddings")["spec"]["template"]["spec"]
    assert memory["containers"][0]["resources"]["limits"]["memory"] == "5Gi"
    gpu = kube.get("deployment", "llama", "-n", "e2e-llama")
    env = {e["name"]: e.get("value") for e in gpu["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["E2E_ROLL"] == "2"
    assert gpu["spec"]["strategy"]["rollingUpdate"]["maxSurge"] in (0, "0", "0%")
    # Pulumi awaited the rollout: every pod runs the new template, on nodes holding exactly the budgeted GPUs.
    assert _available(gpu)
    pods = kube.items("pods", "e2e-llama")
    assert len(pods) == llama["autoscaling"]["minReplicas"]
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["E2E_ROLL"] == "2"


def test_destroy_leaves_nothing(deployed: Stack, kube: Kube) -> None:
    deployed.make("destroy")
    for namespace in [*deployed.namespaces(), "nvidia-device-plugin"]:
        wait_until(f"namespace {namespace} to be gone", lambda ns=namespace: not kube.exists("namespace", ns))
    assert not kube.exists("nodepools.karpenter.sh", "gpu")
    assert not kube.exists("runtimeclass", "nvidia")
    # Only this stack's: a user's `make up` of the local stack may be serving beside it.
    gone = {*deployed.namespaces(), "nvidia-device-plugin", "nvidia-dcgm-exporter"}
    pods = kube.items("pods", selector="app.kubernetes.io/part-of=model-serving")
    assert not [p for p in pods if p["metadata"]["namespace"] in gone]
    resources = deployed.export()["deployment"].get("resources") or []
    assert resources == []
