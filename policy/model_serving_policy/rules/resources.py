"""Container cpu/memory requests, limits, limit-to-request ratio and maximums."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pulumi_policy import ResourceValidationPolicy, Severity

from .. import k8s
from ..framework import ResourceContext, is_unknown, plain_containers, resource_policy
from ..settings import ConfigError, string_list_schema

RESOURCES_SCHEMA: dict[str, Any] = string_list_schema(
    "Resource names checked on every container and init container.", ["cpu", "memory"]
)


# --- requests ---------------------------------------------------------------------------


def _check_requests(ctx: ResourceContext) -> None:
    for c in ctx.containers():
        with ctx.deciding():
            requests = c.resources("requests")
            for rname in ctx.config["resources"]:
                if rname not in requests:
                    ctx.report(f"{c.describe()} sets no {rname} request (resources.requests.{rname}).")
                    continue
                q = k8s.quantity(requests[rname])
                if q is None:
                    ctx.report(f"{c.describe()} has an invalid {rname} request {requests[rname]!r}.")
                elif q <= 0:
                    ctx.report(f"{c.describe()} requests {rname} {requests[rname]!r}; it must be > 0.")


def _remediate_requests(resource_type: str, props: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
    """Copy a missing request from the limit of the same container."""
    changed = False
    for c in plain_containers(resource_type, props):
        res = c.get("resources")
        if not isinstance(res, dict) or not isinstance(res.get("limits"), dict):
            continue
        limits = res["limits"]
        requests = res.get("requests")
        if requests is not None and not isinstance(requests, dict):
            continue
        for rname in config["resources"]:
            value = limits.get(rname)
            if value is None or is_unknown(value) or k8s.quantity(value) is None:
                continue
            if requests is None:
                requests = res["requests"] = {}
            if rname not in requests:
                requests[rname] = value
                changed = True
    return props if changed else None


# --- limits -----------------------------------------------------------------------------


def _check_limits(ctx: ResourceContext) -> None:
    cpu_mode = ctx.config["cpuLimit"]
    for c in ctx.containers():
        with ctx.deciding():
            limits = c.resources("limits")
            if "memory" not in limits:
                ctx.report(f"{c.describe()} sets no memory limit (resources.limits.memory).")
            elif k8s.quantity(limits["memory"]) is None:
                ctx.report(f"{c.describe()} has an invalid memory limit {limits['memory']!r}.")
        with ctx.deciding():
            limits = c.resources("limits")
            has_cpu = "cpu" in limits
            if cpu_mode == "required" and not has_cpu:
                ctx.report(
                    f"{c.describe()} sets no cpu limit (resources.limits.cpu); "
                    "this pack is configured with cpuLimit=required."
                )
            elif cpu_mode == "forbidden" and has_cpu:
                ctx.report(
                    f"{c.describe()} sets a cpu limit ({limits['cpu']!r}); "
                    "this pack is configured with cpuLimit=forbidden (no CFS throttling)."
                )
            elif has_cpu and k8s.quantity(limits["cpu"]) is None:
                ctx.report(f"{c.describe()} has an invalid cpu limit {limits['cpu']!r}.")


# --- ratio ------------------------------------------------------------------------------


def _check_ratio(ctx: ResourceContext) -> None:
    max_ratio = Decimal(str(ctx.config["maxRatio"]))
    for c in ctx.containers():
        for rname in ctx.config["resources"]:
            with ctx.deciding():
                requests, limits = c.resources("requests"), c.resources("limits")
                if rname not in requests or rname not in limits:
                    continue
                req, lim = k8s.quantity(requests[rname]), k8s.quantity(limits[rname])
                if req is None or lim is None or req <= 0:
                    continue
                if lim < req:
                    ctx.report(
                        f"{c.describe()}: {rname} limit {limits[rname]!r} is below its request {requests[rname]!r}."
                    )
                elif lim / req > max_ratio:
                    ratio = k8s.format_quantity(round(lim / req, 2))
                    ctx.report(
                        f"{c.describe()}: {rname} limit/request ratio is {ratio} "
                        f"({limits[rname]!r}/{requests[rname]!r}); the maximum is "
                        f"{k8s.format_quantity(max_ratio)}."
                    )


# --- maximums ---------------------------------------------------------------------------


def _config_quantity(policy: str, key: str, value: str) -> Decimal:
    q = k8s.quantity(value)
    if q is None:
        raise ConfigError(f"{policy}.{key}: {value!r} is not a Kubernetes quantity")
    return q


def _check_maximums(ctx: ResourceContext) -> None:
    maxima = {
        "cpu": (ctx.config["maxCpu"], _config_quantity(ctx.policy_name, "maxCpu", ctx.config["maxCpu"])),
        "memory": (
            ctx.config["maxMemory"],
            _config_quantity(ctx.policy_name, "maxMemory", ctx.config["maxMemory"]),
        ),
    }
    for c in ctx.containers():
        for rname, (text, maximum) in maxima.items():
            for section in ("requests", "limits"):
                with ctx.deciding():
                    values = c.resources(section)
                    if rname not in values:
                        continue
                    q = k8s.quantity(values[rname])
                    if q is not None and q > maximum:
                        ctx.report(
                            f"{c.describe()}: {rname} {section[:-1]} {values[rname]!r} exceeds "
                            f"the per-container maximum {text!r}."
                        )


POLICIES: list[ResourceValidationPolicy] = [
    resource_policy(
        name="container-resource-requests",
        description=(
            "Every container and init container requests cpu and memory, so the scheduler "
            "can place it and autoscalers can measure it."
        ),
        applies=k8s.is_workload,
        check=_check_requests,
        properties={"resources": RESOURCES_SCHEMA},
        severity=Severity.HIGH,
        remediate=_remediate_requests,
        remediation_steps=(
            "Set resources.requests on every container. Remediation copies a missing "
            "request from the container's limit, as the API server itself would."
        ),
    ),
    resource_policy(
        name="container-resource-limits",
        description=(
            "Every container and init container sets a memory limit; a cpu limit is "
            "required, forbidden or optional by configuration."
        ),
        applies=k8s.is_workload,
        check=_check_limits,
        properties={
            "cpuLimit": {
                "type": "string",
                "enum": ["required", "forbidden", "optional"],
                "description": "Whether containers must, must not or may set a cpu limit.",
                "default": "required",
            }
        },
        severity=Severity.HIGH,
    ),
    resource_policy(
        name="container-limit-request-ratio",
        description="A container's limit is at most maxRatio times its request.",
        applies=k8s.is_workload,
        check=_check_ratio,
        properties={
            "maxRatio": {
                "type": "number",
                "minimum": 1,
                "description": "Largest allowed limit / request ratio.",
                "default": 2,
            },
            "resources": RESOURCES_SCHEMA,
        },
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        name="container-resource-maximums",
        description="No container requests or is limited to more cpu or memory than the configured maximum.",
        applies=k8s.is_workload,
        check=_check_maximums,
        properties={
            "maxCpu": {
                "type": "string",
                "minLength": 1,
                "description": "Largest cpu quantity per container (request or limit).",
                "default": "64",
            },
            "maxMemory": {
                "type": "string",
                "minLength": 1,
                "description": "Largest memory quantity per container (request or limit).",
                "default": "512Gi",
            },
        },
        severity=Severity.MEDIUM,
    ),
]
