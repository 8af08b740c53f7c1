"""GPU rules: resources, scheduling, probes, shared memory and the pool's GPU budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pulumi_policy import Policy, Severity

from .. import k8s, scaling
from ..framework import (
    ResourceContext,
    StackContext,
    is_unknown,
    plain_containers,
    resource_policy,
    stack_policy,
)
from ..settings import GPU_RESOURCE_NAMES_SCHEMA, string_list_schema

NODE_POOL = ("karpenter.sh", "NodePool")


def _fmt(q: Decimal) -> str:
    return k8s.format_quantity(q)


# --- gpu-resources ----------------------------------------------------------------------


def _check_gpu_resources(ctx: ResourceContext) -> None:
    patterns = ctx.config["gpuResourceNames"]
    for c in ctx.containers():
        with ctx.deciding():
            requests, limits = c.resources("requests"), c.resources("limits")
            names = [n for n in dict.fromkeys([*requests, *limits]) if k8s.is_gpu_resource(n, patterns)]
            for n in names:
                if n not in limits:
                    ctx.report(
                        f"{c.describe()} requests {n} but sets no limit; GPUs are set in "
                        f'resources.limits["{n}"] (requests, if given, equal to it).'
                    )
                    continue
                lim = k8s.quantity(limits[n])
                if lim is None or lim < 0 or lim != lim.to_integral_value():
                    ctx.report(f'{c.describe()}: limits["{n}"] is {limits[n]!r}; GPUs are whole numbers.')
                    continue
                if n in requests:
                    req = k8s.quantity(requests[n])
                    if req != lim:
                        ctx.report(
                            f'{c.describe()}: requests["{n}"] {requests[n]!r} differs from '
                            f"limits {limits[n]!r}; GPU requests must equal limits."
                        )


def _remediate_gpu_resources(
    resource_type: str, props: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any] | None:
    """Set GPU requests equal to the limits (or add the limit a GPU request implies)."""
    patterns = config["gpuResourceNames"]
    changed = False
    for c in plain_containers(resource_type, props):
        res = c.get("resources")
        if not isinstance(res, dict):
            continue
        limits = res.get("limits")
        requests = res.get("requests")
        if limits is not None and not isinstance(limits, dict):
            continue
        if requests is not None and not isinstance(requests, dict):
            continue
        for n, value in list((requests or {}).items()):
            if not k8s.is_gpu_resource(n, patterns) or (limits and n in limits):
                continue
            q = None if is_unknown(value) else k8s.quantity(value)
            if q is not None and q >= 0 and q == q.to_integral_value():
                limits = res.setdefault("limits", {})
                limits[n] = value
                changed = True
        for n, value in list((limits or {}).items()):
            if not k8s.is_gpu_resource(n, patterns) or is_unknown(value):
                continue
            q = k8s.quantity(value)
            if q is None or q < 0 or q != q.to_integral_value():
                continue
            if requests is not None and n in requests and k8s.quantity(requests[n]) == q:
                continue
            if requests is None:
                requests = res["requests"] = {}
            requests[n] = value
            changed = True
    return props if changed else None


# --- gpu-scheduling ---------------------------------------------------------------------


def _tolerations(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [k8s.mapping(t) for t in k8s.items(k8s.get(spec, "tolerations"))]


def _aims_at_taint(tol: Mapping[str, Any], key: str, effect: str) -> bool:
    """Whether a toleration is meant for the taint (key, effect), whatever its value."""
    tkey = k8s.get(tol, "key") or ""
    op = k8s.get(tol, "operator") or "Equal"
    teffect = k8s.get(tol, "effect") or ""
    key_ok = tkey == key or (tkey == "" and op == "Exists")
    return key_ok and teffect in ("", effect)


def _tolerates(tol: Mapping[str, Any], key: str, effect: str, value: str | None) -> bool:
    if not _aims_at_taint(tol, key, effect):
        return False
    op = k8s.get(tol, "operator") or "Equal"
    if op == "Exists":
        return True
    return value is not None and (k8s.get(tol, "value") or "") == value


def _selects_gpu_nodes(spec: Mapping[str, Any], keys: Sequence[str]) -> bool:
    selector = k8s.mapping(k8s.get(spec, "nodeSelector"))
    for k in keys:
        if k in selector and str(selector[k]).lower() != "false":
            return True
    terms = k8s.items(
        k8s.get(
            spec,
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        )
    )
    if not terms:
        return False

    def term_selects(term: Any) -> bool:
        for expr in k8s.items(k8s.get(term, "matchExpressions")):
            if k8s.get(expr, "key") not in keys:
                continue
            op = k8s.get(expr, "operator")
            values = [str(v).lower() for v in k8s.items(k8s.get(expr, "values"))]
            if op in ("Exists", "Gt") or (op == "In" and any(v != "false" for v in values)):
                return True
        return False

    # Terms are ORed: every term must keep the pod on GPU nodes.
    return all(term_selects(t) for t in terms)


def _check_gpu_scheduling(ctx: ResourceContext) -> None:
    cfg = ctx.config
    key, effect, value = cfg["gpuTaintKey"], cfg["gpuTaintEffect"], cfg["gpuTaintValue"]
    pod = ctx.pod
    if pod is None:
        return
    gpus = k8s.pod_gpus(pod, cfg["gpuResourceNames"])
    if pod.unknown_paths:
        return  # whether the pod uses GPUs is undecided; recorded by ctx.pod
    tolerations = _tolerations(pod.spec)
    where = f"{pod.path}.tolerations"
    if gpus:
        wanted = f"{{key: {key}, operator: Exists, effect: {effect}}}"
        with ctx.deciding():
            if not any(_tolerates(t, key, effect, value) for t in tolerations):
                ctx.report(
                    f"The pod requests GPUs ({_describe_gpus(gpus)}) but does not tolerate the "
                    f"GPU taint {key}:{effect}; add {wanted} to {where}."
                )
        with ctx.deciding():
            if not _selects_gpu_nodes(pod.spec, cfg["gpuNodeLabelKeys"]):
                ctx.report(
                    f"The pod requests GPUs but does not select GPU nodes: set {pod.path}.nodeSelector "
                    f"(or a required nodeAffinity term on every term) on one of "
                    f"{', '.join(cfg['gpuNodeLabelKeys'])}."
                )
    else:
        with ctx.deciding():
            for i, t in enumerate(tolerations):
                if _aims_at_taint(t, key, effect):
                    what = "the GPU taint" if k8s.get(t, "key") else "every taint, including the GPU taint"
                    ctx.report(
                        f"The pod requests no GPUs but {where}[{i}] tolerates {what} "
                        f"{key}:{effect}; GPU nodes are reserved for GPU workloads."
                    )


def _describe_gpus(gpus: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{n}: {_fmt(q)}" for n, q in gpus.items())


# --- gpu-probes -------------------------------------------------------------------------


def _probe_budget(probe: Mapping[str, Any]) -> int:
    def num(key: str, default: int) -> int:
        v = k8s.as_int(k8s.get(probe, key))
        return default if v is None else v

    return num("initialDelaySeconds", 0) + num("failureThreshold", 3) * num("periodSeconds", 10)


def _check_gpu_probes(ctx: ResourceContext) -> None:
    need = ctx.config["modelLoadSeconds"]
    patterns = ctx.config["gpuResourceNames"]
    for c in ctx.containers():
        if c.init:
            continue  # init containers cannot have probes
        with ctx.deciding():
            if not any(q > 0 for q in k8s.container_gpus(c, patterns).values()):
                continue
            startup = k8s.get(c.spec, "startupProbe")
            if not isinstance(startup, Mapping):
                ctx.report(
                    f"{c.describe()} uses GPUs but has no startupProbe; model loading needs "
                    f"{need}s before liveness checks may restart it."
                )
            else:
                budget = _probe_budget(startup)
                if budget < need:
                    ctx.report(
                        f"{c.describe()}: startupProbe allows {budget}s (initialDelaySeconds + "
                        f"failureThreshold x periodSeconds), less than the {need}s a model load "
                        "may take (modelLoadSeconds)."
                    )
            for probe in ("readinessProbe", "livenessProbe"):
                if not isinstance(k8s.get(c.spec, probe), Mapping):
                    ctx.report(f"{c.describe()} uses GPUs but has no {probe}.")


# --- gpu-shared-memory ------------------------------------------------------------------


def _check_shared_memory(ctx: ResourceContext) -> None:
    pod = ctx.pod
    if pod is None:
        return
    patterns = ctx.config["gpuResourceNames"]
    total = sum(k8s.pod_gpus(pod, patterns).values(), Decimal(0))
    if total < ctx.config["minGpus"]:
        return
    memory_volumes = set()
    with ctx.deciding():
        for v in k8s.items(k8s.get(pod.spec, "volumes")):
            if k8s.get(v, "emptyDir", "medium") == "Memory":
                memory_volumes.add(k8s.get(v, "name"))
    for c in pod.app_containers:
        with ctx.deciding():
            if not any(q > 0 for q in k8s.container_gpus(c, patterns).values()):
                continue
            mounts = k8s.items(k8s.get(c.spec, "volumeMounts"))
            shm = [m for m in mounts if str(k8s.get(m, "mountPath") or "").rstrip("/") == "/dev/shm"]
            if not shm:
                ctx.report(
                    f"The pod uses {_fmt(total)} GPUs and {c.describe()} does not mount /dev/shm; "
                    "multi-GPU inference (NCCL) needs an emptyDir with medium Memory there."
                )
            elif not any(k8s.get(m, "name") in memory_volumes for m in shm):
                ctx.report(f"{c.describe()} mounts /dev/shm from a volume that is not an emptyDir with medium Memory.")


# --- gpu-budget -------------------------------------------------------------------------

#: Workload kinds counted against the budget (DaemonSets scale with nodes, CronJobs with
#: time; neither is counted).
BUDGET_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "Pod", "Job", "LeaderWorkerSet"}


def _check_gpu_budget(ctx: StackContext) -> None:
    rname = ctx.config["budgetResourceName"]
    configured = ctx.config["gpuBudget"]
    pools: list[tuple[str, Decimal]] = []
    for pool in ctx.of(*NODE_POOL, subjects=False):
        with ctx.deciding(pool):
            limits = k8s.mapping(k8s.get(pool.props, "spec", "limits"))
            if rname in limits:
                q = k8s.quantity(limits[rname])
                if q is None:
                    ctx.report(f"{pool.describe()}: spec.limits[{rname}] is not a quantity.", pool)
                else:
                    pools.append((pool.identity.name or pool.urn, q))

    lines: list[str] = []
    demand = Decimal(0)
    for w in ctx.workloads():
        if w.identity.kind not in BUDGET_KINDS:
            continue
        with ctx.deciding(w):
            tpl = k8s.pod_template(w.resource_type, w.props)
            if tpl is None:
                continue
            per_pod = k8s.pod_gpus(tpl, [rname]).get(rname, Decimal(0))
            if tpl.unknown_paths:
                ctx.decider.undecided.extend(f"{w.describe()}: {p}" for p in tpl.unknown_paths)
            if per_pod <= 0:
                continue
            rr = scaling.replica_range(ctx, w)
            surge = scaling.max_surge(w, rr.maximum)
            group = k8s.group_size(w.identity.kind, w.props)  # a multi-node replica's pods
            pods = (rr.maximum + surge) * group
            demand += pods * per_pod
            source = "replicas"
            if rr.hpa is not None:
                source = "ScaledObject maxReplicaCount" if scaling.is_scaled_object(rr.hpa) else "HPA maxReplicas"
            groups = f" x {group} pods per replica" if group > 1 else ""
            lines.append(
                f"{w.describe()}: ({rr.maximum} {source} + {surge} maxSurge){groups} x {_fmt(per_pod)} = "
                f"{_fmt(pods * per_pod)}"
            )
    if not lines:
        return
    if configured is not None:
        budget, source = Decimal(str(configured)), "the configured gpuBudget"
    elif pools:
        budget = sum((q for _, q in pools), Decimal(0))
        source = "spec.limits[" + rname + "] of NodePool " + ", ".join(n for n, _ in pools)
    else:
        ctx.report(
            f"GPU workloads need up to {_fmt(demand)} {rname} but there is no GPU budget: "
            f"no Karpenter NodePool in the stack sets spec.limits[{rname}] and gpuBudget is "
            "not configured."
        )
        return
    if demand > budget:
        ctx.report(
            f"At full scale, mid-rollout, GPU workloads need {_fmt(demand)} {rname}, more than "
            f"the budget of {_fmt(budget)} ({source}):\n  " + "\n  ".join(lines)
        )


POLICIES: list[Policy] = [
    resource_policy(
        name="gpu-resources",
        description=(
            "GPUs are requested in resources.limits, in whole numbers, with requests (when given) equal to the limits."
        ),
        applies=k8s.is_workload,
        check=_check_gpu_resources,
        properties={"gpuResourceNames": GPU_RESOURCE_NAMES_SCHEMA},
        severity=Severity.HIGH,
        remediate=_remediate_gpu_resources,
        remediation_steps=(
            "Set GPU requests equal to limits. Remediation does so (and adds the limit a "
            "GPU request implies); fractional GPUs need a human."
        ),
    ),
    resource_policy(
        name="gpu-scheduling",
        description=(
            "Pods with GPUs tolerate the GPU taint and select GPU nodes; pods without GPUs "
            "do not tolerate the GPU taint."
        ),
        applies=k8s.is_workload,
        check=_check_gpu_scheduling,
        properties={
            "gpuResourceNames": GPU_RESOURCE_NAMES_SCHEMA,
            "gpuTaintKey": {
                "type": "string",
                "minLength": 1,
                "description": "Key of the taint on GPU nodes.",
                "default": "nvidia.com/gpu",
            },
            "gpuTaintEffect": {
                "type": "string",
                "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"],
                "description": "Effect of the taint on GPU nodes.",
                "default": "NoSchedule",
            },
            "gpuTaintValue": {
                "type": ["string", "null"],
                "description": (
                    "Value of the GPU taint, if it has one; only then does an Equal "
                    "toleration count. Unset: tolerations must use operator Exists."
                ),
                "default": None,
            },
            "gpuNodeLabelKeys": string_list_schema(
                "Node label keys that select GPU nodes, in nodeSelector or in every required nodeAffinity term.",
                [
                    "nvidia.com/gpu.present",
                    "nvidia.com/gpu.product",
                    "nvidia.com/gpu.count",
                    "karpenter.k8s.aws/instance-gpu-count",
                    "karpenter.k8s.aws/instance-gpu-name",
                    "cloud.google.com/gke-accelerator",
                ],
            ),
        },
        severity=Severity.HIGH,
    ),
    resource_policy(
        name="gpu-probes",
        description=(
            "GPU containers have a startupProbe whose budget (initialDelaySeconds + "
            "failureThreshold x periodSeconds) covers the model load time, and readiness and "
            "liveness probes."
        ),
        applies=k8s.is_workload,
        check=_check_gpu_probes,
        properties={
            "gpuResourceNames": GPU_RESOURCE_NAMES_SCHEMA,
            "modelLoadSeconds": {
                "type": "integer",
                "minimum": 1,
                "description": "Seconds a model may take to load before it must be live.",
                "default": 600,
            },
        },
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        name="gpu-shared-memory",
        description=(
            "Pods with more than one GPU mount /dev/shm from an emptyDir with medium Memory in every GPU container."
        ),
        applies=k8s.is_workload,
        check=_check_shared_memory,
        properties={
            "gpuResourceNames": GPU_RESOURCE_NAMES_SCHEMA,
            "minGpus": {
                "type": "integer",
                "minimum": 1,
                "description": "GPUs per pod from which /dev/shm must be a memory emptyDir.",
                "default": 2,
            },
        },
        severity=Severity.MEDIUM,
    ),
    stack_policy(
        name="gpu-budget",
        description=(
            "Over all GPU workloads, (max replicas + maxSurge) x GPUs per pod fits the GPU "
            "budget: the Karpenter NodePools' GPU limit or a configured number."
        ),
        check=_check_gpu_budget,
        properties={
            "gpuBudget": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": ("GPUs available to the stack; overrides the NodePools' limits when set."),
                "default": None,
            },
            "budgetResourceName": {
                "type": "string",
                "minLength": 1,
                "description": "The GPU resource the budget counts (the NodePool limit key).",
                "default": "nvidia.com/gpu",
            },
        },
        severity=Severity.HIGH,
    ),
]
