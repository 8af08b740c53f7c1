"""ModelRouting: a routed model's HTTPRoute, and in mode inference-pool its InferencePools and endpoint pickers.
InferenceGateway: the Gateway a stack creates for its routed models (``gateway.gatewayClassName``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from components import plans, traffic
from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.kube import child_options, register_steps


@dataclass
class ModelRoutingArgs:
    model: ModelConfig
    gateway: GatewayConfig
    # With monitoring enabled, the pickers' NetworkPolicies admit Prometheus' scrapes.
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)


class ModelRouting(pulumi.ComponentResource):
    """Output ``route``: the HTTPRoute (`namespace/name`); ``backends``: each backend (Service or InferencePool) and the
    share of requests (%) it takes."""

    route: pulumi.Output[str]
    backends: pulumi.Output[dict[str, int]]

    def __init__(self, name: str, args: ModelRoutingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:ModelRouting", name, None, opts)
        model = args.model
        if model.routing.mode == "service":
            raise ValueError(f"model {model.name!r} has routing.mode service: its Service is its route")
        objects = register_steps(
            plans.model_routing(model, args.gateway, args.monitoring),
            lambda after: child_options(self, opts, depends_on=after),
        )
        self.http_route = objects["route"]
        self.route = pulumi.Output.from_input(f"{model.namespace}/{model.name}")
        self.backends = pulumi.Output.from_input({track.instance: weight for track, weight in traffic.split(model)})
        self.register_outputs({"route": self.route, "backends": self.backends})


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
            plans.gateway(args.gateway, args.models), lambda after: child_options(self, opts, depends_on=after)
        )
        self.gateway = objects["gateway"]
        self.gateway_name = pulumi.Output.from_input(f"{args.gateway.namespace}/{args.gateway.name}")
        self.register_outputs({"gateway": self.gateway_name})
