"""What admission enforces per model: the namespace's ResourceQuota at the model's peak, the LimitRange of its
container defaults and the PriorityClass its pods carry."""

from __future__ import annotations

from decimal import Decimal

import pytest

from components import specs
from components.config import ConfigError, ModelConfig, quantity
from tests.kube_checks import validate_object
from tests.unit.mocking import model, typed

LLAMA = model("prod", "llama-3-1-8b")  # 1 GPU per replica, autoscaled with surge, pre-staged weights
LLAMA_70B = model("prod", "llama-3-1-70b")  # a LeaderWorkerSet: groups of pods over nodes
MINILM = model("render")  # CPU only


def _scheduling(stack: str = "prod") -> specs.GpuScheduling:
    return specs.gpu_scheduling(typed(stack).gpu_pool)


def _per_pod(m: ModelConfig, name: str) -> Decimal:
    return quantity(getattr(m.resources, name))


def _hard(m: ModelConfig, scheduling: specs.GpuScheduling | None = None) -> dict[str, str]:
    quota = specs.namespace_quota(m, scheduling or _scheduling())
    validate_object(quota)
    assert quota["metadata"]["namespace"] == m.namespace
    return dict(quota["spec"]["hard"])


def test_a_gpu_models_namespace_may_hold_its_peak_and_no_more() -> None:
    hard = _hard(LLAMA)
    # GPUs: maxReplicas plus the rollout's surge, each with its GPUs: the figure the pool's budget reserves.
    pods = LLAMA.max_replicas + LLAMA.rollout.max_surge
    assert LLAMA.peak_gpus == pods * LLAMA.resources.gpus > 0
    assert hard["requests.nvidia.com/gpu"] == str(LLAMA.peak_gpus)
    # CPU and memory: the same pods, plus the pre-stage Job's one pod (1 CPU, 2Gi).
    assert LLAMA.cache.prestage
    cpu, memory = pods * _per_pod(LLAMA, "cpu") + 1, pods * _per_pod(LLAMA, "memory") + 2 * 2**30
    for kind in ("requests", "limits"):
        assert quantity(hard[f"{kind}.cpu"]) == cpu
        assert quantity(hard[f"{kind}.memory"]) == memory


def test_a_multi_node_model_counts_every_pod_of_its_groups() -> None:
    hard = _hard(LLAMA_70B)
    pods = (LLAMA_70B.max_replicas + LLAMA_70B.rollout.max_surge) * LLAMA_70B.nodes_per_replica
    assert LLAMA_70B.nodes_per_replica > 1
    assert hard["requests.nvidia.com/gpu"] == str(LLAMA_70B.peak_gpus) == str(pods * LLAMA_70B.resources.gpus)
    job = 1 if LLAMA_70B.cache.prestage else 0
    assert quantity(hard["limits.cpu"]) == pods * _per_pod(LLAMA_70B, "cpu") + job


def test_the_canary_is_counted_with_its_own_replicas() -> None:
    m = model("e2e", "llama")
    assert m.canary is not None
    hard = _hard(m, _scheduling("e2e"))
    stable = m.max_replicas + m.rollout.max_surge
    canary = m.canary.replicas + m.rollout.max_surge
    assert hard["requests.nvidia.com/gpu"] == str(m.peak_gpus) == str((stable + canary) * m.resources.gpus)
    job = 1 if m.cache.prestage else 0
    # Each track's endpoint picker (routing.mode inference-pool) runs beside it, with a surge of one.
    assert m.routing.mode == "inference-pool"
    pickers = sum((p.replicas + 1) * quantity(p.cpu) for p in (m.routing.picker, m.canary_track().routing.picker))
    assert quantity(hard["requests.cpu"]) == (stable + canary) * _per_pod(m, "cpu") + job + pickers


def test_a_container_patch_that_raises_the_memory_raises_the_quota() -> None:
    patched = model("render", edits={"models[0].containerPatch": {"resources": {"limits": {"memory": "3Gi"}}}})
    before, after = _hard(MINILM, _scheduling("render")), _hard(patched, _scheduling("render"))
    pods = MINILM.max_replicas + MINILM.rollout.max_surge
    assert quantity(after["limits.memory"]) == pods * 3 * 2**30
    assert after["requests.memory"] == before["requests.memory"]


