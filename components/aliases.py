"""The URN aliases that keep the objects of stacks made by earlier versions, in one place.

Until 0.1, ``ModelService`` nested one component per part of the model (``ModelImage``, ``ModelDeployment``,
``LoadBalancedService``, ``ModelRouting``, ``Autoscaler``, ``ModelMonitoring``) and the objects were their children.
Since then ModelService registers the objects itself; each carries an alias to the URN it had under its former
parent, so ``pulumi up`` on such a stack moves every object instead of replacing it (running GPU pods included).

When they can go: once every stack made before 0.2 has run one ``pulumi up`` with 0.2 or later (the state then holds
the current URNs), in the next major version. A stack that never ran the nested layout pays only the cost of strings
(no Outputs: the URNs are computed as text when the ModelService's parent is the stack).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

# The components ModelService used to nest, by the part of the model each registered.
FORMER_PARENTS = {
    "image": "model-serving:index:ModelImage",
    "deployment": "model-serving:index:ModelDeployment",
    "service": "model-serving:index:LoadBalancedService",
    "routing": "model-serving:index:ModelRouting",
    "autoscaler": "model-serving:index:Autoscaler",
    "monitoring": "model-serving:index:ModelMonitoring",
}


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


def former_parent(service_urn: str | pulumi.Output[str], part: str, name: str) -> str | pulumi.Output[str]:
    """The URN of the component that registered ``part`` of the ModelService ``name`` (whose URN is given)."""
    return child_urn(service_urn, FORMER_PARENTS[part], name)


def former_object(parent: str | pulumi.Output[str], obj: Mapping[str, object]) -> str | pulumi.Output[str]:
    """The URN a wire-form Kubernetes object had as a child of ``parent``."""
    metadata = obj["metadata"]
    assert isinstance(metadata, dict)
    return child_urn(parent, type_token(str(obj["apiVersion"]), str(obj["kind"])), str(metadata["name"]))
