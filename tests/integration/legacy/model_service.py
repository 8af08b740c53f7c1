"""ModelService as it was until 0.1: one child component per part of the model, each registering that part's objects
as its own children.

tests/integration/test_upgrade.py makes a stack with it, then previews the current program on that state. The six
components it nested are gone from the library; :class:`_Image` and :class:`_Part` stand in for them here, each with
its former type token (``components.aliases.FORMER_PARENTS``), the model's name, and the same objects (the image and
the concerns' plans) as its children, waiting for what the former component waited for, so the state has the old
URNs. tests/unit/test_model_service.py checks under mocks that they are the URNs the current objects' aliases name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components import specs
from components.aliases import FORMER_PARENTS
from components.capacity import reserve
from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.image import register_image
from components.kube import child_options, register, register_steps, service_endpoint
from components.specs import monitoring as monitoring_plan
from components.specs import network, routing, scaling, workloads


@dataclass
class ModelServiceArgs:
    model: ModelConfig
    scheduling: specs.GpuScheduling
    hub_token: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)


class _Part(pulumi.ComponentResource):
    """The former component of ``part`` (ModelDeployment, LoadBalancedService, ...): registers ``steps``, that part's
    plan, as its children."""

    def __init__(
        self,
        part: str,
        name: str,
        steps: list[specs.Step],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__(FORMER_PARENTS[part], name, None, opts)
        self.objects = register_steps(steps, lambda after: child_options(self, opts, depends_on=after))
        self.register_outputs({})


class _Image(pulumi.ComponentResource):
    """The former ModelImage: the model's ``docker.Image`` (when it builds one) as its child; output ``image_ref``."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__(FORMER_PARENTS["image"], name, None, opts)
        self.image_ref = register_image(name, args.model.image, args.registry_password, child_options(self, opts))
        self.register_outputs({"image_ref": self.image_ref})


class ModelService(pulumi.ComponentResource):
    """Namespace, then the image, workload, network, routing, autoscaler and monitoring parts, each a component."""

    endpoint: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        scheduling = reserve(args.model, args.scheduling)
        super().__init__("model-serving:index:ModelService", name, None, opts)
        model, monitoring = args.model, args.monitoring
        ns = register(specs.namespace(model.namespace), child_options(self, opts))
        in_ns = child_options(self, opts, depends_on=[ns])
        image = _Image(name, args, child_options(self, opts))
        hub_token = pulumi.Output.secret(args.hub_token) if args.hub_token is not None else None
        canary_image = model.canary.image if model.canary is not None else None
        deployment = _Part(
            "deployment", name, workloads.plan(model, image.image_ref, scheduling, hub_token, canary_image), in_ns
        )
        service = _Part("service", name, network.plan(model, monitoring, args.gateway), in_ns)
        if model.routing.mode != "service":
            _Part(
                "routing",
                name,
                routing.plan(model, args.gateway, monitoring),
                child_options(self, opts, depends_on=[ns, deployment, service]),
            )
        if model.autoscaling is not None:
            _Part(
                "autoscaler",
                name,
                scaling.plan(model, monitoring),
                child_options(self, opts, depends_on=[ns, deployment]),
            )
        if monitoring.enabled:
            _Part("monitoring", name, monitoring_plan.plan(model, monitoring), in_ns)
        self.endpoint = service_endpoint(service.objects["service"], model.service.port)
        self.image_ref = image.image_ref
        self.namespace = pulumi.Output.from_input(model.namespace)
        self.register_outputs({"endpoint": self.endpoint, "image_ref": self.image_ref, "namespace": self.namespace})
