"""model-serving components: serve AI models on Kubernetes GPU clusters with Pulumi.

Names load lazily, so the pure modules (``components.sizing``, ``components.specs``) and their CLIs
start without importing the Pulumi SDKs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from components.autoscaler import Autoscaler, AutoscalerArgs
    from components.config import ConfigError, StackConfig, parse_stack_config
    from components.deployment import ModelDeployment, ModelDeploymentArgs
    from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
    from components.image import ModelImage, ModelImageArgs
    from components.model_service import ModelService, ModelServiceArgs
    from components.monitoring import ModelMonitoring, ModelMonitoringArgs
    from components.routing import InferenceGateway, InferenceGatewayArgs, ModelRouting, ModelRoutingArgs
    from components.service import LoadBalancedService, LoadBalancedServiceArgs
    from components.specs import GpuScheduling

_EXPORTS = {
    "Autoscaler": "autoscaler",
    "AutoscalerArgs": "autoscaler",
    "ConfigError": "config",
    "StackConfig": "config",
    "parse_stack_config": "config",
    "ModelDeployment": "deployment",
    "ModelDeploymentArgs": "deployment",
    "GpuNodePool": "gpu_node_pool",
    "GpuNodePoolArgs": "gpu_node_pool",
    "ModelImage": "image",
    "ModelImageArgs": "image",
    "ModelService": "model_service",
    "ModelServiceArgs": "model_service",
    "ModelMonitoring": "monitoring",
    "ModelMonitoringArgs": "monitoring",
    "InferenceGateway": "routing",
    "InferenceGatewayArgs": "routing",
    "ModelRouting": "routing",
    "ModelRoutingArgs": "routing",
    "LoadBalancedService": "service",
    "LoadBalancedServiceArgs": "service",
    "GpuScheduling": "specs",
}

__all__ = [
    "Autoscaler",
    "AutoscalerArgs",
    "ConfigError",
    "GpuNodePool",
    "GpuNodePoolArgs",
    "GpuScheduling",
    "InferenceGateway",
    "InferenceGatewayArgs",
    "LoadBalancedService",
    "LoadBalancedServiceArgs",
    "ModelDeployment",
    "ModelDeploymentArgs",
    "ModelImage",
    "ModelImageArgs",
    "ModelMonitoring",
    "ModelMonitoringArgs",
    "ModelRouting",
    "ModelRoutingArgs",
    "ModelService",
    "ModelServiceArgs",
    "StackConfig",
    "parse_stack_config",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'components' has no attribute {name!r}")
    return getattr(importlib.import_module(f"components.{_EXPORTS[name]}"), name)
