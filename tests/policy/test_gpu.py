"""Rules 5-8 and 13: GPU resources, scheduling, probes, shared memory, budget."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE

from .builders import (
    GPU_TOLERATION,
    check,
    check_stack,
    container,
    deployment,
    device_plugin,
    hpa,
    node_pool,
    set_path,
)

C0 = "spec.template.spec.containers[0]"
POD = "spec.template.spec"


# --- gpu-resources ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource", ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb", "nvidia.com/gpu.shared", "amd.com/gpu"]
)
def test_gpu_requests_equal_to_limits_pass(resource: str) -> None:
    obj = deployment(containers=[container(gpus=2, gpu_resource=resource)])
    assert not check("gpu-resources", obj)


@pytest.mark.parametrize(
    ("requests", "limits", "message"),
    [
        ({"nvidia.com/gpu": "1"}, {}, "sets no limit"),
        ({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"}, "must equal limits"),
        ({}, {"nvidia.com/gpu": "500m"}, "whole numbers"),
        ({}, {"nvidia.com/gpu": "1.5"}, "whole numbers"),
        ({"amd.com/gpu": "2"}, {"amd.com/gpu": "1"}, "must equal limits"),
    ],
)
def test_gpu_resource_violations(requests: dict[str, str], limits: dict[str, str], message: str) -> None:
    obj = deployment(containers=[container()])
    obj = set_path(obj, f"{C0}.resources.requests", {"cpu": "4", "memory": "16Gi", **requests})
    obj = set_path(obj, f"{C0}.resources.limits", {"cpu": "4", "memory": "16Gi", **limits})
    out = check("gpu-resources", obj)
    assert len(out.violations) == 1 and message in out.violations[0], out.text()


def test_gpu_limit_without_request_passes() -> None:
    obj = deployment()
    del obj["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"]
    assert not check("gpu-resources", obj)


def test_gpu_names_are_configurable() -> None:
    odd = set_path(
        deployment(containers=[container()]),
        f"{C0}.resources.limits",
        {"cpu": "4", "memory": "16Gi", "google.com/tpu": "0.5"},
    )
    assert not check("gpu-resources", odd)
    assert check("gpu-resources", odd, {"gpuResourceNames": ["google.com/tpu"]})


def test_unknown_gpu_limit_is_undecided() -> None:
    obj = set_path(
        deployment(), f"{C0}.resources.limits", {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": UNKNOWN_NUMBER_VALUE}
    )
    out = check("gpu-resources", obj)
    assert not out.violations
    assert out.undecided == (f'cannot decide: {C0}.resources.limits["nvidia.com/gpu"] is unknown during preview')


# --- gpu-scheduling --------------------------------------------------------------------


def test_gpu_pod_with_toleration_and_selector_passes() -> None:
    assert not check("gpu-scheduling", deployment(gpus=1))


def test_gpu_pod_without_toleration_or_selector_fails() -> None:
    obj = deployment(gpus=1)
    del obj["spec"]["template"]["spec"]["tolerations"]
    del obj["spec"]["template"]["spec"]["nodeSelector"]
    out = check("gpu-scheduling", obj)
    assert len(out.violations) == 2
    assert "does not tolerate the GPU taint" in out.violations[0]
    assert "does not select GPU nodes" in out.violations[1]


@pytest.mark.parametrize(
    ("toleration", "ok"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),  # any effect
        ({"operator": "Exists"}, True),  # tolerates everything
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}, False),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_gpu_tolerations(toleration: dict[str, str], ok: bool) -> None:
    obj = set_path(deployment(gpus=1), f"{POD}.tolerations", [toleration])
    assert (not check("gpu-scheduling", obj)) is ok


def test_equal_toleration_counts_when_taint_value_is_configured() -> None:
    tol = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    obj = set_path(deployment(gpus=1), f"{POD}.tolerations", [tol])
    assert not check("gpu-scheduling", obj, {"gpuTaintValue": "present"})


def test_node_affinity_on_every_term_selects_gpu_nodes() -> None:
    def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
                }
            }
        }

    gpu_term = [{"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["a100"]}]
    other_term = [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]
    base = deployment(gpus=1)
    del base["spec"]["template"]["spec"]["nodeSelector"]
    assert not check("gpu-scheduling", set_path(base, f"{POD}.affinity", affinity(gpu_term)))
    assert check("gpu-scheduling", set_path(base, f"{POD}.affinity", affinity(gpu_term, other_term)))
    assert check("gpu-scheduling", set_path(base, f"{POD}.nodeSelector", {"nvidia.com/gpu.present": "false"}))
    custom = set_path(base, f"{POD}.nodeSelector", {"gpu": "yes"})
    assert not check("gpu-scheduling", custom, {"gpuNodeLabelKeys": ["gpu"]})


def test_pod_without_gpus_must_not_tolerate_the_gpu_taint() -> None:
    cpu_only = deployment(gpus=0)
    assert not check("gpu-scheduling", cpu_only)
    out = check("gpu-scheduling", set_path(cpu_only, f"{POD}.tolerations", [dict(GPU_TOLERATION)]))
    assert len(out.violations) == 1 and "requests no GPUs" in out.violations[0]
    out = check("gpu-scheduling", set_path(cpu_only, f"{POD}.tolerations", [{"operator": "Exists"}]))
    assert "every taint" in out.text()
    assert check("gpu-scheduling", device_plugin())


def test_unknown_container_makes_gpu_scheduling_undecided() -> None:
    obj = deployment(gpus=0)
    obj["spec"]["template"]["spec"]["containers"].append(UNKNOWN_STRING_VALUE)
    obj = set_path(obj, f"{POD}.tolerations", [dict(GPU_TOLERATION)])
    out = check("gpu-scheduling", obj)
    assert not out.violations and out.undecided and "containers[1]" in out.undecided


# --- gpu-probes ------------------------------------------------------------------------


def test_gpu_container_with_sized_probes_passes() -> None:
    assert not check("gpu-probes", deployment(gpus=1))
    assert not check("gpu-probes", deployment(gpus=0, containers=[container(probes=False)]))


def test_missing_probes_fail() -> None:
    obj = deployment(containers=[container(gpus=1, probes=False)])
    out = check("gpu-probes", obj)
    assert [v.split(" uses GPUs but has no ")[-1] for v in out.violations] == [
        "startupProbe; model loading needs 600s before liveness checks may restart it.",
        "readinessProbe.",
        "livenessProbe.",
    ]


@pytest.mark.parametrize(
    ("probe", "load", "ok"),
    [
        ({"periodSeconds": 10, "failureThreshold": 60}, 600, True),
        ({"periodSeconds": 10, "failureThreshold": 59}, 600, False),
        ({"initialDelaySeconds": 300, "periodSeconds": 10, "failureThreshold": 30}, 600, True),
        ({}, 30, True),  # defaults: 0 + 3 x 10
        ({}, 31, False),
        ({"periodSeconds": 30.0, "failureThreshold": 60.0}, 1800, True),  # numbers via protobuf
    ],
)
def test_startup_probe_budget(probe: dict[str, Any], load: int, ok: bool) -> None:
    obj = set_path(deployment(gpus=1), f"{C0}.startupProbe", {"httpGet": {"path": "/", "port": 80}, **probe})
    out = check("gpu-probes", obj, {"modelLoadSeconds": load})
    assert (not out) is ok, out.text()


def test_unknown_probe_is_undecided() -> None:
    obj = set_path(deployment(gpus=1), f"{C0}.startupProbe.failureThreshold", UNKNOWN_NUMBER_VALUE)
    out = check("gpu-probes", obj)
    assert not out.violations and out.undecided and "startupProbe.failureThreshold" in out.undecided


# --- gpu-shared-memory -----------------------------------------------------------------


def test_multi_gpu_pod_with_memory_shm_passes() -> None:
    assert not check("gpu-shared-memory", deployment(gpus=2))
    assert not check("gpu-shared-memory", deployment(gpus=1))


def test_multi_gpu_pod_without_shm_fails() -> None:
    obj = deployment(containers=[container(gpus=4)])
    out = check("gpu-shared-memory", obj)
    assert len(out.violations) == 1 and "does not mount /dev/shm" in out.violations[0]
    assert not check("gpu-shared-memory", obj, {"minGpus": 8})


def test_shm_from_disk_fails() -> None:
    obj = set_path(deployment(gpus=2), f"{POD}.volumes", [{"name": "dshm", "emptyDir": {}}])
    assert "not an emptyDir with medium Memory" in check("gpu-shared-memory", obj).text()


def test_gpus_summed_across_containers() -> None:
    obj = deployment(containers=[container("a", gpus=1), container("b", gpus=1)])
    assert len(check("gpu-shared-memory", obj).violations) == 2


def test_unknown_volume_is_undecided() -> None:
    obj = set_path(deployment(gpus=2), f"{POD}.volumes[0].emptyDir.medium", UNKNOWN_STRING_VALUE)
    out = check("gpu-shared-memory", obj)
    assert out.undecided and "volumes[0].emptyDir.medium" in out.undecided


# --- gpu-budget ------------------------------------------------------------------------


def test_budget_fits_node_pool_limit() -> None:
    # (3 + 1 surge) x 2 GPUs = 8 <= 8
    objs = [node_pool(8), deployment(gpus=2, max_surge=1), hpa(max_replicas=3)]
    assert not check_stack("gpu-budget", objs)


def test_budget_exceeded_reports_the_arithmetic() -> None:
    objs = [
        node_pool("8"),
        deployment("a", gpus=2, max_surge="25%"),
        hpa("a", max_replicas=3),
        deployment("b", gpus=1, replicas=2, max_surge=0),
    ]
    out = check_stack("gpu-budget", objs)
    assert len(out.violations) == 1
    text = out.violations[0]
    assert "need 10 nvidia.com/gpu, more than the budget of 8" in text
    assert "(3 HPA maxReplicas + 1 maxSurge) x 2 = 8" in text
    assert "(2 replicas + 0 maxSurge) x 1 = 2" in text
    assert not check_stack("gpu-budget", objs, {"gpuBudget": 10})


def test_default_surge_and_recreate() -> None:
    surge = deployment(gpus=1, replicas=4, max_surge=None)  # default 25% of 4 = 1
    assert check_stack("gpu-budget", [node_pool(4), surge])
    recreate = set_path(surge, "spec.strategy", {"type": "Recreate"})
    assert not check_stack("gpu-budget", [node_pool(4), recreate])


def test_no_budget_at_all_fails_but_cpu_only_stacks_pass() -> None:
    assert "no GPU budget" in check_stack("gpu-budget", [deployment(gpus=1)]).text()
    assert not check_stack("gpu-budget", [deployment(gpus=0)])
    assert "no GPU budget" in check_stack("gpu-budget", [node_pool(None), deployment(gpus=1)]).text()


def test_unknown_max_replicas_is_undecided_unless_known_part_already_exceeds() -> None:
    objs = [node_pool(4), deployment(gpus=1), hpa(max_replicas=UNKNOWN_NUMBER_VALUE)]
    out = check_stack("gpu-budget", objs)
    assert not out.violations and out.undecided and "spec.maxReplicas" in out.undecided
    objs += [deployment("big", gpus=8, replicas=1)]
    out = check_stack("gpu-budget", objs)
    assert len(out.violations) == 1 and out.undecided
