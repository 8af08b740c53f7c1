"""Autoscaler: an autoscaling/v2 HorizontalPodAutoscaler (driver hpa) or a KEDA ScaledObject (driver keda) on the
model's Deployment."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components import plans
from components.config import ModelConfig, MonitoringConfig
from components.kube import child_options, register_steps


@dataclass
class AutoscalerArgs:
    model: ModelConfig
    # Where a ScaledObject's triggers query (monitoring.prometheusUrl).
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)


class Autoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:Autoscaler", name, None, opts)
        steps = plans.autoscaler(args.model, args.monitoring)
        if not steps:
            raise ValueError(f"model {args.model.name!r} has no autoscaling config")
        register_steps(steps, lambda after: child_options(self, opts, depends_on=after))
        self.register_outputs({})
