"""Autoscaler: an autoscaling/v2 HorizontalPodAutoscaler on the model's Deployment."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import plans
from components.config import ModelConfig
from components.kube import child_options, register_steps


@dataclass
class AutoscalerArgs:
    model: ModelConfig


class Autoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:Autoscaler", name, None, opts)
        steps = plans.autoscaler(args.model)
        if not steps:
            raise ValueError(f"model {args.model.name!r} has no autoscaling config")
        register_steps(steps, lambda after: child_options(self, opts, depends_on=after))
        self.register_outputs({})
