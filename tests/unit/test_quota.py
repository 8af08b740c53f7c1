"""The GPU quota of a model's namespace: Kubernetes' admission holds the model to the GPUs its pool budgets for it."""

from __future__ import annotations

from components import specs
from tests.kube_checks import validate_object
from tests.unit.mocking import model, typed

LLAMA = model("prod", "llama-3-1-8b")  # 1 GPU per replica, autoscaled with surge
MINILM = model("render")  # CPU only


def _scheduling() -> specs.GpuScheduling:
    return specs.gpu_scheduling(typed("prod").gpu_pool)


def test_a_gpu_models_namespace_may_request_its_peak_gpus_and_no_more() -> None:
    quota = specs.gpu_quota(LLAMA, _scheduling())
    assert quota is not None
    validate_object(quota)
    assert quota["metadata"]["namespace"] == LLAMA.namespace
    # maxReplicas plus the rollout's surge, each with its GPUs: the figure the pool's budget reserves.
    peak = (LLAMA.max_replicas + LLAMA.rollout.max_surge) * LLAMA.resources.gpus
    assert peak == LLAMA.peak_gpus > 0
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": str(peak)}


def test_the_quota_names_the_pools_gpu_resource() -> None:
    scheduling = specs.gpu_scheduling(typed("prod", {"gpuPool.gpuResourceName": "nvidia.com/mig-1g.10gb"}).gpu_pool)
    quota = specs.gpu_quota(LLAMA, scheduling)
    assert quota is not None and set(quota["spec"]["hard"]) == {"requests.nvidia.com/mig-1g.10gb"}


def test_a_cpu_model_gets_no_gpu_quota() -> None:
    assert specs.gpu_quota(MINILM, _scheduling()) is None
    steps = specs.workloads.plan(MINILM, "image", _scheduling(), None)
    assert "gpu-quota" not in [step.name for step in steps]


def test_the_deployment_waits_for_the_quota() -> None:
    steps = {step.name: step for step in specs.workloads.plan(LLAMA, "image", _scheduling(), "token")}
    assert steps["gpu-quota"].obj["kind"] == "ResourceQuota"
    assert "gpu-quota" in steps["deployment"].after
