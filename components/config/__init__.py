"""Typed stack configuration and its validation.

Everything under the ``model-serving:`` config namespace is declared once (kind, default, one line of docs) on
the dataclass of its block: :mod:`.stack` (the top level and the secrets), :mod:`.pool` (``gpuPool``), :mod:`.model`
(``models[i]``) with its blocks in :mod:`.workload`, :mod:`.scaling` and :mod:`.routing`. It is read by
:mod:`.reader`, checked across keys by :mod:`.rules` (within a block) and :mod:`.stack_rules` (across the stack),
and documented from the same declarations by :mod:`.docs` (``docs/config.md`` and the component provider's input
types). Mistakes raise one :class:`ConfigError` listing each of them with its key path
(``models[1].resources.gpus``), before a single resource is registered.
"""

from __future__ import annotations

from decimal import Decimal

from components.config.declare import keys, top_names
from components.config.engines import ENGINES, EXPORTERS, GATEWAYS, Engine, EngineSpec, Exporter
from components.config.errors import ConfigError, Problem
from components.config.kinds import DNS1123_LABEL, ENV_NAME, IMAGE_REF, LABEL_KEY, QUANTITY, parse_quantity
from components.config.model import ModelConfig
from components.config.pool import DcgmExporterConfig, DevicePluginConfig, GpuPoolConfig, KarpenterConfig, Taint
from components.config.reader import parse_stack_config, stack_file_config
from components.config.routing import CanaryConfig, PickerConfig, RoutingConfig, ServiceConfig
from components.config.scaling import Alerts, Autoscaling, Metric
from components.config.stack import GatewayConfig, MonitoringConfig, StackConfig, StackSecrets
from components.config.workload import (
    TMP_SIZE,
    Architecture,
    ImageBuildConfig,
    ImageConfig,
    ModelCache,
    PriorityClassConfig,
    Probes,
    Resources,
    Rollout,
    Toleration,
)

TOP_KEYS = top_names(StackConfig)
SECRET_KEYS = tuple(k.name for k in keys(StackSecrets))


def quantity(value: str) -> Decimal:
    """Parse a Kubernetes quantity (for callers outside this package)."""
    return Decimal(parse_quantity(value))


__all__ = [
    "DNS1123_LABEL",
    "ENGINES",
    "ENV_NAME",
    "EXPORTERS",
    "GATEWAYS",
    "IMAGE_REF",
    "LABEL_KEY",
    "QUANTITY",
    "SECRET_KEYS",
    "TMP_SIZE",
    "TOP_KEYS",
    "Alerts",
    "Architecture",
    "Autoscaling",
    "CanaryConfig",
    "ConfigError",
    "DcgmExporterConfig",
    "DevicePluginConfig",
    "Engine",
    "EngineSpec",
    "Exporter",
    "GatewayConfig",
    "GpuPoolConfig",
    "ImageBuildConfig",
    "ImageConfig",
    "KarpenterConfig",
    "Metric",
    "ModelCache",
    "ModelConfig",
    "MonitoringConfig",
    "PickerConfig",
    "PriorityClassConfig",
    "Probes",
    "Problem",
    "Resources",
    "Rollout",
    "RoutingConfig",
    "ServiceConfig",
    "StackConfig",
    "StackSecrets",
    "Taint",
    "Toleration",
    "parse_quantity",
    "parse_stack_config",
    "quantity",
    "stack_file_config",
]
