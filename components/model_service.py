"""ModelService: one model, served end to end in its own namespace. This is what other stacks import."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components import aliases, specs
from components.capacity import GpuBudgetError, reserve
from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.image import IMAGE_TYPE, register_image
from components.kube import child_options, register, register_steps, service_endpoint
from components.specs import admission, network, routing, scaling, workloads
from components.specs import monitoring as monitoring_plan

TYPE = "model-serving:index:ModelService"


@dataclass
class ModelServiceArgs:
    model: ModelConfig
    # The pool's contract; GpuNodePool's carries its GPU ledger, from which the model reserves its peak.
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
    pickers; (with monitoring enabled) ServiceMonitor, PrometheusRule and dashboard. Each concern's plan
    (:mod:`components.specs`) is registered as its children; stacks made when ModelService nested a component per
    concern keep their objects through :mod:`components.aliases`.

    ``scheduling`` from a ``GpuNodePool`` carries the pool's GPU ledger: the model reserves its peak GPUs from it
    before registering anything, so several ModelServices on one pool never exceed its ``gpuBudget``.

    Outputs: ``endpoint``, ``image_ref``, ``namespace``.
    """

    endpoint: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # First of all: a model the pool has no GPUs left for registers nothing.
        try:
            scheduling = reserve(args.model, args.scheduling)
        except GpuBudgetError as error:
            raise pulumi.RunError(str(error)) from None
        super().__init__(TYPE, name, None, opts)
        model, monitoring = args.model, args.monitoring

        # Its URN as a string when it has no parent but the stack, so that the aliases below cost no wait.
        own_urn = aliases.top_level_urn(TYPE, name) if opts is None or opts.parent is None else self.urn

        def add(part: str, steps: list[specs.Step], *waits: pulumi.Resource) -> dict[str, pulumi.CustomResource]:
            """Register ``part``'s plan as children waiting for ``waits`` too, aliased to their former URNs (a part
            added since the nested components has none)."""
            options = lambda after: child_options(self, opts, depends_on=[*waits, *after])  # noqa: E731
            former = aliases.former_parent(own_urn, part, name) if part in aliases.FORMER_PARENTS else None
            return register_steps(steps, options, former_parent=former)

        ns = register(specs.namespace(model.namespace), child_options(self, opts))
        image_alias = aliases.child_urn(aliases.former_parent(own_urn, "image", name), IMAGE_TYPE, name)
        self.image_ref = register_image(
            name, model.image, args.registry_password, child_options(self, opts, aliases=[image_alias])
        )
        hub_token = pulumi.Output.secret(args.hub_token) if args.hub_token is not None else None
        canary_image = model.canary.image if model.canary is not None else None
        # The class, limits and quota admission checks each pod against come before the first pod.
        admitted = add("admission", admission.plan(model, scheduling), ns)
        workload = add(
            "deployment",
            workloads.plan(model, self.image_ref, scheduling, hub_token, canary_image),
            ns,
            *admitted.values(),
        )
        served = add("service", network.plan(model, monitoring, args.gateway), ns)
        if model.routing.mode != "service":
            # After the rollouts: a promotion moves requests once the pods that take them are ready.
            add("routing", routing.plan(model, args.gateway, monitoring), ns, *workload.values(), *served.values())
        # The scaler targets the workload once it exists (and with it what the workload waits for).
        add("autoscaler", scaling.plan(model, monitoring), ns, *workload.values())
        add("monitoring", monitoring_plan.plan(model, monitoring), ns)
        self.endpoint = service_endpoint(served["service"], model.service.port)
        self.namespace = pulumi.Output.from_input(model.namespace)
        self.register_outputs({"endpoint": self.endpoint, "image_ref": self.image_ref, "namespace": self.namespace})
