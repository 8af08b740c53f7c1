"""HorizontalPodAutoscaler rules: sane bounds, a real target, the metrics it can compute,
and a hint when GPU workloads scale on CPU alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, Policy, Severity

from .. import k8s, scaling, state
from ..framework import ResourceContext, StackContext, StackEntry, resource_policy, stack_policy
from ..settings import GPU_RESOURCE_NAMES_SCHEMA
from ..undecided import UndecidedError


def _is_hpa(resource_type: str) -> bool:
    return k8s.is_type(resource_type, *scaling.HPA)


# --- hpa-replica-bounds -----------------------------------------------------------------


def _check_bounds(ctx: ResourceContext) -> None:
    with ctx.deciding():
        raw_min = k8s.get(ctx.props, "spec", "minReplicas")
        raw_max = k8s.get(ctx.props, "spec", "maxReplicas")
        lo = 1 if raw_min is None else k8s.as_int(raw_min)
        hi = k8s.as_int(raw_max)
        if hi is None:
            ctx.report(f"spec.maxReplicas must be a whole number (got {raw_max!r}).")
            return
        if lo is None or lo < 1:
            ctx.report(f"spec.minReplicas must be a whole number >= 1 (got {raw_min!r}).")
            return
        if lo > hi:
            ctx.report(f"spec.minReplicas ({lo}) is greater than spec.maxReplicas ({hi}).")


# --- metrics ----------------------------------------------------------------------------

#: autoscaling/v2 uses 80% average CPU utilization when spec.metrics is empty.
DEFAULT_METRICS: list[Mapping[str, Any]] = [
    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}
]


def _metrics(hpa: StackEntry) -> Sequence[Mapping[str, Any]]:
    metrics = [k8s.mapping(m) for m in k8s.items(k8s.get(hpa.props, "spec", "metrics"))]
    return metrics or DEFAULT_METRICS


def _utilization_needs(metric: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(resource, container or None) whose request a Utilization metric divides by."""
    mtype = k8s.get(metric, "type")
    if mtype == "Resource":
        src = k8s.mapping(k8s.get(metric, "resource"))
        container = None
    elif mtype == "ContainerResource":
        src = k8s.mapping(k8s.get(metric, "containerResource"))
        container = k8s.get(src, "container")
    else:
        return None
    if k8s.get(src, "target", "type") != "Utilization":
        return None
    name = k8s.get(src, "name")
    return (str(name), container if isinstance(container, str) else None) if name else None


def _is_cpu_metric(metric: Mapping[str, Any]) -> bool:
    mtype = k8s.get(metric, "type")
    key = {"Resource": "resource", "ContainerResource": "containerResource"}.get(str(mtype))
    return key is not None and k8s.get(metric, key, "name") == "cpu"


def _find_target(ctx: StackContext, hpa: StackEntry) -> StackEntry | None:
    """The workload the HPA scales. Raises ``UndecidedError`` when it is not found but a
    workload whose namespace or name is unknown during preview might be it."""
    key = scaling.hpa_target_key(hpa)
    maybe: list[str] = []
    for w in ctx.workloads(subjects=False):
        wkey = scaling.workload_key(w)
        if wkey == key:
            return w
        if wkey[1] == key[1] and None in wkey:
            maybe.extend(f"{w.describe()}: {p}" for p in w.unknown_paths)
    if maybe:
        raise UndecidedError(maybe)
    return None


def _looks_live(props: Mapping[str, Any]) -> bool:
    """Outputs of an object that exists in the cluster (API-server defaults filled in)."""
    # Compare keys only: reading a value that is unknown during preview would raise.
    metadata = k8s.get(props, "metadata") if "metadata" in list(props) else None
    return "status" in list(props) or (isinstance(metadata, Mapping) and "uid" in list(metadata))


# --- hpa-target -------------------------------------------------------------------------


