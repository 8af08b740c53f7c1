"""Services: LoadBalancers are restricted or internal; every selector selects something."""

from __future__ import annotations

from pulumi_policy import Policy, Severity

from .. import k8s
from ..framework import ResourceContext, StackContext, resource_policy, stack_policy

SERVICE = ("core", "Service")
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
OPEN_RANGES = {"0.0.0.0/0", "::/0"}

DEFAULT_INTERNAL_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ["internal"],
    "service.beta.kubernetes.io/aws-load-balancer-internal": ["true"],
    "networking.gke.io/load-balancer-type": ["Internal"],
    "cloud.google.com/load-balancer-type": ["Internal"],
    "service.beta.kubernetes.io/azure-load-balancer-internal": ["true"],
    "service.beta.kubernetes.io/oci-load-balancer-internal": ["true"],
}


def _is_service(resource_type: str) -> bool:
    return k8s.is_type(resource_type, *SERVICE)


def _check_exposure(ctx: ResourceContext) -> None:
    with ctx.deciding():
        if k8s.get(ctx.props, "spec", "type") != "LoadBalancer":
            return
        annotations = k8s.mapping(k8s.get(ctx.props, "metadata", "annotations"))
        for key, accepted in ctx.config["internalAnnotations"].items():
            if key in annotations and str(annotations[key]).lower() in {str(a).lower() for a in accepted}:
                return
        ranges = [str(r).strip() for r in k8s.items(k8s.get(ctx.props, "spec", "loadBalancerSourceRanges"))]
        if not ranges and SOURCE_RANGES_ANNOTATION in annotations:
            ranges = [r.strip() for r in str(annotations[SOURCE_RANGES_ANNOTATION]).split(",") if r.strip()]
        if not ranges:
            example = next(iter(ctx.config["internalAnnotations"].items()), None)
            hint = f" such as {example[0]}: {example[1][0]}" if example and example[1] else ""
            ctx.report(
                "A LoadBalancer Service must set spec.loadBalancerSourceRanges or an "
                f"internal-load-balancer annotation{hint} (see internalAnnotations)."
            )
            return
        open_ranges = sorted(OPEN_RANGES & set(ranges))
        if open_ranges:
            ctx.report(
                f"spec.loadBalancerSourceRanges contains {', '.join(open_ranges)}, which opens "
                "the load balancer to the whole internet."
            )


def _check_selectors(ctx: StackContext) -> None:
    workloads = ctx.workloads(subjects=False)
    for svc in ctx.of(*SERVICE):
        with ctx.deciding(svc):
            if k8s.get(svc.props, "spec", "type") == "ExternalName":
                continue
            selector = k8s.mapping(k8s.get(svc.props, "spec", "selector"))
            if not list(selector):
                continue  # endpoints managed by hand
            matched = False
            undecided_before = len(ctx.decider.undecided)
            for w in workloads:
                with ctx.deciding(w):
                    if w.identity.namespace != svc.identity.namespace:
                        continue
                    labels = k8s.pod_labels(w.resource_type, w.props)
                    if k8s.map_selector_matches(selector, labels):
                        matched = True
                        break
            if not matched and len(ctx.decider.undecided) == undecided_before:
                wanted = ", ".join(f"{k}={selector[k]}" for k in list(selector))
                ctx.report(
                    f"{svc.describe()} selects pods labelled {wanted}, but no workload in "
                    f"namespace {svc.identity.namespace} of this stack has such pods.",
                    svc,
                )


POLICIES: list[Policy] = [
    resource_policy(
        name="service-exposure",
        description=(
            "A LoadBalancer Service restricts its sources with loadBalancerSourceRanges (not "
            "0.0.0.0/0) or is an internal load balancer."
        ),
        applies=_is_service,
        check=_check_exposure,
        properties={
            "internalAnnotations": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "description": ("Annotations that make a LoadBalancer internal, with the values that do so."),
                "default": DEFAULT_INTERNAL_ANNOTATIONS,
            }
        },
        severity=Severity.HIGH,
    ),
    stack_policy(
        name="service-selector",
        description="Every Service selector matches the pod labels of a workload in the stack.",
        check=_check_selectors,
        severity=Severity.MEDIUM,
    ),
]
