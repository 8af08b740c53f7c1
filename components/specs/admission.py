"""What Kubernetes' admission enforces for a model, whatever tool creates its pods: the ResourceQuota of its
namespace (its peak GPUs, CPU and memory), the LimitRange that gives a container without limits the server's, and
the PriorityClass its pods carry; :func:`plan`, their order (before any pod)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

from components.config import ModelConfig, quantity
from components.specs import wire
from components.specs.base import Step, meta, model_labels
from components.specs.gpu_pool import GpuScheduling
from components.specs.picker import picker_deployment
from components.specs.workloads import prestage_job, workload

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = ["container_defaults", "limit_range", "namespace_quota", "peak_usage", "priority_class"]

# The compute resources the quota counts (GPUs apart: their figure is the model's peak_gpus).
COMPUTE = ("cpu", "memory")


def _pod_specs(obj: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(pods, pod spec) for each template of a workload object: a Deployment's or Job's one, a LeaderWorkerSet's
    leader and its ``size - 1`` workers (per group)."""
    spec = obj["spec"]
    if obj["kind"] == "LeaderWorkerSet":
        group = spec["leaderWorkerTemplate"]
        yield 1, group["leaderTemplate"]["spec"]
        yield group["size"] - 1, group["workerTemplate"]["spec"]
    else:
        yield 1, spec["template"]["spec"]


def _amount(value: object) -> Decimal | None:
    """A container's quantity; None when it is not one (a ``containerPatch`` may write anything: the policy pack
    refuses such a pod at preview, and the quota, which cannot count it, leaves that resource out)."""
    try:
        return quantity(str(value))
    except (ValueError, ArithmeticError):
        return None


def _pod_amounts(pod: Mapping[str, Any]) -> dict[str, Decimal | None]:
    """What the quota charges one pod, ``requests.cpu`` … ``limits.memory``: its containers' sum, or its largest
    init container's if that is more (they run one at a time, before the others); None where one is unreadable."""

    def amounts(container: Mapping[str, Any]) -> dict[str, Decimal | None]:
        resources = container.get("resources", {})
        return {
            f"{kind}.{name}": _amount(resources[kind][name])
            for kind in ("requests", "limits")
            for name in COMPUTE
            if name in resources.get(kind, {})
        }

    def add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
        return None if a is None or b is None else a + b

    def larger(a: Decimal | None, b: Decimal | None) -> Decimal | None:
        return None if a is None or b is None else max(a, b)

    total: dict[str, Decimal | None] = {}
    for container in pod["containers"]:
        for key, value in amounts(container).items():
            total[key] = add(total.get(key, Decimal(0)), value)
    for init in pod.get("initContainers", []):
        for key, value in amounts(init).items():
            total[key] = larger(total.get(key, Decimal(0)), value)
    return total


def peak_usage(model: ModelConfig, scheduling: GpuScheduling) -> dict[str, Decimal]:
    """The CPU and memory (``requests.cpu`` … ``limits.memory``) of every pod the model may run at once, counted
    as :attr:`~components.config.ModelConfig.peak_pods` counts them: each track's most replicas plus its surge
    (groups of pods when multi-node), each track's endpoint picker with its surge, and the pre-stage Job's pod.
    Read from the pod templates the program registers, so a ``containerPatch`` is counted too."""
    tracks = [model, *([model.canary_track()] if model.canary is not None else [])]
    counted: list[tuple[int, Mapping[str, Any]]] = [
        (track.max_replicas + track.rollout.max_surge, workload(track, "", scheduling)) for track in tracks
    ]
    if model.routing.mode == "inference-pool":  # each track's endpoint picker runs in the namespace too
        for track in tracks:
            picker = picker_deployment(track)
            counted.append((picker["spec"]["replicas"] + _surge(picker), picker))
    job = prestage_job(model, "")
    if job is not None:
        counted.append((1, job))
    peak: dict[str, Decimal] = {}
    unreadable: set[str] = set()
    for replicas, obj in counted:
        for pods, pod in _pod_specs(obj):
            for key, value in _pod_amounts(pod).items():
                if value is None:
                    unreadable.add(key)
                else:
                    peak[key] = peak.get(key, Decimal(0)) + replicas * pods * value
    return {key: value for key, value in peak.items() if key not in unreadable}


def _surge(deployment: wire.Deployment) -> int:
    """The pods a Deployment with a fixed replica count adds during a rollout (an absolute maxSurge)."""
    surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert isinstance(surge, int), surge
    return surge


def _quantity(key: str, value: Decimal) -> str:
    """A quota amount as Kubernetes prints it: whole CPUs or millicores (rounded up), memory in Gi, Mi or bytes."""
    if key.endswith("cpu"):
        if value == value.to_integral_value():
            return str(int(value))
        return f"{int((value * 1000).to_integral_value(ROUND_CEILING))}m"
    size = int(value.to_integral_value(ROUND_CEILING))
    for unit, factor in (("Gi", 2**30), ("Mi", 2**20)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def namespace_quota(model: ModelConfig, scheduling: GpuScheduling) -> wire.ResourceQuota:
    """The model's namespace may hold no more than the model's peak: its GPUs (``peak_gpus``, the figure the pool's
    budget and the policy pack count) and its CPU and memory (:func:`peak_usage`). Kubernetes' admission, not
    only the preview, stops a hand-scaled Deployment or another tool's pods there from taking more."""
    hard = {key: _quantity(key, value) for key, value in sorted(peak_usage(model, scheduling).items())}
    if model.resources.gpus:
        hard[f"requests.{scheduling.gpu_resource_name}"] = str(model.peak_gpus)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta(model.name, model.namespace, model_labels(model)),
        "spec": {"hard": hard},
    }


def container_defaults(model: ModelConfig) -> dict[str, str]:
    """The server container's CPU and memory (requests equal limits), which a container without them gets."""
    return {"cpu": model.resources.cpu, "memory": model.resources.memory}


def limit_range(model: ModelConfig) -> wire.LimitRange:
    """A container created in the namespace without requests or limits gets the server's: the quota then counts it
    (a quota on limits refuses a pod that sets none), instead of it running unbounded beside the model."""
    defaults = container_defaults(model)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta(model.name, model.namespace, model_labels(model)),
        "spec": {"limits": [{"type": "Container", "default": dict(defaults), "defaultRequest": dict(defaults)}]},
    }


def priority_class(model: ModelConfig) -> wire.PriorityClass | None:
    """The model's own PriorityClass (``priorityClass.create``): its pods preempt lower-priority ones, never the
    reverse; None when the cluster has the class."""
    cfg = model.priority_class
    if not cfg.create:
        return None
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": meta(cfg.name, labels=model_labels(model)),
        "value": cfg.value,  # never the cluster's default class (globalDefault unset: false)
        "preemptionPolicy": "PreemptLowerPriority",
        "description": f"Pods of the model {model.name} ({model.namespace}).",
    }


def plan(model: ModelConfig, scheduling: GpuScheduling) -> list[Step]:
    """The PriorityClass, then (``quotas``) the LimitRange and ResourceQuota: all before the model's first pod,
    which admission checks against them."""
    steps: list[Step] = []
    priority = priority_class(model)
    if priority is not None:
        steps.append(Step("priority-class", priority))
    if model.quotas:
        steps += [Step("limit-range", limit_range(model)), Step("quota", namespace_quota(model, scheduling))]
    return steps
