"""ModelService as it was until it registered its objects itself: one child component per part of the model.

tests/integration/test_upgrade.py makes a stack with it, then previews the current program on that state. It composes
the standalone components, which stay for reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components import specs
from components.autoscaler import Autoscaler, AutoscalerArgs
from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.deployment import ModelDeployment, ModelDeploymentArgs, reserve_gpus
from components.image import ModelImage, ModelImageArgs
from components.kube import child_options, register
from components.monitoring import ModelMonitoring, ModelMonitoringArgs
from components.routing import ModelRouting, ModelRoutingArgs
from components.service import LoadBalancedService, LoadBalancedServiceArgs


@dataclass
class ModelServiceArgs:
    model: ModelConfig
    scheduling: specs.GpuScheduling
    hub_token: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    # The stack's monitoring block: ServiceMonitor, alerts and dashboard when enabled; KEDA's Prometheus.
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    # The stack's Gateway, which a model with routing.mode gateway or inference-pool attaches its HTTPRoute to.
    gateway: GatewayConfig = field(default_factory=GatewayConfig)


class ModelService(pulumi.ComponentResource):
    """Namespace, ModelImage, ModelDeployment, LoadBalancedService, (with autoscaling) Autoscaler, (routed through
    a gateway) ModelRouting and (with monitoring enabled) ModelMonitoring.

    ``scheduling`` from a ``GpuNodePool`` carries the pool's GPU ledger: the model reserves its peak GPUs from it
    before registering anything, so several ModelServices on one pool never exceed its ``gpuBudget``.

    Outputs: ``endpoint``, ``image_ref``, ``namespace``.
    """

    endpoint: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # First of all: a model the pool has no GPUs left for registers nothing.
        scheduling = reserve_gpus(args.model, args.scheduling)
        super().__init__("model-serving:index:ModelService", name, None, opts)
        model = args.model
        ns = register(specs.namespace(model.namespace), child_options(self, opts))
        in_ns = child_options(self, opts, depends_on=[ns])
        image = ModelImage(
            name,
            ModelImageArgs(image=model.image, registry_password=args.registry_password),
            child_options(self, opts),
        )
        deployment = ModelDeployment(
            name,
            ModelDeploymentArgs(
                model=model,
                image_ref=image.image_ref,
                scheduling=scheduling,
                hub_token=args.hub_token,
                canary_image_ref=model.canary.image if model.canary is not None else None,
            ),
            in_ns,
        )
        monitoring = args.monitoring
        service = LoadBalancedService(
            name, LoadBalancedServiceArgs(model=model, monitoring=monitoring, gateway=args.gateway), in_ns
        )
        if model.routing.mode != "service":
            # After the rollouts: a promotion moves requests once the pods that take them are ready.
            ModelRouting(
                name,
                ModelRoutingArgs(model=model, gateway=args.gateway, monitoring=monitoring),
                child_options(self, opts, depends_on=[ns, deployment, service]),
            )
        if model.autoscaling is not None:
            Autoscaler(
                name,
                AutoscalerArgs(model=model, monitoring=monitoring),
                child_options(self, opts, depends_on=[ns, deployment]),
            )
        if monitoring.enabled:
            ModelMonitoring(name, ModelMonitoringArgs(model=model, monitoring=monitoring), in_ns)
        self.endpoint = service.endpoint
        self.image_ref = image.image_ref
        self.namespace = pulumi.Output.from_input(model.namespace)
        self.register_outputs({"endpoint": self.endpoint, "image_ref": self.image_ref, "namespace": self.namespace})
