"""LoadBalancedService: the model's Service (and its canary's) and the NetworkPolicy admitting only its port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import plans
from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.kube import child_options, register_steps


@dataclass
class LoadBalancedServiceArgs:
    model: ModelConfig
    # With monitoring enabled, the NetworkPolicy also admits Prometheus' scrapes.
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    # The stack's gateway: a routed model's NetworkPolicy admits its proxies.
    gateway: GatewayConfig = field(default_factory=GatewayConfig)


def _endpoint(status: Any, port: int, cluster_ip: str | None) -> str:
    ingress = ((status or {}).get("load_balancer") or {}).get("ingress") or []
    for entry in ingress:
        host = entry.get("hostname") or entry.get("ip")
        if host:
            return f"http://{host}:{port}"
    return f"http://{cluster_ip}:{port}" if cluster_ip else ""


def service_endpoint(svc: pulumi.CustomResource, port: int) -> pulumi.Output[str]:
    """``http://host:port`` of the Service's load balancer once the cluster reports one, else of its cluster IP."""
    endpoint: pulumi.Output[str] = pulumi.Output.all(svc.status, svc.spec).apply(  # type: ignore[attr-defined]
        lambda parts: _endpoint(parts[0], port, (parts[1] or {}).get("cluster_ip"))
    )
    return endpoint


class LoadBalancedService(pulumi.ComponentResource):
    """Output ``endpoint``: the load balancer's hostname or IP once the cluster reports one."""

    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: LoadBalancedServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:LoadBalancedService", name, None, opts)
        model = args.model
        objects = register_steps(
            plans.load_balanced_service(model, args.monitoring, args.gateway),
            lambda after: child_options(self, opts, depends_on=after),
        )
        self.endpoint = service_endpoint(objects["service"], model.service.port)
        self.register_outputs({"endpoint": self.endpoint})
