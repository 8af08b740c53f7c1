"""Registers a wire-form Kubernetes object from :mod:`components.specs` as its typed Pulumi resource."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

if TYPE_CHECKING:
    from components.plans import Step


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


def register(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
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
    """Register a plan (:mod:`components.plans`) in order; ``options`` gets the resources a step waits for.

    ``former_parent``: the URN of the resource the objects used to be children of; each gets the alias to its URN
    there, so a stack made then keeps its objects.
    """
    done: dict[str, pulumi.CustomResource] = {}
    for step in steps:
        opts = options([done[name] for name in step.after])
        if step.timeout is not None:
            timeouts = pulumi.CustomTimeouts(create=step.timeout, update=step.timeout)
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(custom_timeouts=timeouts))
        if former_parent is not None:
            obj = step.obj
            token = type_token(obj["apiVersion"], obj["kind"])
            opts.aliases = [*(opts.aliases or []), child_urn(former_parent, token, obj["metadata"]["name"])]
        done[step.name] = register(step.obj, opts)
    return done


def type_token(api_version: str, kind: str) -> str:
    """The Pulumi type of a Kubernetes kind: ``kubernetes:apps/v1:Deployment``, ``kubernetes:core/v1:Namespace``."""
    return f"kubernetes:{api_version if '/' in api_version else f'core/{api_version}'}:{kind}"


def top_level_urn(type_: str, name: str) -> str:
    """The URN the engine gives a resource of this stack whose only parent is the stack."""
    return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_}::{name}"


def child_urn(parent: str | pulumi.Output[str], type_: str, name: str) -> str | pulumi.Output[str]:
    """The URN of a child ``type_`` named ``name`` of the resource whose URN is ``parent``.

    A string when ``parent`` is one. The SDK turns an alias into the URN it names: from a string at the cost of
    a few Outputs, from an ``Alias`` at the cost of about as many as registering a component.
    """
    if isinstance(parent, str):
        stack_and_types, _, _ = parent.rpartition("::")
        return f"{stack_and_types}${type_}::{name}"
    return parent.apply(lambda urn: child_urn(urn, type_, name))


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
