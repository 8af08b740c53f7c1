"""Registers a wire-form Kubernetes object from :mod:`components.specs` as its typed Pulumi resource."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aliases import former_object
from components.specs import Step


@cache
def _resource_class(api_version: str, kind: str) -> Any:
    """The SDK's typed class of a built-in kind (``apps/v1`` Deployment: ``k8s.apps.v1.Deployment``), or None."""
    group, _, version = api_version.rpartition("/")
    if "." in group and not group.endswith(".k8s.io"):
        return None  # a custom resource's group (karpenter.sh)
    module = getattr(k8s, group.split(".")[0] if group else "core", None)
    return getattr(getattr(module, version, None), kind, None)


def _argument(field: str) -> str:
    """The SDK's argument name of a wire-form top-level field (``stringData``: ``string_data``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


def register(obj: Mapping[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Create the Pulumi resource for ``obj``; its logical name is the object's own name."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    name = obj["metadata"]["name"]
    cls = _resource_class(api_version, kind)
    if cls is None:
        # Custom resources (the Karpenter NodePool) keep their whole body.
        custom: pulumi.CustomResource = k8s.apiextensions.CustomResource(
            name, api_version=api_version, kind=kind, metadata=obj["metadata"], spec=obj.get("spec"), opts=opts
        )
        return custom
    kwargs = {_argument(k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    resource: pulumi.CustomResource = cls(name, opts=opts, **kwargs)
    return resource


def register_steps(
    steps: Sequence[Step],
    options: Callable[[list[pulumi.Resource]], pulumi.ResourceOptions],
    former_parent: str | pulumi.Output[str] | None = None,
) -> dict[str, pulumi.CustomResource]:
    """Register a plan (a concern's ``plan`` in :mod:`components.specs`) in order; ``options`` gets the resources a
    step waits for.

    ``former_parent``: the URN of the resource the objects used to be children of; each gets the alias to its URN
    there (:mod:`components.aliases`), so a stack made then keeps its objects.
    """
    done: dict[str, pulumi.CustomResource] = {}
    for step in steps:
        opts = options([done[name] for name in step.after])
        if step.timeout is not None:
            timeouts = pulumi.CustomTimeouts(create=step.timeout, update=step.timeout)
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(custom_timeouts=timeouts))
        if former_parent is not None:
            opts.aliases = [*(opts.aliases or []), former_object(former_parent, step.obj)]
        done[step.name] = register(step.obj, opts)
    return done


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


def _endpoint(status: Any, port: int, cluster_ip: str | None) -> str:
    ingress = ((status or {}).get("load_balancer") or {}).get("ingress") or []
    for entry in ingress:
        host = entry.get("hostname") or entry.get("ip")
        if host:
            return f"http://{host}:{port}"
    return f"http://{cluster_ip}:{port}" if cluster_ip else ""


def service_endpoint(svc: pulumi.CustomResource, port: int) -> pulumi.Output[str]:
    """``http://host:port`` of the Service's load balancer once the cluster reports one, else of its cluster IP."""
    endpoint: pulumi.Output[str] = pulumi.Output.all(svc.status, svc.spec).apply(  # type: ignore[attr-defined]
        lambda parts: _endpoint(parts[0], port, (parts[1] or {}).get("cluster_ip"))
    )
    return endpoint
