"""Stack-level facts about scalable workloads: which HPA scales them, how many replicas."""

from __future__ import annotations

from dataclasses import dataclass

from . import k8s
from .framework import StackContext, StackEntry

HPA = ("autoscaling", "HorizontalPodAutoscaler")


@dataclass(frozen=True)
class ReplicaRange:
    minimum: int
    maximum: int
    #: The HPA that sets the range, if any.
    hpa: StackEntry | None


def hpa_target_key(hpa: StackEntry) -> tuple[str | None, str | None, str | None]:
    """(namespace, kind, name) of the workload an HPA scales."""
    ref = k8s.mapping(k8s.get(hpa.props, "spec", "scaleTargetRef"))
    kind = k8s.get(ref, "kind")
    name = k8s.get(ref, "name")
    return (
        hpa.identity.namespace,
        kind if isinstance(kind, str) else None,
        name if isinstance(name, str) else None,
    )


def workload_key(entry: StackEntry) -> tuple[str | None, str | None, str | None]:
    return (entry.identity.namespace, entry.identity.kind, entry.identity.name)


def hpas_for(ctx: StackContext, entry: StackEntry) -> list[StackEntry]:
    """Every HPA in the stack whose scaleTargetRef names ``entry`` (unknown refs skipped
    here; ``hpa-target`` reports them)."""
    found = []
    for hpa in ctx.of(*HPA, subjects=False):
        with ctx.deciding(hpa):
            if hpa_target_key(hpa) == workload_key(entry):
                found.append(hpa)
    return found


def replica_range(ctx: StackContext, entry: StackEntry) -> ReplicaRange:
    """How few and how many replicas ``entry`` can run: its HPA's min/max, else
    ``spec.replicas`` (default 1; ``parallelism`` for a Job). Raises
    ``UnknownValueError`` when a value is unknown."""
    hpas = hpas_for(ctx, entry)
    if hpas:
        hpa = hpas[0]
        lo = k8s.as_int(k8s.get(hpa.props, "spec", "minReplicas"))
        hi = k8s.as_int(k8s.get(hpa.props, "spec", "maxReplicas"))
        lo = 1 if lo is None else lo
        hi = lo if hi is None else hi
        return ReplicaRange(lo, hi, hpa)
    kind = entry.identity.kind
    if kind == "Pod":
        return ReplicaRange(1, 1, None)
    key = "parallelism" if kind == "Job" else "replicas"
    n = k8s.as_int(k8s.get(entry.props, "spec", key))
    n = 1 if n is None else n
    return ReplicaRange(n, n, None)


def max_surge(entry: StackEntry, replicas: int) -> int:
    """Extra pods a Deployment rollout may add at ``replicas`` (default maxSurge 25%,
    rounded up as the Deployment controller does; 0 for Recreate and other kinds)."""
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
