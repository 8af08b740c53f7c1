"""Availability: replicated workloads have a PodDisruptionBudget that lets a node drain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity, StackValidationPolicy

from .. import k8s, scaling
from ..framework import StackContext, StackEntry, stack_policy

PDB = ("policy", "PodDisruptionBudget")


def allowed_disruptions(pdb: StackEntry, pods: int) -> int:
    """Disruptions the PDB allows while ``pods`` healthy pods run (as the disruption
    controller rounds: percentages up). Neither field set counts as minAvailable 1."""
    spec = k8s.mapping(k8s.get(pdb.props, "spec"))
    max_unavailable = k8s.get(spec, "maxUnavailable")
    if max_unavailable is not None:
        n = k8s.scaled_int_or_percent(max_unavailable, pods, round_up=True)
        return max(min(n or 0, pods), 0)
    min_available: Any = k8s.get(spec, "minAvailable")
    if min_available is None:
        min_available = 1
    n = k8s.scaled_int_or_percent(min_available, pods, round_up=True)
    return max(pods - (pods if n is None else n), 0)


def _check_availability(ctx: StackContext) -> None:
    kinds = set(ctx.config["kinds"])
    pdbs = ctx.of(*PDB, subjects=False)
    for w in ctx.workloads():
        if w.identity.kind not in kinds:
            continue
        with ctx.deciding(w):
            rr = scaling.replica_range(ctx, w)
            if rr.maximum <= 1:
                continue
            labels = k8s.pod_labels(w.resource_type, w.props)
            matching = []
            undecided_before = len(ctx.decider.undecided)
            for pdb in pdbs:
                with ctx.deciding(pdb):
                    if pdb.identity.namespace != w.identity.namespace:
                        continue
                    selector = k8s.get(pdb.props, "spec", "selector")
                    if k8s.selector_matches(selector if isinstance(selector, Mapping) else None, labels):
                        matching.append(pdb)
            if len(ctx.decider.undecided) != undecided_before:
                continue  # a PDB whose selector is unknown might be the one
            scale = f"up to {rr.maximum} replicas" + (f" ({rr.hpa.describe()})" if rr.hpa else "")
            if not matching:
                ctx.report(
                    f"{w.describe()} can run {scale} but no PodDisruptionBudget selects its "
                    "pods; add one with maxUnavailable: 1.",
                    w,
                )
                continue
            if len(matching) > 1:
                names = ", ".join(p.describe() for p in matching)
                ctx.report(
                    f"{w.describe()}: more than one PodDisruptionBudget selects its pods "
                    f"({names}); the eviction API refuses to evict such pods.",
                    w,
                )
                continue
            pods = max(rr.minimum, 1)
            with ctx.deciding(matching[0]):
                if allowed_disruptions(matching[0], pods) < 1:
                    ctx.report(
                        f"{matching[0].describe()} allows no disruption of {w.describe()} when "
                        f"it runs {pods} replica(s); node drains and cluster upgrades would "
                        "block. Use maxUnavailable: 1.",
                        w,
                    )


POLICIES: list[StackValidationPolicy] = [
    stack_policy(
        name="workload-availability",
        description=(
            "A workload that can run more than one replica has exactly one "
            "PodDisruptionBudget, and it allows at least one disruption."
        ),
        check=_check_availability,
        properties={
            "kinds": {
                "type": "array",
                "items": {"type": "string", "enum": ["Deployment", "StatefulSet", "ReplicaSet"]},
                "description": "Workload kinds that need a PodDisruptionBudget.",
                "default": ["Deployment"],
            }
        },
        severity=Severity.HIGH,
    ),
]
