"""InferenceGateway: the Gateway a stack creates for its routed models (``gateway.gatewayClassName``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.config import GatewayConfig, ModelConfig
from components.kube import child_options, register_steps
from components.specs import routing


@dataclass
class InferenceGatewayArgs:
    gateway: GatewayConfig
    # The routed models: the listener admits HTTPRoutes from their namespaces only.
    models: Sequence[ModelConfig]


class InferenceGateway(pulumi.ComponentResource):
    """Its namespace and the Gateway. Output ``gateway``: `namespace/name`."""

    gateway_name: pulumi.Output[str]

    def __init__(self, name: str, args: InferenceGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:InferenceGateway", name, None, opts)
        objects = register_steps(
            routing.gateway_plan(args.gateway, args.models), lambda after: child_options(self, opts, depends_on=after)
        )
        self.gateway = objects["gateway"]
        self.gateway_name = pulumi.Output.from_input(f"{args.gateway.namespace}/{args.gateway.name}")
        self.register_outputs({"gateway": self.gateway_name})
