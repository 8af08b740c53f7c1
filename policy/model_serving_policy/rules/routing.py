"""Routing through a Gateway: HTTPRoutes reach backends the stack has, in shares that add up; InferencePools select
pods of the stack, on a port they serve, whose engine exports what the pool's endpoint picker scores on."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, Policy, Severity

from .. import k8s
from ..exporters import EXPORTER_ANNOTATION, EXPORTERS
from ..framework import StackContext, StackEntry, stack_policy

SERVICE = ("core", "Service")
HTTP_ROUTE = ("gateway.networking.k8s.io", "HTTPRoute")
INFERENCE_POOL = ("inference.networking.k8s.io", "InferencePool")
BACKEND_KINDS = {("", "Service"): SERVICE, ("inference.networking.k8s.io", "InferencePool"): INFERENCE_POOL}

# What the endpoint picker scores pods on: the core metrics extractor's metric specs (by engine, from the
# picker's --config-text), and for vLLM the picker's own defaults. The queue is always scored; the KV cache when
# the kv-cache-utilization-scorer is in the picker's profile.
PICKER_DEFAULTS = {
    "vllm": {"queuedRequestsSpec": "vllm:num_requests_waiting", "kvUsageSpec": "vllm:kv_cache_usage_perc"}
}
KV_SCORER = "kv-cache-utilization-scorer"


def _named(ctx: StackContext, kind: tuple[str, str], namespace: str | None, name: str) -> StackEntry | None:
    for entry in ctx.of(*kind, subjects=False):
        if entry.identity.namespace == namespace and entry.identity.name == name:
            return entry
    return None


def _selected(ctx: StackContext, namespace: str | None, selector: Mapping[str, Any]) -> list[StackEntry]:
    """The stack's workloads in ``namespace`` whose pods the label map ``selector`` selects."""
    if not list(selector):
        return []
    return [
        w
        for w in ctx.workloads(subjects=False)
        if w.identity.namespace == namespace
        and k8s.map_selector_matches(selector, k8s.pod_labels(w.resource_type, w.props))
    ]


def _ports(workload: StackEntry) -> set[int]:
    tpl = k8s.pod_template(workload.resource_type, workload.props)
    if tpl is None:
        return set()
    ports = (
        k8s.as_int(k8s.get(p, "containerPort")) for c in tpl.app_containers for p in k8s.items(c.spec.get("ports"))
    )
    return {port for port in ports if port is not None}


# --- route-backends --------------------------------------------------------------------------------------------


def _check_routes(ctx: StackContext) -> None:
    for route in ctx.of(*HTTP_ROUTE):
        with ctx.deciding(route):
            for i, rule in enumerate(k8s.items(k8s.get(route.props, "spec", "rules"))):
                refs = k8s.items(k8s.get(rule, "backendRefs"))
                for ref in refs:
                    group, kind = str(k8s.get(ref, "group") or ""), str(k8s.get(ref, "kind") or "Service")
                    name = str(k8s.get(ref, "name"))
                    namespace = k8s.get(ref, "namespace") or route.identity.namespace
                    target = BACKEND_KINDS.get((group, kind))
                    if target is None:
                        continue  # a backend kind the stack does not make
                    if _named(ctx, target, namespace, name) is None:
                        ctx.report(
                            f"{route.describe()} rule {i} sends requests to {kind} {namespace}/{name}, which this "
                            "stack does not have.",
                            route,
                        )
                if len(refs) > 1:
                    weights = [k8s.as_int(k8s.get(ref, "weight")) for ref in refs]
                    total = sum(1 if w is None else w for w in weights)  # Gateway API's default weight is 1
                    if total != 100:
                        ctx.report(
                            f"{route.describe()} rule {i} splits requests over {len(refs)} backends whose weights "
                            f"add up to {total}, not 100: each weight is the backend's share in %.",
                            route,
                        )


# --- inference-pool-selector -----------------------------------------------------------------------------------


def _check_pool_selectors(ctx: StackContext) -> None:
    for pool in ctx.of(*INFERENCE_POOL):
        with ctx.deciding(pool):
            selector = k8s.mapping(k8s.get(pool.props, "spec", "selector", "matchLabels"))
            selected = _selected(ctx, pool.identity.namespace, selector)
            if not selected:
                wanted = ", ".join(f"{k}={selector[k]}" for k in list(selector)) or "nothing"
                ctx.report(
                    f"{pool.describe()} selects pods labelled {wanted}, but no workload in namespace "
                    f"{pool.identity.namespace} of this stack has such pods.",
                    pool,
                )
                continue
            served = set().union(*(_ports(w) for w in selected))
            for target in k8s.items(k8s.get(pool.props, "spec", "targetPorts")):
                port = k8s.as_int(k8s.get(target, "number"))
                if port is not None and port not in served:
                    ctx.report(
                        f"{pool.describe()} sends requests to port {port}, which its pods "
                        f"({', '.join(w.describe() for w in selected)}) do not serve.",
                        pool,
                    )


