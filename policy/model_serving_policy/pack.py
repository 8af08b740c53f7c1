"""The pack: its name and every policy, in the order the engine runs them."""

from __future__ import annotations

from pulumi_policy import Policy, PolicyPack

from .rules import (
    autoscaling,
    availability,
    exemptions,
    gpu,
    images,
    metrics,
    namespaces,
    networking,
    priority,
    resources,
    routing,
    security,
    weights,
)

PACK_NAME = "model-serving-policies"


def all_policies() -> list[Policy]:
    """Every policy of the pack. ``exempted-resources`` comes last: it reports the
    exemptions the other policies applied earlier in the same run."""
    return [
        *resources.POLICIES,
        *gpu.POLICIES,
        *images.POLICIES,
        *weights.POLICIES,
        *security.POLICIES,
        *autoscaling.POLICIES,
        *metrics.POLICIES,
        *availability.POLICIES,
        *priority.POLICIES,
        *networking.POLICIES,
        *routing.POLICIES,
        *namespaces.POLICIES,
        *exemptions.POLICIES,
    ]


def build_pack() -> None:
    """Serve the pack to the Pulumi engine. Never returns (PolicyPack serves forever)."""
    PolicyPack(name=PACK_NAME, policies=all_policies())
