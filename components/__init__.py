"""model-serving components: serve AI models on Kubernetes GPU clusters with Pulumi."""

from components.autoscaler import Autoscaler, AutoscalerArgs
from components.config import ConfigError, StackConfig, parse_stack_config
from components.deployment import ModelDeployment, ModelDeploymentArgs
from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from components.image import ModelImage, ModelImageArgs
from components.model_service import ModelService, ModelServiceArgs
from components.service import LoadBalancedService, LoadBalancedServiceArgs
from components.specs import GpuScheduling

__all__ = [
    "Autoscaler",
    "AutoscalerArgs",
    "ConfigError",
    "GpuNodePool",
    "GpuNodePoolArgs",
    "GpuScheduling",
    "LoadBalancedService",
    "LoadBalancedServiceArgs",
    "ModelDeployment",
    "ModelDeploymentArgs",
    "ModelImage",
    "ModelImageArgs",
    "ModelService",
    "ModelServiceArgs",
    "StackConfig",
    "parse_stack_config",
]
