"""The GPU budget holds over every model placed on a pool, however the models are composed.

The stack config checks the budget over its own models list. Reused components (several ``ModelService``s built
from the Python package, each from a config of its own, or served by the component provider) must keep the same
guarantee: the pool hands out its GPUs, and the model that would exceed ``gpuBudget`` stops the program, naming
itself, the pool and the budget, before anything of it is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components import specs
from components.capacity import GpuBudgetError, GpuCapacity, PoolScheduling, reserve
from components.config import GpuPoolConfig, ModelConfig, parse_stack_config
from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from components.kube import register_steps
from components.model_service import ModelService, ModelServiceArgs
from tests import harness
from tests.unit import mocking

IMAGE = "registry.example.com/model-serving/server:0.1.0"


def _model(name: str, *, gpus: int = 1, max_replicas: int = 2, max_surge: int = 0) -> ModelConfig:
    """One model, validated on its own (as another team's stack would, with a config of its own)."""
    raw = {
        "name": name,
        "engine": "vllm" if gpus else "server",  # the server engine runs on CPU only
        "modelId": f"example/{name}",
        "image": {"ref": IMAGE},
        "resources": {"cpu": "2", "memory": "4Gi", "ephemeralStorage": "4Gi", "gpus": gpus},
        "modelCache": {"size": "2Gi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": max_replicas},
        "rollout": {"maxSurge": max_surge, "maxUnavailable": 1},
        "service": {"type": "ClusterIP"},
    }
    return parse_stack_config({"models": [raw]}).models[0]


def _pool(budget: int | None) -> GpuPoolConfig:
    """A pool config on its own: a model without GPUs completes the stack config it is parsed from."""
    raw: dict[str, Any] = {"gpuMemory": "24Gi"} | ({"gpuBudget": budget} if budget is not None else {})
    cpu_only = {"name": "cpu-only", "modelId": "-", "image": {"ref": IMAGE}, "resources": {"gpus": 0}}
    return parse_stack_config({"gpuPool": raw, "models": [cpu_only]}).gpu_pool


def _run(build: Callable[[], Any]) -> tuple[BaseException | None, list[harness.Registered]]:
    """Run ``build`` as a program under mocks: the error it stopped with (if any) and what it registered."""
    monitor = mocking._Monitor(mocking._Recorder(None))
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=harness.PROJECT, stack="unit", preview=False, monitor=monitor)
    try:
        _sync_await(run_pulumi_func(build))
    except Exception as error:
        return error, monitor.registered
    return None, monitor.registered


def _two_services(budget: int | None, second: ModelConfig) -> tuple[BaseException | None, list[harness.Registered]]:
    def build() -> None:
        pool = GpuNodePool("gpu", GpuNodePoolArgs(pool=_pool(budget)))
        ModelService("embeddings", ModelServiceArgs(model=_model("embeddings"), scheduling=pool.scheduling))
        ModelService(second.name, ModelServiceArgs(model=second, scheduling=pool.scheduling))

    return _run(build)


def test_models_within_the_budget_share_the_pool() -> None:
    error, registered = _two_services(4, _model("reranker"))
    assert error is None
    assert sorted(r.name for r in registered if r.type == "model-serving:index:ModelService") == [
        "embeddings",
        "reranker",
    ]


def test_the_model_that_exceeds_the_budget_stops_the_program_naming_itself_and_the_budget() -> None:
    error, registered = _two_services(3, _model("reranker"))
    assert error is not None
    message = str(error)
    assert "model 'reranker' does not fit GPU pool 'gpu'" in message, message
    assert "it may run 2 GPUs at peak ((maxReplicas 2 + maxSurge 0) × 1 GPU)" in message, message
    assert "reserve 2 ('embeddings' 2)" in message and "gpuPool.gpuBudget is 3" in message, message
    # Nothing of the model that does not fit was registered; the one before it was.
    assert not [r for r in registered if "reranker" in r.urn]
    assert [r for r in registered if r.name == "embeddings" and r.type == "model-serving:index:ModelService"]


def test_surge_and_gpus_per_replica_count_toward_the_peak() -> None:
    big = _model("llm", gpus=2, max_replicas=2, max_surge=1)
    assert big.peak_gpus == 6
    error, _ = _two_services(7, big)
    assert error is not None and "may run 6 GPUs at peak ((maxReplicas 2 + maxSurge 1) × 2 GPUs)" in str(error)
    assert _two_services(8, big)[0] is None


def test_a_pool_without_a_budget_takes_any_number_of_models() -> None:
    assert _two_services(None, _model("llm", gpus=8, max_replicas=10))[0] is None


def test_a_model_deployment_used_on_its_own_reserves_too() -> None:
    """A stack that registers a model's workload plan itself, without ModelService, reserves from the same ledger:
    ``components.capacity.reserve`` stops the model that does not fit before any of its objects is registered."""
    bare: list[specs.GpuScheduling] = []
    pools: list[GpuNodePool] = []

    def build() -> None:
        pool = GpuNodePool("gpu", GpuNodePoolArgs(pool=_pool(2)))
        pools.append(pool)
        for name in ("a", "b"):
            model = _model(name)
            scheduling = reserve(model, pool.scheduling)
            bare.append(scheduling)
            register_steps(
                specs.workloads.plan(model, IMAGE, scheduling, None),
                lambda after: pulumi.ResourceOptions(depends_on=after),
            )

    error, registered = _run(build)
    assert isinstance(error, GpuBudgetError) and "model 'b' does not fit GPU pool 'gpu'" in str(error)
    deployments = [r.name for r in registered if r.type == "kubernetes:apps/v1:Deployment"]
    assert deployments == ["a"], "nothing of the model that does not fit is registered"
    assert [r.model for r in pools[0].capacity.reservations] == ["a"]
    # The builders get the pool's contract alone, without its ledger.
    (scheduling,) = bare
    assert not isinstance(scheduling, PoolScheduling)
    assert scheduling == specs.gpu_scheduling(_pool(2))


def test_a_model_service_reserves_once_for_itself_and_its_deployment() -> None:
    def build() -> None:
        pool = GpuNodePool("gpu", GpuNodePoolArgs(pool=_pool(2)))
        ModelService("only", ModelServiceArgs(model=_model("only"), scheduling=pool.scheduling))
        assert pool.capacity.reserved == 2
        assert [r.model for r in pool.capacity.reservations] == ["only"]

    assert _run(build)[0] is None


# --- the ledger itself ------------------------------------------------------------------------------


def test_a_budget_set_after_the_reservations_is_checked_against_them() -> None:
    capacity = GpuCapacity("gpu")
    capacity.reserve(_model("a"))
    capacity.reserve(_model("b"))
    with pytest.raises(GpuBudgetError, match=r"may run 4 GPUs at peak \('a' 2, 'b' 2\), more than its gpuBudget 3"):
        capacity.limit(3)
    capacity.limit(4)
    with pytest.raises(GpuBudgetError, match=r"has gpuBudget 4, but another gpuPool block for it says 8"):
        capacity.limit(8)
    capacity.limit(None)  # a block without a budget says nothing about it
    assert capacity.budget == 4
