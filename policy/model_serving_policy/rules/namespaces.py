"""Namespaces: nothing is deployed into ``default`` (where a missing namespace lands)."""

from __future__ import annotations

from pulumi_policy import ResourceValidationPolicy, Severity

from .. import k8s, kinds
from ..framework import ResourceContext, resource_policy
from ..settings import string_list_schema

# Namespaced kinds a stack may hold besides those the program emits (the generated ``kinds.NAMESPACED_KINDS``).
OTHER_KINDS = ["Pod", "StatefulSet", "ReplicaSet", "CronJob", "PodMonitor", "Ingress"]

NAMESPACED_KINDS = [*kinds.NAMESPACED_KINDS, *(k for k in OTHER_KINDS if k not in kinds.NAMESPACED_KINDS)]


def _check_namespace(ctx: ResourceContext) -> None:
    ident = ctx.identity
    if ident.kind not in ctx.config["kinds"]:
        return
    if ident.namespace is None:
        ctx.decider.add("metadata.namespace")
        return
    if ident.namespace in ctx.config["forbiddenNamespaces"]:
        how = "has no metadata.namespace, so it lands in" if ident.namespace_defaulted else "is in"
        ctx.report(f"{ident.describe()} {how} namespace {ident.namespace!r}; give every workload its own namespace.")


POLICIES: list[ResourceValidationPolicy] = [
    resource_policy(
        name="no-default-namespace",
        description=(
            "No workload, Service or related object lives in the default namespace; a "
            "missing metadata.namespace means default (or the provider's namespace)."
        ),
        applies=lambda resource_type: k8s.parse_type(resource_type) is not None,
        check=_check_namespace,
        properties={
            "forbiddenNamespaces": string_list_schema("Namespaces nothing may be deployed into.", ["default"]),
            "kinds": string_list_schema("Namespaced kinds the rule applies to.", NAMESPACED_KINDS),
        },
        severity=Severity.MEDIUM,
    ),
]