def test_a_cpu_model_gets_no_gpu_line() -> None:
    hard = _hard(MINILM, _scheduling("render"))
    assert set(hard) == {"requests.cpu", "limits.cpu", "requests.memory", "limits.memory"}


def test_the_quota_names_the_pools_gpu_resource() -> None:
    scheduling = specs.gpu_scheduling(typed("prod", {"gpuPool.gpuResourceName": "nvidia.com/mig-1g.10gb"}).gpu_pool)
    assert "requests.nvidia.com/mig-1g.10gb" in _hard(LLAMA, scheduling)


def test_quantities_are_printed_as_kubernetes_would() -> None:
    local = model("local", "gemma")  # 600m CPU and 826Mi per pod
    hard = _hard(local, _scheduling("local"))
    pods = local.max_replicas + local.rollout.max_surge
    millis = pods * 600
    assert hard["limits.cpu"] == (f"{millis}m" if millis % 1000 else str(millis // 1000))
    assert hard["limits.memory"] == f"{pods * 826}Mi"


def test_a_container_without_limits_gets_the_servers() -> None:
    limits = specs.limit_range(LLAMA)
    validate_object(limits)
    (item,) = limits["spec"]["limits"]
    expected = {"cpu": LLAMA.resources.cpu, "memory": LLAMA.resources.memory}
    assert item == {"type": "Container", "default": expected, "defaultRequest": expected}


def test_the_model_creates_its_priority_class_and_every_pod_carries_it() -> None:
    priority = specs.priority_class(LLAMA)
    assert priority is not None
    validate_object(priority)
    assert priority["metadata"]["name"] == LLAMA.namespace == LLAMA.priority_class.name
    assert priority["value"] == 1_000_000 and "globalDefault" not in priority
    deployment = specs.deployment(LLAMA, "image", _scheduling())
    job = specs.prestage_job(LLAMA, "image")
    assert job is not None
    for pod in (deployment["spec"]["template"]["spec"], job["spec"]["template"]["spec"]):
        assert pod["priorityClassName"] == LLAMA.namespace


def test_an_existing_class_is_named_and_not_created() -> None:
    m = model("render", edits={"models[0].priorityClass": {"name": "serving-high", "create": False}})
    assert specs.priority_class(m) is None
    assert specs.deployment(m, "image", _scheduling("render"))["spec"]["template"]["spec"]["priorityClassName"] == (
        "serving-high"
    )
    assert [s.name for s in specs.admission.plan(m, _scheduling("render"))] == ["limit-range", "quota"]


def test_quotas_false_leaves_quotas_to_the_cluster() -> None:
    m = model("render", edits={"models[0].quotas": False})
    assert [s.name for s in specs.admission.plan(m, _scheduling("render"))] == ["priority-class"]


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"create": False}, "models[0].priorityClass.name is required when create is false"),
        ({"value": 2_000_000_000}, "models[0].priorityClass.value must be <= 1000000000"),
        ({"name": "Not_A_Name"}, "models[0].priorityClass.name"),
    ],
)
def test_bad_priority_config_is_refused_naming_the_key(edits: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        typed("render", {"models[0].priorityClass": edits})


def test_quotas_must_be_a_flag() -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.quotas"):
        typed("render", {"models[0].quotas": "no"})


def test_a_patched_amount_that_is_no_quantity_is_left_to_the_policy_pack() -> None:
    """The pack refuses the pod at preview (tests/integration/test_engine.py); the quota cannot count it."""
    patched = model("render", edits={"models[0].containerPatch": {"resources": {"limits": {"cpu": "lots"}}}})
    hard = _hard(patched, _scheduling("render"))
    assert "limits.cpu" not in hard and {"requests.cpu", "limits.memory"} <= set(hard)


def test_a_fixed_replica_count_is_the_programs_after_an_autoscaler() -> None:
    """Server-side apply fails on spec.replicas once an autoscaler's scale writes own it; the program's fixed
    count takes it back (tests/e2e/test_vllm.py moves a model off KEDA), an autoscaled model leaves it alone."""
    fixed, scaled = model("prod", "llama-3-1-70b"), LLAMA
    assert fixed.autoscaling is None and scaled.autoscaling is not None
    annotations = specs.workload(fixed, "image", _scheduling())["metadata"]["annotations"]
    assert annotations["pulumi.com/patchForce"] == "true"
    assert "pulumi.com/patchForce" not in specs.workload(scaled, "image", _scheduling())["metadata"]["annotations"]
