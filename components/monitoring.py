"""ModelMonitoring: what makes a model visible to prometheus-operator and Grafana: a ServiceMonitor for the serving
port's /metrics, a PrometheusRule of serving alerts and a dashboard ConfigMap for Grafana's sidecar."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import plans
from components.config import ModelConfig, MonitoringConfig
from components.kube import child_options, register_steps


@dataclass
class ModelMonitoringArgs:
    model: ModelConfig
    monitoring: MonitoringConfig


class ModelMonitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:ModelMonitoring", name, None, opts)
        steps = plans.model_monitoring(args.model, args.monitoring)
        if not steps:
            raise ValueError(f"model {args.model.name!r}: monitoring is not enabled")
        register_steps(steps, lambda after: child_options(self, opts, depends_on=after))
        self.register_outputs({})
