"""route-backends, inference-pool-selector, inference-pool-metrics: over the objects the program writes for the e2e
stack's routed models, and over the mistakes the program never makes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import specs
from components.config import ModelConfig
from tests.unit.mocking import model, typed

from .builders import check_stack

STACK = typed("e2e")
LLAMA = model("e2e", "llama")  # inference-pool with a canary
EMBEDDINGS = model("e2e", "embeddings")  # gateway


def _objects(m: ModelConfig) -> list[dict[str, Any]]:
    """Everything the program registers for a model but its namespace and autoscaler."""
    scheduling = specs.gpu_scheduling(STACK.gpu_pool)
    steps = [
        *specs.workloads.plan(m, "r/x@sha256:" + "0" * 64, scheduling, "token"),
        *specs.network.plan(m, STACK.monitoring, STACK.gateway),
        *specs.routing.plan(m, STACK.gateway, STACK.monitoring),
    ]
    return [copy.deepcopy(s.obj) for s in steps if s.obj["kind"] not in ("Secret",)]


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("m", [LLAMA, EMBEDDINGS], ids=lambda m: m.name)
@pytest.mark.parametrize("rule", ["route-backends", "inference-pool-selector", "inference-pool-metrics"])
def test_the_programs_routed_models_pass(m: ModelConfig, rule: str) -> None:
    outcome = check_stack(rule, _objects(m))
    assert not outcome and outcome.undecided is None, outcome.violations


def test_a_route_to_a_backend_the_stack_lacks_is_refused() -> None:
    objs = [
        o for o in _objects(LLAMA) if not (o["kind"] == "InferencePool" and o["metadata"]["name"] == "llama-canary")
    ]
    (message,) = check_stack("route-backends", objs).violations
    assert "InferencePool e2e-llama/llama-canary, which this stack does not have" in message


def test_split_weights_must_add_up_to_100() -> None:
    objs = _objects(LLAMA)
    _one(objs, "HTTPRoute", "llama")["spec"]["rules"][0]["backendRefs"][1]["weight"] = 20
    (message,) = check_stack("route-backends", objs).violations
    assert "add up to 110, not 100" in message


def test_a_pool_selecting_nothing_or_the_wrong_port_is_refused() -> None:
    objs = _objects(LLAMA)
    _one(objs, "InferencePool", "llama")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "llama-x"
    _one(objs, "InferencePool", "llama-canary")["spec"]["targetPorts"] = [{"number": 9999}]
    messages = check_stack("inference-pool-selector", objs).violations
    assert len(messages) == 2, messages
    assert any("selects pods labelled" in m and "llama-x" in m for m in messages)
    assert any("port 9999, which its pods" in m for m in messages)


def test_a_pool_of_the_projects_server_is_told_it_has_no_kv_cache() -> None:
    m = model(
        "e2e",
        "embeddings",
        {"models[1].routing": {"mode": "inference-pool", "picker": {"image": LLAMA.routing.picker.image}}},
    )
    (message,) = check_stack("inference-pool-metrics", _objects(m)).violations
    assert "(kvUsageSpec), which engine server does not export" in message
    # Without the KV-cache scorer the picker reads only the server's queue, which it exports.
    off = model(
        "e2e",
        "embeddings",
        {
            "models[1].routing": {
                "mode": "inference-pool",
                "picker": {"image": LLAMA.routing.picker.image, "scorers": {"kvCache": 0}},
            }
        },
    )
    assert not check_stack("inference-pool-metrics", _objects(off))


def test_a_pool_without_its_picker_is_reported() -> None:
    objs = [o for o in _objects(LLAMA) if o["metadata"]["name"] != "llama-epp"]
    messages = check_stack("inference-pool-metrics", objs).violations
    assert messages == ["InferencePool e2e-llama/llama's endpoint picker (Service llama-epp) is not in this stack."]
