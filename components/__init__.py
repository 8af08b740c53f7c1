"""model-serving components: serve AI models on Kubernetes GPU clusters with Pulumi.

The public surface: ``GpuNodePool`` and ``ModelService`` (the two the component provider serves too),
``InferenceGateway`` for a stack that creates its Gateway, the pool's ``GpuScheduling`` contract and the config
reader. Names load lazily, so the pure modules (``components.sizing``, ``components.specs``) and their CLIs
start without importing the Pulumi SDKs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from components.config import ConfigError, StackConfig, parse_stack_config
    from components.gateway import InferenceGateway, InferenceGatewayArgs
    from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
    from components.model_service import ModelService, ModelServiceArgs
    from components.specs import GpuScheduling

_EXPORTS = {
    "ConfigError": "config",
    "StackConfig": "config",
    "parse_stack_config": "config",
    "GpuNodePool": "gpu_node_pool",
    "GpuNodePoolArgs": "gpu_node_pool",
    "InferenceGateway": "gateway",
    "InferenceGatewayArgs": "gateway",
    "ModelService": "model_service",
    "ModelServiceArgs": "model_service",
    "GpuScheduling": "specs",
}

__all__ = [
    "ConfigError",
    "GpuNodePool",
    "GpuNodePoolArgs",
    "GpuScheduling",
    "InferenceGateway",
    "InferenceGatewayArgs",
    "ModelService",
    "ModelServiceArgs",
    "StackConfig",
    "parse_stack_config",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'components' has no attribute {name!r}")
    return getattr(importlib.import_module(f"components.{_EXPORTS[name]}"), name)