# --- inference-pool-metrics ------------------------------------------------------------------------------------


def _picker_config(args: Sequence[Any]) -> Mapping[str, Any]:
    for arg in (str(a) for a in args):
        if arg.startswith("--config-text="):
            try:
                config = json.loads(arg.partition("=")[2])
            except ValueError:
                return {}  # YAML the pack does not parse: the picker's defaults are assumed
            return config if isinstance(config, dict) else {}
    return {}


def _scored_metrics(config: Mapping[str, Any]) -> dict[str, str]:
    """What the picker with ``config`` scores on: {spec key: metric name}."""
    plugins = [p for p in config.get("plugins") or [] if isinstance(p, dict)]
    extractor = next((p.get("parameters") or {} for p in plugins if p.get("type") == "core-metrics-extractor"), {})
    engine = str(extractor.get("defaultEngine") or "vllm")
    specs = dict(PICKER_DEFAULTS.get(engine, {}))
    for given in extractor.get("engineConfigs") or []:
        if isinstance(given, dict) and given.get("name") == engine:
            specs.update({k: str(v) for k, v in given.items() if k in ("queuedRequestsSpec", "kvUsageSpec")})
    refs = [
        str(ref.get("pluginRef"))
        for profile in config.get("schedulingProfiles") or []
        for ref in (profile.get("plugins") or [])
        if isinstance(ref, dict)
    ]
    scored = {"queuedRequestsSpec": specs.get("queuedRequestsSpec", "")}
    if KV_SCORER in refs or not refs:  # without profiles the picker's default profile scores the KV cache
        scored["kvUsageSpec"] = specs.get("kvUsageSpec", "")
    # A spec may select series by label: name{label=value}.
    return {key: spec.partition("{")[0] for key, spec in scored.items()}


def _picker_metrics(ctx: StackContext, pool: StackEntry) -> dict[str, str] | None:
    """The metric names the pool's picker scores on; None without a picker in the stack."""
    ref = k8s.mapping(k8s.get(pool.props, "spec", "endpointPickerRef"))
    service = _named(ctx, SERVICE, pool.identity.namespace, str(k8s.get(ref, "name")))
    if service is None:
        return None
    pickers = _selected(ctx, pool.identity.namespace, k8s.mapping(k8s.get(service.props, "spec", "selector")))
    if not pickers:
        return None
    tpl = k8s.pod_template(pickers[0].resource_type, pickers[0].props)
    args = [a for c in (tpl.app_containers if tpl else []) for a in k8s.items(c.spec.get("args"))]
    return _scored_metrics(_picker_config(args))


def _check_pool_metrics(ctx: StackContext) -> None:
    for pool in ctx.of(*INFERENCE_POOL):
        with ctx.deciding(pool):
            metrics = _picker_metrics(ctx, pool)
            if metrics is None:
                ref = k8s.get(pool.props, "spec", "endpointPickerRef", "name")
                ctx.report(f"{pool.describe()}'s endpoint picker (Service {ref}) is not in this stack.", pool)
                continue
            selector = k8s.mapping(k8s.get(pool.props, "spec", "selector", "matchLabels"))
            for w in _selected(ctx, pool.identity.namespace, selector):
                exporter = k8s.get(w.props, "metadata", "annotations", EXPORTER_ANNOTATION)
                if not isinstance(exporter, str) or exporter not in EXPORTERS:
                    continue
                exported = set(EXPORTERS[exporter][1])
                missing = [f"{name or '(none)'} ({key})" for key, name in metrics.items() if name not in exported]
                if missing:
                    ctx.report(
                        f"{pool.describe()}'s endpoint picker scores {w.describe()}'s pods on "
                        f"{', '.join(missing)}, which engine {exporter} does not export: the picker cannot tell its "
                        "pods' load apart on that score and falls back on the others.",
                        pool,
                    )


POLICIES: list[Policy] = [
    stack_policy(
        name="route-backends",
        description=(
            "Every Service or InferencePool an HTTPRoute sends requests to is in the stack, and a rule splitting "
            "requests over several backends gives them weights adding up to 100."
        ),
        check=_check_routes,
        severity=Severity.HIGH,
    ),
    stack_policy(
        name="inference-pool-selector",
        description="Every InferencePool selects the pods of a workload in its namespace, on a port they serve.",
        check=_check_pool_selectors,
        severity=Severity.HIGH,
    ),
    stack_policy(
        name="inference-pool-metrics",
        description=(
            "The pods an InferencePool selects export the queue and KV-cache metrics its endpoint picker scores "
            "on (vLLM does; the project's server has no KV cache)."
        ),
        check=_check_pool_metrics,
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=Severity.MEDIUM,
    ),
]
