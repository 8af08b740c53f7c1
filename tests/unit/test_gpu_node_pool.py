"""GpuNodePool: device plugin DaemonSet and its ConfigMap, RuntimeClass, Karpenter NodePool, and its outputs."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from components import specs
from components.config import DevicePluginConfig, GpuPoolConfig, parse_quantity
from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from tests.kube_checks import validate_object
from tests.unit.mocking import Components, run_components, typed

COMPONENT = "model-serving:index:GpuNodePool"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

TUNED = {
    "gpuPool.devicePlugin.timeSlicingReplicas": 4,
    "gpuPool.devicePlugin.migStrategy": "mixed",
    "gpuPool.devicePlugin.image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.2",
    "gpuPool.taint": {"key": "gpu.example.com/dedicated", "value": "inference", "effect": "NoExecute"},
    "gpuPool.nodeSelector": {"gpu.example.com/class": "a100"},
    "gpuPool.karpenter.instanceTypes": ["p4d.24xlarge", "p5.48xlarge"],
    "gpuPool.karpenter.capacityTypes": ["on-demand", "spot"],
    "gpuPool.karpenter.disruptionBudgetNodes": "1",
    "gpuPool.karpenter.nodeClassRef.name": "gpu-al2023",
}


def _pool(stack: str = "prod", edits: dict[str, Any] | None = None) -> GpuPoolConfig:
    return typed(stack, edits).gpu_pool


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


# --- device plugin DaemonSet -------------------------------------------------------------------


def test_the_device_plugin_image_is_pinned_to_a_release() -> None:
    container = _pod_spec(specs.device_plugin_daemon_set(_pool()))["containers"][0]
    assert container["image"] == DevicePluginConfig().image
    assert re.fullmatch(r"nvcr\.io/nvidia/k8s-device-plugin:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", container["image"])
    tuned = _pod_spec(specs.device_plugin_daemon_set(_pool(edits=TUNED)))["containers"][0]
    assert tuned["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"


@pytest.mark.parametrize(
    ("edits", "toleration", "selector"),
    [
        (None, GPU_TOLERATION, {"nvidia.com/gpu.present": "true"}),
        (
            TUNED,
            {"key": "gpu.example.com/dedicated", "operator": "Exists", "effect": "NoExecute"},
            {"gpu.example.com/class": "a100"},
        ),
    ],
)
def test_the_device_plugin_runs_on_the_tainted_gpu_nodes(
    edits: dict[str, Any] | None, toleration: dict[str, str], selector: dict[str, str]
) -> None:
    pod = _pod_spec(specs.device_plugin_daemon_set(_pool(edits=edits)))
    assert toleration in pod["tolerations"]
    assert pod["nodeSelector"] == selector


def test_the_device_plugin_is_node_critical_with_requests_and_limits() -> None:
    pod = _pod_spec(specs.device_plugin_daemon_set(_pool()))
    assert pod["priorityClassName"] == "system-node-critical"
    resources = pod["containers"][0]["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, kind
        for name, amount in resources[kind].items():
            assert parse_quantity(amount) > 0, (kind, name)
    for name in ("cpu", "memory"):
        assert parse_quantity(resources["requests"][name]) <= parse_quantity(resources["limits"][name]), name


def test_the_device_plugin_gets_no_more_privilege_than_its_socket_needs() -> None:
    pod = _pod_spec(specs.device_plugin_daemon_set(_pool()))
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["privileged"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    host_paths = [v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v]
    assert host_paths == ["/var/lib/kubelet/device-plugins"]


def test_the_device_plugin_states_its_root_user_and_keeps_its_root_filesystem_read_only() -> None:
    """Root is the plugin's one need (the kubelet's socket directory); it says so itself, and writes nowhere else."""
    pod = _pod_spec(specs.device_plugin_daemon_set(_pool()))
    context = pod["containers"][0]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (0, 0, False)
    assert context["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/kubelet/device-plugins", "/tmp"}
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert parse_quantity(tmp["emptyDir"]["sizeLimit"]) <= parse_quantity("64Mi")


@pytest.mark.parametrize("strategy", ["single", "mixed"])
def test_mig_gets_what_nvidias_own_deployment_gives_it(strategy: str) -> None:
    """With a MIG strategy NVIDIA's chart adds SYS_ADMIN and NVIDIA_MIG_MONITOR_DEVICES=all; without them the
    plugin cannot enumerate MIG devices and advertises none."""
    pool = _pool(edits={"gpuPool.devicePlugin.migStrategy": strategy})
    container = _pod_spec(specs.device_plugin_daemon_set(pool))["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    # Kubernetes counts a container with SYS_ADMIN as able to escalate: the spec does not claim otherwise.
    assert container["securityContext"]["allowPrivilegeEscalation"] is True
    assert container["securityContext"]["privileged"] is False
    assert {"name": "NVIDIA_MIG_MONITOR_DEVICES", "value": "all"} in container["env"]
    assert _plugin_settings(pool)["flags"] == {"migStrategy": strategy}
    validate_object(specs.device_plugin_daemon_set(pool))


def test_without_mig_the_plugin_has_no_capability_and_no_mig_monitor() -> None:
    container = _pod_spec(specs.device_plugin_daemon_set(_pool()))["containers"][0]
    assert "add" not in container["securityContext"]["capabilities"]
    assert all(e["name"] != "NVIDIA_MIG_MONITOR_DEVICES" for e in container["env"])


def test_the_device_plugin_namespace_denies_all_traffic() -> None:
    """The plugin speaks to the kubelet over a unix socket only: its namespace admits no traffic either way."""
    pool = _pool(edits=TUNED)
    policy = specs.device_plugin_network_policy(pool)
    assert policy["metadata"]["namespace"] == pool.device_plugin.namespace
    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    validate_object(policy)


def test_the_device_plugin_reads_its_config_map() -> None:
    pool = _pool()
    daemon_set = specs.device_plugin_daemon_set(pool)
    config_map = specs.device_plugin_config(pool)
    pod = _pod_spec(daemon_set)
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert f"--config-file={mount['mountPath']}/config.yaml" in pod["containers"][0]["args"]
    assert daemon_set["metadata"]["namespace"] == config_map["metadata"]["namespace"] == "nvidia-device-plugin"
    labels = daemon_set["spec"]["template"]["metadata"]["labels"]
    assert daemon_set["spec"]["selector"]["matchLabels"].items() <= labels.items()


# --- device plugin ConfigMap --------------------------------------------------------------------


def _plugin_settings(pool: GpuPoolConfig) -> dict[str, Any]:
    data = specs.device_plugin_config(pool)["data"]
    assert set(data) == {"config.yaml"}
    settings: dict[str, Any] = yaml.safe_load(data["config.yaml"])
    return settings


def test_the_default_plugin_config_has_no_sharing_and_no_mig() -> None:
    assert _plugin_settings(_pool()) == {"version": "v1", "flags": {"migStrategy": "none"}}


def test_time_slicing_and_mig_strategy_reach_the_plugin_config() -> None:
    settings = _plugin_settings(_pool(edits=TUNED))
    assert settings["version"] == "v1"
    assert settings["flags"] == {"migStrategy": "mixed"}
    assert settings["sharing"] == {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}


def test_time_slicing_shares_the_configured_gpu_resource_name() -> None:
    pool = _pool(
        edits={"gpuPool.gpuResourceName": "nvidia.com/mig-1g.10gb", "gpuPool.devicePlugin.timeSlicingReplicas": 2}
    )
    resources = _plugin_settings(pool)["sharing"]["timeSlicing"]["resources"]
    assert resources == [{"name": "nvidia.com/mig-1g.10gb", "replicas": 2}]


# --- RuntimeClass ---------------------------------------------------------------------------------


def test_the_runtime_class_uses_the_nvidia_handler_and_schedules_on_gpu_nodes() -> None:
    runtime_class = specs.runtime_class(_pool(edits=TUNED))
    assert runtime_class["metadata"]["name"] == "nvidia"
    assert "namespace" not in runtime_class["metadata"]
    assert runtime_class["handler"] == "nvidia"
    assert runtime_class["scheduling"]["nodeSelector"] == {"gpu.example.com/class": "a100"}
    assert runtime_class["scheduling"]["tolerations"] == [
        {"key": "gpu.example.com/dedicated", "operator": "Exists", "effect": "NoExecute"}
    ]


def test_the_runtime_class_name_is_configurable() -> None:
    assert specs.runtime_class(_pool(edits={"gpuPool.runtimeClass": "nvidia-cdi"}))["metadata"]["name"] == "nvidia-cdi"


# --- Karpenter NodePool ---------------------------------------------------------------------------


def _node_pool(edits: dict[str, Any] | None = None) -> dict[str, Any]:
    node_pool = specs.karpenter_node_pool(_pool("prod", edits))
    assert node_pool is not None
    return node_pool


def _requirements(node_pool: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in node_pool["spec"]["template"]["spec"]["requirements"]}


def test_the_node_pool_asks_for_the_configured_gpu_products() -> None:
    requirements = _requirements(_node_pool())
    assert requirements["karpenter.k8s.aws/instance-gpu-name"] == {
        "key": "karpenter.k8s.aws/instance-gpu-name",
        "operator": "In",
        "values": ["a100", "h100"],
    }
    assert requirements["karpenter.sh/capacity-type"]["values"] == ["on-demand"]
    assert requirements["kubernetes.io/arch"]["values"] == ["amd64"]
    assert "node.kubernetes.io/instance-type" not in requirements


def test_the_node_pool_asks_for_the_configured_instance_types_and_capacity() -> None:
    requirements = _requirements(_node_pool(TUNED))
    assert requirements["node.kubernetes.io/instance-type"]["operator"] == "In"
    assert requirements["node.kubernetes.io/instance-type"]["values"] == ["p4d.24xlarge", "p5.48xlarge"]
    assert requirements["karpenter.sh/capacity-type"]["values"] == ["on-demand", "spot"]


def test_the_node_pool_taints_its_nodes_and_labels_them_for_the_selector() -> None:
    pool = _pool("prod", TUNED)
    node_pool = _node_pool(TUNED)
    template = node_pool["spec"]["template"]
    assert template["spec"]["taints"] == [
        {"key": "gpu.example.com/dedicated", "value": "inference", "effect": "NoExecute"}
    ]
    # New nodes carry the labels GPU pods select on, or they would never land there.
    assert template["metadata"]["labels"].items() >= dict(pool.node_selector).items()
    # And GPU pods tolerate the taint new nodes carry.
    toleration = specs.gpu_scheduling(pool).tolerations[0]
    taint = template["spec"]["taints"][0]
    assert (toleration["key"], toleration["effect"]) == (taint["key"], taint["effect"])


@pytest.mark.parametrize("budget", [8, 24])
def test_the_node_pool_limit_is_the_gpu_budget(budget: int) -> None:
    node_pool = _node_pool({"gpuPool.gpuBudget": budget})
    assert node_pool["spec"]["limits"] == {"nvidia.com/gpu": str(budget)}


def test_the_node_pool_disruption_and_node_class_follow_the_config() -> None:
    spec = _node_pool(TUNED)["spec"]
    assert spec["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "30m",
        "budgets": [{"nodes": "1"}],
    }
    assert spec["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": "gpu-al2023",
    }
    assert spec["template"]["spec"]["expireAfter"] == "720h"


def test_there_is_no_node_pool_without_karpenter() -> None:
    assert specs.karpenter_node_pool(_pool("render")) is None
    assert specs.karpenter_node_pool(_pool("dev")) is None


@pytest.mark.parametrize("edits", [None, TUNED])
def test_the_pool_objects_validate_against_the_schema(edits: dict[str, Any] | None) -> None:
    pool = _pool("prod", edits)
    for obj in (specs.device_plugin_daemon_set(pool), specs.device_plugin_config(pool), specs.runtime_class(pool)):
        validate_object(obj)
    validate_object(specs.namespace(pool.device_plugin.namespace, pod_security="privileged"))


# --- the component ------------------------------------------------------------------------------


def _component(stack: str, edits: dict[str, Any] | None = None) -> Components[GpuNodePool]:
    pool = _pool(stack, edits)
    return run_components(lambda: GpuNodePool(pool.name, GpuNodePoolArgs(pool=pool)))


@pytest.fixture(scope="module")
def prod_pool() -> Components[GpuNodePool]:
    return _component("prod")


def test_the_component_registers_every_pool_object_as_its_child(prod_pool: Components[GpuNodePool]) -> None:
    component = prod_pool.one(COMPONENT, "gpu")
    children = sorted((r.kind, r.name) for r in prod_pool.resources if r.parent == component.urn)
    assert children == [
        ("ConfigMap", "dcgm-exporter-counters"),
        ("ConfigMap", "nvidia-device-plugin-config"),
        ("DaemonSet", "dcgm-exporter"),
        ("DaemonSet", "nvidia-device-plugin"),
        ("Namespace", "nvidia-dcgm-exporter"),
        ("Namespace", "nvidia-device-plugin"),
        ("NetworkPolicy", "dcgm-exporter"),
        ("NetworkPolicy", "default-deny"),
        ("NodePool", "gpu"),
        ("RuntimeClass", "nvidia"),
        ("Service", "dcgm-exporter"),
        ("ServiceMonitor", "dcgm-exporter"),
    ]
    assert len(prod_pool.resources) == 13


def test_the_device_plugin_namespace_admits_its_host_path(prod_pool: Components[GpuNodePool]) -> None:
    labels = prod_pool.one("kubernetes:core/v1:Namespace", "nvidia-device-plugin").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_the_network_policy_waits_for_its_namespace(prod_pool: Components[GpuNodePool]) -> None:
    namespace = prod_pool.one("kubernetes:core/v1:Namespace", "nvidia-device-plugin").urn
    policy = prod_pool.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "default-deny")
    assert policy.inputs["metadata"]["namespace"] == "nvidia-device-plugin"
    assert namespace in prod_pool.options_of(policy.type, "default-deny").dependencies


def test_the_daemon_set_waits_for_its_namespace_and_config(prod_pool: Components[GpuNodePool]) -> None:
    daemon_set = prod_pool.options_of("kubernetes:apps/v1:DaemonSet", "nvidia-device-plugin")
    namespace = prod_pool.one("kubernetes:core/v1:Namespace", "nvidia-device-plugin").urn
    config_map = prod_pool.one("kubernetes:core/v1:ConfigMap", "nvidia-device-plugin-config").urn
    assert {namespace, config_map} <= set(daemon_set.dependencies)
    assert namespace in prod_pool.options_of("kubernetes:core/v1:ConfigMap", "nvidia-device-plugin-config").dependencies


def test_the_node_pool_is_registered_as_a_karpenter_custom_resource(prod_pool: Components[GpuNodePool]) -> None:
    node_pool = prod_pool.one("kubernetes:karpenter.sh/v1:NodePool", "gpu")
    assert node_pool.inputs["apiVersion"] == "karpenter.sh/v1"
    assert node_pool.inputs["kind"] == "NodePool"
    assert node_pool.inputs["spec"] == _node_pool()["spec"]


def test_the_component_outputs_the_scheduling_contract_and_budget(prod_pool: Components[GpuNodePool]) -> None:
    pool = prod_pool.built
    assert pool.scheduling == specs.GpuScheduling(
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=(GPU_TOLERATION,),
        runtime_class_name="nvidia",
        gpu_resource_name="nvidia.com/gpu",
    )
    assert pool.gpu_budget == 8
    registered = prod_pool.component_outputs[prod_pool.one(COMPONENT, "gpu").urn]
    assert registered["gpu_budget"] == 8
    assert registered["scheduling"]["runtime_class_name"] == "nvidia"
    assert registered["scheduling"]["node_selector"] == {"nvidia.com/gpu.present": "true"}


def test_a_pool_without_the_device_plugin_or_karpenter_is_only_a_runtime_class() -> None:
    run = _component("render", {"gpuPool.devicePlugin.enabled": False})
    assert sorted(r.kind for r in run.kubernetes_objects()) == ["RuntimeClass"]
    assert run.built.gpu_budget is None
