"""ModelService: one model, served end to end in its own namespace. This is what other stacks import."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components import plans, specs
from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.deployment import reserve_gpus
from components.image import IMAGE_TYPE, ModelImageArgs, register_image
from components.kube import child_options, child_urn, register, register_steps, top_level_urn
from components.service import service_endpoint

TYPE = "model-serving:index:ModelService"
# The components ModelService used to nest, by the part of the model each registered: the former parents of its
# objects, which their aliases name.
FORMER_PARENTS = {
    "image": "model-serving:index:ModelImage",
    "deployment": "model-serving:index:ModelDeployment",
    "service": "model-serving:index:LoadBalancedService",
    "routing": "model-serving:index:ModelRouting",
    "autoscaler": "model-serving:index:Autoscaler",
    "monitoring": "model-serving:index:ModelMonitoring",
}


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
    """Namespace; image (a ``docker.Image`` when it builds one); ServiceAccount, Deployment (or LeaderWorkerSet),
    PDB, cache claim, hub-token Secret, pre-stage Job and the canary's Deployment; Services and NetworkPolicy;
    (with autoscaling) the HPA or ScaledObject; (routed through a gateway) the HTTPRoute, InferencePools and
    pickers; (with monitoring enabled) ServiceMonitor, PrometheusRule and dashboard: the objects of ModelImage,
    ModelDeployment, LoadBalancedService, Autoscaler, ModelRouting and ModelMonitoring, registered as its own
    children.

    Those components stay for stacks that compose a model differently; here they would add nothing but one
    registration each, which costs about a third of a Kubernetes object's. Stacks made when ModelService nested
    them keep every object: each carries an alias to the URN it had under its component (:data:`FORMER_PARENTS`).

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
        super().__init__(TYPE, name, None, opts)
        model, monitoring = args.model, args.monitoring

        # Its URN as a string when it has no parent but the stack, so that the aliases below cost no wait.
        own_urn = top_level_urn(TYPE, name) if opts is None or opts.parent is None else self.urn

        def former(part: str) -> str | pulumi.Output[str]:
            """The URN of the component that registered ``part`` of the model before."""
            return child_urn(own_urn, FORMER_PARENTS[part], name)

        def add(part: str, steps: list[plans.Step], *waits: pulumi.Resource) -> dict[str, pulumi.CustomResource]:
            """Register ``part``'s plan as children waiting for ``waits`` too, aliased to their former URNs."""
            options = lambda after: child_options(self, opts, depends_on=[*waits, *after])  # noqa: E731
            return register_steps(steps, options, former_parent=former(part))

        ns = register(specs.namespace(model.namespace), child_options(self, opts))
        image_alias = child_urn(former("image"), IMAGE_TYPE, name)
        self.image_ref = register_image(
            name,
            ModelImageArgs(image=model.image, registry_password=args.registry_password),
            child_options(self, opts, aliases=[image_alias]),
        )
        hub_token = pulumi.Output.secret(args.hub_token) if args.hub_token is not None else None
        canary_image = model.canary.image if model.canary is not None else None
        workload = add(
            "deployment", plans.model_deployment(model, self.image_ref, scheduling, hub_token, canary_image), ns
        )
        network = add("service", plans.load_balanced_service(model, monitoring, args.gateway), ns)
        if model.routing.mode != "service":
            # After the rollouts: a promotion moves requests once the pods that take them are ready.
            add(
                "routing",
                plans.model_routing(model, args.gateway, monitoring),
                ns,
                *workload.values(),
                *network.values(),
            )
        # The scaler targets the workload once it exists (and with it what the workload waits for).
        add("autoscaler", plans.autoscaler(model, monitoring), ns, *workload.values())
        add("monitoring", plans.model_monitoring(model, monitoring), ns)
        self.endpoint = service_endpoint(network["service"], model.service.port)
        self.namespace = pulumi.Output.from_input(model.namespace)
        self.register_outputs({"endpoint": self.endpoint, "image_ref": self.image_ref, "namespace": self.namespace})
