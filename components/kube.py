"""Registers a wire-form Kubernetes object from :mod:`components.specs` as its typed Pulumi resource."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# One class per (apiVersion, kind) the builders emit; anything else is a programming error.
_CLASSES: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("node.k8s.io/v1", "RuntimeClass"): k8s.node.v1.RuntimeClass,
}

# Wire-form top-level fields and the Python argument names the SDK takes for them.
_FIELDS = {
    "metadata": "metadata",
    "spec": "spec",
    "data": "data",
    "stringData": "string_data",
    "type": "type",
    "automountServiceAccountToken": "automount_service_account_token",
    "handler": "handler",
    "scheduling": "scheduling",
}


def register(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Create the Pulumi resource for ``obj``; its logical name is the object's own name."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    name = obj["metadata"]["name"]
    cls = _CLASSES.get((api_version, kind))
    if cls is None:
        # Custom resources (the Karpenter NodePool) keep their whole body.
        custom: pulumi.CustomResource = k8s.apiextensions.CustomResource(
            name, api_version=api_version, kind=kind, metadata=obj["metadata"], spec=obj.get("spec"), opts=opts
        )
        return custom
    kwargs = {_FIELDS[k]: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    resource: pulumi.CustomResource = cls(name, opts=opts, **kwargs)
    return resource


def child_options(
    parent: pulumi.Resource,
    opts: pulumi.ResourceOptions | None,
    *,
    depends_on: Sequence[pulumi.Resource] = (),
    **kwargs: Any,
) -> pulumi.ResourceOptions:
    """Options for a component's child: parented, and waiting for what the component waits for.

    Pulumi does not pass a component's ``depends_on`` down to its children; a Service would otherwise
    be created before the Namespace it lives in.
    """
    given: Any = opts.depends_on if opts is not None else None
    inherited: list[Any] = list(given) if isinstance(given, (list, tuple)) else [given] if given is not None else []
    return pulumi.ResourceOptions(parent=parent, depends_on=[*inherited, *depends_on], **kwargs)
