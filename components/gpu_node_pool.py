"""GpuNodePool: what makes nodes usable for GPU serving, shared by every model of a stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pulumi

from components import specs
from components.config import GpuPoolConfig
from components.kube import child_options, register


@dataclass
class GpuNodePoolArgs:
    pool: GpuPoolConfig


class GpuNodePool(pulumi.ComponentResource):
    """NVIDIA device plugin (DaemonSet and its ConfigMap), RuntimeClass, optional Karpenter NodePool.

    ``scheduling`` is the contract workloads follow to land on the pool; ``gpu_budget`` the GPUs it may hold.
    """

    scheduling: specs.GpuScheduling
    gpu_budget: int | None

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("model-serving:index:GpuNodePool", name, None, opts)
        pool = args.pool
        child = child_options(self, opts)
        self.scheduling = specs.gpu_scheduling(pool)
        self.gpu_budget = pool.gpu_budget
        self.runtime_class = register(specs.runtime_class(pool), child)
        if pool.device_plugin.enabled:
            ns = register(specs.namespace(pool.device_plugin.namespace, pod_security="privileged"), child)
            after_ns = child_options(self, opts, depends_on=[ns])
            config = register(specs.device_plugin_config(pool), after_ns)
            register(
                specs.device_plugin_daemon_set(pool),
                child_options(self, opts, depends_on=[ns, config]),
            )
        node_pool = specs.karpenter_node_pool(pool)
        if node_pool is not None:
            register(node_pool, child)
        self.register_outputs({"scheduling": asdict(self.scheduling), "gpu_budget": self.gpu_budget})
