"""Stack-level facts about scalable workloads: which autoscaler (an HPA, or a KEDA ScaledObject, which makes an HPA
of its own in the cluster) scales them, how many replicas."""

from __future__ import annotations

from dataclasses import dataclass

from . import k8s
from .framework import StackContext, StackEntry

HPA = ("autoscaling", "HorizontalPodAutoscaler")
SCALED_OBJECT = ("keda.sh", "ScaledObject")
AUTOSCALERS = (HPA, SCALED_OBJECT)


@dataclass(frozen=True)
class ReplicaRange:
    minimum: int
    maximum: int
    #: The HPA or ScaledObject that sets the range, if any.
    hpa: StackEntry | None


def is_scaled_object(entry: StackEntry) -> bool:
    return k8s.is_type(entry.resource_type, *SCALED_OBJECT)


def hpa_target_key(hpa: StackEntry) -> tuple[str | None, str | None, str | None]:
    """(namespace, kind, name) of the workload an HPA or a ScaledObject scales (a ScaledObject's kind defaults to
    Deployment)."""
    ref = k8s.mapping(k8s.get(hpa.props, "spec", "scaleTargetRef"))
    kind = k8s.get(ref, "kind")
    if kind is None and is_scaled_object(hpa):
        kind = "Deployment"
    name = k8s.get(ref, "name")
    return (
        hpa.identity.namespace,
        kind if isinstance(kind, str) else None,
        name if isinstance(name, str) else None,
    )


def workload_key(entry: StackEntry) -> tuple[str | None, str | None, str | None]:
    return (entry.identity.namespace, entry.identity.kind, entry.identity.name)


def hpas_for(ctx: StackContext, entry: StackEntry) -> list[StackEntry]:
    """Every HPA and ScaledObject in the stack whose scaleTargetRef names ``entry`` (unknown
    refs skipped here; ``hpa-target`` reports them)."""
    found = []
    for kind in AUTOSCALERS:
        for hpa in ctx.of(*kind, subjects=False):
            with ctx.deciding(hpa):
                if hpa_target_key(hpa) == workload_key(entry):
                    found.append(hpa)
    return found


def replica_range(ctx: StackContext, entry: StackEntry) -> ReplicaRange:
    """How few and how many replicas ``entry`` can run: its HPA's or ScaledObject's min/max
    (KEDA's defaults 0 and 100), else ``spec.replicas`` (default 1; ``parallelism`` for a
    Job). Raises ``UnknownValueError`` when a value is unknown."""
    hpas = hpas_for(ctx, entry)
    if hpas:
        hpa = hpas[0]
        keda = is_scaled_object(hpa)
        lo = k8s.as_int(k8s.get(hpa.props, "spec", "minReplicaCount" if keda else "minReplicas"))
        hi = k8s.as_int(k8s.get(hpa.props, "spec", "maxReplicaCount" if keda else "maxReplicas"))
        lo = (0 if keda else 1) if lo is None else lo
        hi = (max(lo, 100) if keda else lo) if hi is None else hi
        return ReplicaRange(lo, hi, hpa)
    kind = entry.identity.kind
    if kind == "Pod":
        return ReplicaRange(1, 1, None)
    key = "parallelism" if kind == "Job" else "replicas"
    n = k8s.as_int(k8s.get(entry.props, "spec", key))
    n = 1 if n is None else n
    return ReplicaRange(n, n, None)


def max_surge(entry: StackEntry, replicas: int) -> int:
    """Extra replicas a Deployment or LeaderWorkerSet rollout may add at ``replicas`` (a Deployment's default
    maxSurge 25%, rounded up as the Deployment controller does; a LeaderWorkerSet's 0; 0 for Recreate and other
    kinds)."""
    if entry.identity.kind == "LeaderWorkerSet":
        surge = k8s.get(entry.props, "spec", "rolloutStrategy", "rollingUpdateConfiguration", "maxSurge")
        n = k8s.scaled_int_or_percent(0 if surge is None else surge, replicas, round_up=True)
        return max(n or 0, 0)
    if entry.identity.kind != "Deployment":
        return 0
    strategy = k8s.mapping(k8s.get(entry.props, "spec", "strategy"))
    if k8s.get(strategy, "type") == "Recreate":
        return 0
    surge = k8s.get(strategy, "rollingUpdate", "maxSurge")
    if surge is None:
        surge = "25%"
    n = k8s.scaled_int_or_percent(surge, replicas, round_up=True)
    return max(n or 0, 0)
