"""How a model scales: the HorizontalPodAutoscaler (driver hpa) or KEDA's ScaledObject (driver keda), whose
queries :mod:`components.specs.monitoring` writes; :func:`plan` picks one."""

from __future__ import annotations

from components.config import ModelConfig, MonitoringConfig
from components.specs import wire
from components.specs.base import LWS_GROUP, Obj, Step, meta, model_labels
from components.specs.monitoring import scaling_query, wake_query

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "autoscaler",
    "scaled_object",
]


def _hpa_metric(model: ModelConfig) -> wire.MetricSpec:
    assert model.autoscaling is not None
    metric = model.autoscaling.metric
    if metric.type == "cpu":
        return {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": metric.target_utilization},
            },
        }
    # The config requires a pods or external metric's name and its target (components.config.rules).
    assert metric.name is not None
    identifier: wire.MetricIdentifier = {"name": metric.name}
    if metric.selector:
        identifier["selector"] = {"matchLabels": dict(metric.selector)}
    if metric.type == "pods":
        assert metric.target_average_value is not None
        return {
            "type": "Pods",
            "pods": {
                "metric": identifier,
                "target": {"type": "AverageValue", "averageValue": metric.target_average_value},
            },
        }
    assert metric.target_value is not None
    return {
        "type": "External",
        "external": {"metric": identifier, "target": {"type": "Value", "value": metric.target_value}},
    }


def _behavior(model: ModelConfig) -> wire.HorizontalPodAutoscalerBehavior:
    """The HPA's behavior; KEDA passes it to the HPA it creates."""
    assert model.autoscaling is not None
    auto = model.autoscaling
    # GPU pods take minutes to become ready: add one at a time, remove slowly.
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": auto.scale_up_window_seconds,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": auto.scale_down_window_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
        },
    }


def _scale_target(model: ModelConfig) -> wire.CrossVersionObjectReference:
    if model.multi_node:  # the LeaderWorkerSet's scale subresource counts groups
        return {"apiVersion": f"{LWS_GROUP}/v1", "kind": "LeaderWorkerSet", "name": model.name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name}


def autoscaler(model: ModelConfig) -> wire.HorizontalPodAutoscaler | None:
    """The HPA of a model autoscaled with driver hpa (a KEDA-driven model gets the HPA KEDA makes)."""
    auto = model.autoscaling
    if auto is None or model.keda:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(model.name, model.namespace, model_labels(model)),
        "spec": {
            "scaleTargetRef": _scale_target(model),
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [_hpa_metric(model)],
            "behavior": _behavior(model),
        },
    }


def _prometheus_trigger(name: str, url: str, query: str, metric_type: str, threshold: str, activation: str) -> Obj:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": metric_type,
        "metadata": {
            "serverAddress": url,
            "query": query,
            "threshold": threshold,
            "activationThreshold": activation,
        },
    }


def scaled_object(model: ModelConfig, monitoring: MonitoringConfig) -> Obj | None:
    """A KEDA ScaledObject for a model autoscaled with driver keda: a Prometheus trigger on the model's metric and,
    for a model that may scale to zero, one on its gateway's requests, which wakes it."""
    auto = model.autoscaling
    if auto is None or not model.keda:
        return None
    if monitoring.prometheus_url is None:
        raise ValueError(f"model {model.name!r} scales with KEDA but monitoring.prometheusUrl is not set")
    metric = auto.metric
    pods = metric.type == "pods"
    threshold = metric.target_average_value if pods else metric.target_value
    assert threshold is not None
    url = monitoring.prometheus_url
    triggers = [
        _prometheus_trigger(
            "load",
            url,
            scaling_query(model),
            "AverageValue" if pods else "Value",
            threshold,
            auto.activation_threshold,
        )
    ]
    if auto.wake is not None:
        triggers.append(_prometheus_trigger("wake", url, wake_query(model), "AverageValue", "1", "0"))
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(model.name, model.namespace, model_labels(model)),
        "spec": {
            "scaleTargetRef": _scale_target(model),
            "pollingInterval": auto.polling_interval,
            "cooldownPeriod": auto.cooldown_period,
            "minReplicaCount": auto.min_replicas,
            "maxReplicaCount": auto.max_replicas,
            # Prometheus unreachable for three polls: hold this many replicas rather than scale on nothing.
            "fallback": {"failureThreshold": 3, "replicas": auto.fallback},
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(model)}},
            "triggers": triggers,
        },
    }


def plan(model: ModelConfig, monitoring: MonitoringConfig) -> list[Step]:
    """The HPA (driver hpa) or the KEDA ScaledObject (driver keda), never both: KEDA makes an HPA of its own."""
    hpa = autoscaler(model)
    scaled = scaled_object(model, monitoring)
    return [Step("hpa", hpa)] if hpa is not None else [Step("scaled-object", scaled)] if scaled is not None else []
