"""The serving engines a model may run on: one declaration per engine of what it listens on, how it is probed,
whether it uses GPUs and what its HPA scales on by default. The app/ server follows the ``server`` contract."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

Engine = Literal["server", "vllm"]


@dataclass(frozen=True)
class EngineSpec:
    name: Engine
    doc: str
    port: int
    liveness: str
    readiness: str
    model_load_seconds: int
    uses_gpus: bool
    """A GPU engine needs at least one GPU per pod (one by default); a CPU engine must ask for none."""
    metric: Mapping[str, Any]
    """``autoscaling.metric`` when a model autoscales without naming one (stack-config keys)."""

    @property
    def gpus(self) -> int:
        """GPUs per pod when neither ``resources.gpus`` nor an architecture says."""
        return 1 if self.uses_gpus else 0


ENGINES: Mapping[str, EngineSpec] = MappingProxyType(
    {
        "server": EngineSpec(
            name="server",
            doc="the project's image (`app/`): a CPU-bound encoder",
            port=8000,
            liveness="/healthz",
            readiness="/readyz",
            model_load_seconds=600,
            uses_gpus=False,
            metric={"type": "cpu"},  # at Metric.targetUtilization's default
        ),
        "vllm": EngineSpec(
            name="vllm",
            doc="vLLM's OpenAI server on GPUs (args from sizing, probes on `/health`)",
            port=8000,
            liveness="/health",
            readiness="/health",
            model_load_seconds=1800,
            uses_gpus=True,
            # Queue depth: requests waiting for a slot say more about GPU saturation than utilization does.
            metric={"type": "pods", "name": "vllm:num_requests_waiting", "targetAverageValue": "5"},
        ),
    }
)
