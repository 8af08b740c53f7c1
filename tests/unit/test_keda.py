"""Autoscaling with driver keda: a KEDA ScaledObject instead of an HPA, scaling on queue depth, and to zero only with a
signal that can wake the model."""

from __future__ import annotations

from typing import Any

import pytest

from components import specs
from components.config import GATEWAYS, ModelConfig, MonitoringConfig, StackConfig
from tests.kube_checks import validate_object
from tests.unit.mocking import SERVICE, model, run_model_service, typed

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PROD = typed("prod")
LLAMA = model("prod", "llama-3-1-8b")  # driver keda, pods metric vllm:num_requests_waiting, 2..4
URL = "http://prometheus-operated.monitoring.svc:9090"
ZERO = {"models[0].autoscaling.minReplicas": 0, "models[0].autoscaling.wake": "istio"}


def _keda(edits: dict[str, Any] | None = None) -> tuple[ModelConfig, StackConfig]:
    stack = typed("prod", edits)
    return stack.models[0], stack


def _scaled(edits: dict[str, Any] | None = None) -> dict[str, Any]:
    m, stack = _keda(edits)
    obj = specs.scaled_object(m, stack.monitoring)
    assert obj is not None
    return obj


def test_a_keda_model_gets_a_scaled_object_and_no_hpa() -> None:
    assert specs.autoscaler(LLAMA) is None
    [step] = specs.scaling.plan(LLAMA, PROD.monitoring)
    assert step.obj["kind"] == "ScaledObject" and step.name == "scaled-object"
    # The HPA driver gets no ScaledObject: never both, KEDA makes an HPA of its own.
    hpa_model = model("prod", "llama-3-1-8b", {"models[0].autoscaling.driver": "hpa"})
    assert specs.scaled_object(hpa_model, PROD.monitoring) is None
    assert [s.obj["kind"] for s in specs.scaling.plan(hpa_model, PROD.monitoring)] == ["HorizontalPodAutoscaler"]


def test_the_deployment_leaves_its_replica_count_to_keda() -> None:
    deployment = specs.deployment(LLAMA, "img:1", specs.gpu_scheduling(PROD.gpu_pool))
    assert "replicas" not in deployment["spec"]


def test_the_scaled_object_scales_the_models_deployment_between_its_bounds() -> None:
    obj = _scaled()
    assert obj["metadata"] == {"name": LLAMA.name, "namespace": LLAMA.namespace, "labels": specs.model_labels(LLAMA)}
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": LLAMA.name}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 4)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (30, 300)
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 2}  # minReplicas by default


def test_queue_depth_is_a_prometheus_trigger_on_the_models_scraped_series() -> None:
    [trigger] = _scaled()["spec"]["triggers"]
    assert trigger == {
        "type": "prometheus",
        "name": "load",
        "metricType": "AverageValue",  # per pod: KEDA divides the sum by the replicas
        "metadata": {
            "serverAddress": URL,
            "query": 'sum(vllm:num_requests_waiting{namespace="prod-llama-3-1-8b",service="llama-3-1-8b"})',
            "threshold": "5",
            "activationThreshold": "0",
        },
    }


def test_an_external_metric_compares_the_models_total_and_the_selector_narrows_it() -> None:
    metric = {"type": "external", "name": "vllm:num_requests_waiting", "targetValue": "20", "selector": {"a": 'x"y'}}
    [trigger] = _scaled({"models[0].autoscaling.metric": metric})["spec"]["triggers"]
    assert trigger["metricType"] == "Value"
    assert trigger["metadata"]["threshold"] == "20"
    assert trigger["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{namespace="prod-llama-3-1-8b",service="llama-3-1-8b",a="x\\"y"})'
    )


def test_settings_pass_through() -> None:
    spec = _scaled(
        {
            "models[0].autoscaling.activationThreshold": "2",
            "models[0].autoscaling.cooldownPeriod": 900,
            "models[0].autoscaling.pollingInterval": 15,
            "models[0].autoscaling.fallbackReplicas": 3,
            "models[0].autoscaling.scaleUpWindowSeconds": 30,
        }
    )["spec"]
    assert spec["triggers"][0]["metadata"]["activationThreshold"] == "2"
    assert (spec["cooldownPeriod"], spec["pollingInterval"], spec["fallback"]["replicas"]) == (900, 15, 3)
    # The HPA behavior windows reach the HPA KEDA makes.
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 30
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 900  # prod's scaleDownWindowSeconds
    hpa_twin = specs.autoscaler(model("prod", "llama-3-1-8b", {"models[0].autoscaling.driver": "hpa"}))
    assert hpa_twin is not None and behavior["scaleDown"] == hpa_twin["spec"]["behavior"]["scaleDown"]


@pytest.mark.parametrize("gateway", sorted(GATEWAYS))
def test_scale_to_zero_adds_a_wake_trigger_on_the_gateways_requests(gateway: str) -> None:
    spec = _scaled({**ZERO, "models[0].autoscaling.wake": gateway})["spec"]
    assert spec["minReplicaCount"] == 0
    assert spec["fallback"]["replicas"] == 1  # never zero while Prometheus is unreachable
    load, wake = spec["triggers"]
    assert load["name"] == "load" and wake["name"] == "wake"
    g = GATEWAYS[gateway]
    labels = ",".join(
        f'{k}="{v.format(namespace="prod-llama-3-1-8b", service="llama-3-1-8b")}"' for k, v in g.labels.items()
    )
    assert wake["metadata"]["query"] == f"clamp_max(sum(rate({g.metric}{{{labels}}}[2m])), 1)"
    # At most 1 (clamp_max) against a threshold of 1: it wakes the model, queue depth scales it further.
    assert (wake["metricType"], wake["metadata"]["threshold"], wake["metadata"]["activationThreshold"]) == (
        "AverageValue",
        "1",
        "0",
    )


def test_without_a_prometheus_url_the_builder_refuses() -> None:
    with pytest.raises(ValueError, match="prometheusUrl"):
        specs.scaled_object(LLAMA, MonitoringConfig())


def test_the_component_registers_the_scaled_object_as_its_only_child() -> None:
    run = run_model_service(LLAMA, monitoring=PROD.monitoring)
    scaled = run.one(SCALED_OBJECT, LLAMA.name)
    assert scaled.parent == run.one(SERVICE, LLAMA.name).urn
    assert scaled.inputs["spec"] == _scaled()["spec"]
    # The scaler's only object: no HPA of the stack's own (KEDA makes one).
    assert [r.kind for r in run.resources if r.kind in ("ScaledObject", "HorizontalPodAutoscaler")] == ["ScaledObject"]


def test_the_scaled_object_validates_as_a_kubernetes_object() -> None:
    validate_object(_scaled())
    validate_object(_scaled(ZERO))