def _check_hpa_target(ctx: StackContext) -> None:
    # (An HPA next to a ScaledObject of the same workload is not refused here: moving a model from an HPA to KEDA
    # shows both to the stack analysis of `up --refresh`, the HPA about to be deleted. The program never emits both.)
    for hpa in [*ctx.of(*scaling.HPA), *ctx.of(*scaling.SCALED_OBJECT)]:
        if state.about_to_go(hpa.urn):
            continue  # a scaler the update deletes (a model moved to fixed replicas): it scales nothing any more
        with ctx.deciding(hpa):
            ns, kind, name = scaling.hpa_target_key(hpa)
            if kind is None or name is None:
                ctx.report(f"{hpa.describe()} has no spec.scaleTargetRef kind and name.", hpa)
                continue
            target = _find_target(ctx, hpa)
            if target is None:
                ctx.report(f"{hpa.describe()} scales {kind} {ns}/{name}, which is not in this stack.", hpa)
                continue
            _check_replicas_unset(ctx, hpa, target)
            if not scaling.is_scaled_object(hpa):
                _check_metric_requests(ctx, hpa, target)


def _check_replicas_unset(ctx: StackContext, hpa: StackEntry, target: StackEntry) -> None:
    with ctx.deciding(target):
        seen = state.replicas_in_inputs(target.urn)
        if seen is None:
            # Not analysed as a resource in this run: judge the props we have, unless they
            # are live outputs where the API server has filled spec.replicas in.
            if _looks_live(target.props):
                return
            seen = k8s.get(target.props, "spec", "replicas") is not None
        if seen:
            ctx.report(
                f"{target.describe()} sets spec.replicas although {hpa.describe()} scales it; "
                "every update would reset the replica count. Leave spec.replicas unset.",
                target,
            )


def _check_metric_requests(ctx: StackContext, hpa: StackEntry, target: StackEntry) -> None:
    tpl = k8s.pod_template(target.resource_type, target.props)
    if tpl is None:
        return
    for p in tpl.unknown_paths:
        ctx.decider.add(f"{target.describe()}: {p}")
    for metric in _metrics(hpa):
        with ctx.deciding(hpa):
            need = _utilization_needs(metric)
            if need is None:
                continue
            rname, only = need
            for c in tpl.app_containers:
                if only is not None and c.name != only:
                    continue
                with ctx.deciding(target):
                    # The API server defaults a missing request to the limit.
                    if rname not in c.resources("requests") and rname not in c.resources("limits"):
                        ctx.report(
                            f"{hpa.describe()} scales on {rname} utilization but "
                            f"{c.describe()} of {target.describe()} has no {rname} request; "
                            "the HPA cannot compute utilization.",
                            hpa,
                        )


# --- hpa-gpu-scaling-signal -------------------------------------------------------------


def _check_gpu_signal(ctx: StackContext) -> None:
    patterns = ctx.config["gpuResourceNames"]
    for hpa in ctx.of(*scaling.HPA):
        with ctx.deciding(hpa):
            target = _find_target(ctx, hpa)
            if target is None:
                continue
            tpl = k8s.pod_template(target.resource_type, target.props)
            if tpl is None or not k8s.pod_gpus(tpl, patterns):
                continue
            metrics = _metrics(hpa)
            if all(_is_cpu_metric(m) for m in metrics):
                ctx.report(
                    f"{hpa.describe()} scales the GPU workload {target.describe()} on CPU alone; "
                    "GPU inference is bound by the GPU and the request queue. Consider a Pods, "
                    "Object or External metric (queue length, in-flight requests, GPU "
                    "utilization).",
                    hpa,
                )


POLICIES: list[Policy] = [
    resource_policy(
        name="hpa-replica-bounds",
        description="An HPA's minReplicas is at least 1 and at most its maxReplicas.",
        applies=_is_hpa,
        check=_check_bounds,
        severity=Severity.MEDIUM,
    ),
    stack_policy(
        name="hpa-target",
        description=(
            "An HPA or a KEDA ScaledObject scales a workload of this stack that leaves spec.replicas "
            "unset, and every container of that workload requests what the HPA's Utilization metrics "
            "divide by."
        ),
        check=_check_hpa_target,
        severity=Severity.HIGH,
    ),
    stack_policy(
        name="hpa-gpu-scaling-signal",
        description="GPU workloads should not scale on CPU utilization alone.",
        check=_check_gpu_signal,
        properties={"gpuResourceNames": GPU_RESOURCE_NAMES_SCHEMA},
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=Severity.LOW,
    ),
]
