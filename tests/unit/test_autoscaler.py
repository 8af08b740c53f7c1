"""The autoscaler: an autoscaling/v2 HPA on the model's Deployment, with GPU-friendly behavior (driver hpa; KEDA:
test_keda.py)."""

from __future__ import annotations

from typing import Any

import pytest

from components import specs
from components.config import GpuPoolConfig, ModelConfig, MonitoringConfig
from tests.kube_checks import validate_object
from tests.unit.mocking import SERVICE, model, run_model_service

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"

LLAMA = model("prod", "llama-3-1-8b", {"models[0].autoscaling.driver": "hpa"})  # pods metric, scale-down 900
DEV = model("dev")  # cpu metric, 1..2
EXTERNAL = model(
    "dev",
    edits={
        "models[0].autoscaling": {
            "minReplicas": 2,
            "maxReplicas": 6,
            "metric": {
                "type": "external",
                "name": "model_server_requests_waiting",
                "targetValue": "30",
                "selector": {"endpoint": "embeddings"},
            },
            "scaleUpWindowSeconds": 60,
            "scaleDownWindowSeconds": 1200,
        },
        "gpuPool.gpuBudget": 6,
    },
)


def _hpa(m: ModelConfig) -> dict[str, Any]:
    hpa = specs.autoscaler(m)
    assert hpa is not None
    return hpa


@pytest.mark.parametrize(
    ("m", "low", "high"), [(LLAMA, 2, 4), (DEV, 1, 2), (EXTERNAL, 2, 6)], ids=["llama", "dev", "ext"]
)
def test_min_and_max_replicas_follow_the_config(m: ModelConfig, low: int, high: int) -> None:
    spec = _hpa(m)["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high)


@pytest.mark.parametrize("m", [LLAMA, DEV, EXTERNAL], ids=["llama", "dev", "ext"])
def test_the_hpa_scales_the_models_deployment(m: ModelConfig) -> None:
    hpa = _hpa(m)
    deployment = specs.deployment(m, "img:1", specs.gpu_scheduling(GpuPoolConfig()))
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["metadata"]["namespace"] == deployment["metadata"]["namespace"] == m.namespace
    assert hpa["apiVersion"] == "autoscaling/v2"


def test_a_cpu_metric_targets_average_utilization() -> None:
    assert _hpa(DEV)["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    tuned = model("dev", edits={"models[0].autoscaling.metric.targetUtilization": 55})
    assert _hpa(tuned)["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 55


def test_a_pods_metric_targets_an_average_value_per_pod() -> None:
    assert _hpa(LLAMA)["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "vllm:num_requests_waiting"},
                "target": {"type": "AverageValue", "averageValue": "5"},
            },
        }
    ]


def test_an_external_metric_targets_a_value_with_its_selector() -> None:
    assert _hpa(EXTERNAL)["spec"]["metrics"] == [
        {
            "type": "External",
            "external": {
                "metric": {
                    "name": "model_server_requests_waiting",
                    "selector": {"matchLabels": {"endpoint": "embeddings"}},
                },
                "target": {"type": "Value", "value": "30"},
            },
        }
    ]


def test_behavior_adds_one_pod_at_a_time_and_removes_slowly() -> None:
    behavior = _hpa(LLAMA)["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    assert (behavior["scaleUp"]["selectPolicy"], behavior["scaleDown"]["selectPolicy"]) == ("Max", "Min")


def test_stabilization_windows_follow_the_config_and_default_to_ten_minutes_down() -> None:
    assert _hpa(DEV)["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    behavior = _hpa(EXTERNAL)["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 1200


@pytest.mark.parametrize("m", [LLAMA, DEV, EXTERNAL], ids=["llama", "dev", "ext"])
def test_the_hpa_validates_against_the_schema(m: ModelConfig) -> None:
    validate_object(_hpa(m))


def test_there_is_no_hpa_without_autoscaling() -> None:
    m = model("render")
    assert specs.autoscaler(m) is None
    assert specs.scaling.plan(m, MonitoringConfig()) == []
    assert not [r for r in run_model_service(m).resources if r.type == HPA]


def test_the_component_registers_the_hpa_as_its_child() -> None:
    run = run_model_service(LLAMA)
    hpa = run.one(HPA, LLAMA.name)
    assert hpa.parent == run.one(SERVICE, LLAMA.name).urn
    assert hpa.inputs["spec"] == _hpa(LLAMA)["spec"]
    # It scales the workload once that exists.
    assert run.one("kubernetes:apps/v1:Deployment", LLAMA.name).urn in run.options[hpa.urn].dependencies
    # The scaler's only object, as Autoscaler's only child was: one HPA and no ScaledObject.
    assert [r.kind for r in run.resources if r.kind in ("HorizontalPodAutoscaler", "ScaledObject")] == [
        "HorizontalPodAutoscaler"
    ]
