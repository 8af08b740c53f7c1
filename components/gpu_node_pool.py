"""GpuNodePool: what makes nodes usable for GPU serving, shared by every model of a stack."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components import specs
from components.capacity import GpuCapacity, PoolScheduling
from components.config import GpuPoolConfig, MonitoringConfig
from components.kube import child_options, register_steps
from components.specs import gpu_pool


@dataclass
class GpuNodePoolArgs:
    pool: GpuPoolConfig
    # The DCGM exporter's ServiceMonitor takes the stack's monitoring labels and scrape interval.
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)


class GpuNodePool(pulumi.ComponentResource):
    """NVIDIA device plugin (DaemonSet, its ConfigMap and a default-deny NetworkPolicy), RuntimeClass, optional
    DCGM exporter (DaemonSet, counters ConfigMap, NetworkPolicy, Service, ServiceMonitor), optional Karpenter
    NodePool.

    ``scheduling`` is the contract workloads follow to land on the pool; ``gpu_budget`` the GPUs it may hold.
    ``capacity`` hands those GPUs out: every ModelService given this pool's ``scheduling`` reserves its peak from
    it, and the one that would exceed ``gpu_budget`` stops the program naming itself.
    """

    scheduling: specs.GpuScheduling
    gpu_budget: int | None
    # (``capacity`` is an attribute, not an output: no class annotation, which the provider host would read.)

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:GpuNodePool", name, None, opts)
        pool = args.pool
        self.capacity: GpuCapacity = GpuCapacity(pool.name, pool.gpu_budget)
        self.scheduling = PoolScheduling.of(specs.gpu_scheduling(pool), self.capacity)
        self.gpu_budget = pool.gpu_budget
        objects = register_steps(
            gpu_pool.plan(pool, args.monitoring), lambda after: child_options(self, opts, depends_on=after)
        )
        self.runtime_class = objects["runtime-class"]
        self.register_outputs({"scheduling": self.scheduling.wire(), "gpu_budget": self.gpu_budget})
