"""Autoscaler: an autoscaling/v2 HorizontalPodAutoscaler on the model's Deployment."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import specs
from components.config import ModelConfig
from components.kube import child_options, register


@dataclass
class AutoscalerArgs:
    model: ModelConfig


class Autoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: AutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:Autoscaler", name, None, opts)
        hpa = specs.autoscaler(args.model)
        if hpa is None:
            raise ValueError(f"model {args.model.name!r} has no autoscaling config")
        register(hpa, child_options(self, opts))
        self.register_outputs({})
