"""Priority: every workload's pods carry a PriorityClass, so that serving outranks batch work on shared (GPU)
nodes and the scheduler preempts in that order, not by chance."""

from __future__ import annotations

from pulumi_policy import ResourceValidationPolicy, Severity

from .. import k8s
from ..framework import ResourceContext, resource_policy
from ..settings import string_list_schema


def _check_priority(ctx: ResourceContext) -> None:
    pod = ctx.pod
    if pod is None:
        return
    with ctx.deciding():
        name = k8s.get(pod.spec, "priorityClassName")
        if not isinstance(name, str) or not name:
            ctx.report(
                f"The pod sets no {pod.path}.priorityClassName: it runs at the cluster's default priority (0), "
                "level with batch work, and is preempted as readily; give it the model's PriorityClass "
                "(models[i].priorityClass)."
            )
        elif name in ctx.config["forbiddenClasses"]:
            ctx.report(
                f"The pod's {pod.path}.priorityClassName is {name!r}, a class kept for the cluster's own "
                "components; a model's pods must not preempt them."
            )


POLICIES: list[ResourceValidationPolicy] = [
    resource_policy(
        name="pod-priority",
        description=(
            "Pods carry a priorityClassName (serving outranks batch work on shared nodes), and not a class kept "
            "for the cluster's control components."
        ),
        applies=k8s.is_workload,
        check=_check_priority,
        properties={
            "forbiddenClasses": string_list_schema(
                "Classes no workload of the stack may use (the system's, for cluster-critical components).",
                ["system-cluster-critical"],
            ),
        },
        severity=Severity.MEDIUM,
    ),
]
