"""What Prometheus and Grafana get from a model: every PromQL query the program writes (autoscaling triggers,
alerts, dashboards), the ServiceMonitor, the PrometheusRule and the dashboard's ConfigMap; :func:`plan`, the
objects monitoring.enabled adds."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from components.config import GATEWAYS, ModelConfig, MonitoringConfig
from components.specs import wire
from components.specs.base import (
    HTTP_PORT_NAME,
    METRICS_PATH,
    PART_OF,
    Obj,
    Step,
    config_map,
    meta,
    model_labels,
    model_selector,
)

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "WAKE_WINDOW",
    "alert_rules",
    "dashboard",
    "dashboard_config_map",
    "model_series",
    "prometheus_rule",
    "scaling_query",
    "scrape_labels",
    "selector",
    "service_monitor",
    "service_monitor_for",
    "wake_query",
]


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(labels: Mapping[str, str]) -> str:
    """A PromQL label selector, ``{a="1",b="2"}``."""
    return "{" + ",".join(f"{k}={_quoted(v)}" for k, v in labels.items()) + "}"


def scrape_labels(model: ModelConfig) -> dict[str, str]:
    """The labels Prometheus gives the series its ServiceMonitor scrapes: the model's namespace and Service."""
    return {"namespace": model.namespace, "service": model.name}


def model_series(model: ModelConfig, metric: str, extra: Mapping[str, str] | None = None) -> str:
    return metric + selector({**scrape_labels(model), **(extra or {})})


def _replicas(model: ModelConfig) -> tuple[str, str]:
    """kube-state-metrics' series of the model's ready and wanted replicas. A multi-node model's are its
    LeaderWorkerSet's leader StatefulSet's, one pod per group, ready once its group serves."""
    if model.multi_node:
        labels = selector({"namespace": model.namespace, "statefulset": model.name})
        return f"kube_statefulset_status_replicas_ready{labels}", f"kube_statefulset_replicas{labels}"
    labels = selector({"namespace": model.namespace, "deployment": model.name})
    return f"kube_deployment_status_replicas_available{labels}", f"kube_deployment_spec_replicas{labels}"


def _p95(model: ModelConfig, window: str = "5m") -> str:
    bucket = model_series(model, f"{model.engine_spec.latency_metric}_bucket")
    return f"histogram_quantile(0.95, sum by (le) (rate({bucket}[{window}])))"


def scaling_query(model: ModelConfig) -> str:
    """The model's metric summed over its pods: KEDA divides it by the replicas for a pods metric (AverageValue)
    and compares the sum itself for an external one (Value)."""
    assert model.autoscaling is not None and model.autoscaling.metric.name is not None
    metric = model.autoscaling.metric
    return f"sum({model_series(model, str(metric.name), metric.selector)})"


WAKE_WINDOW = "2m"  # at least two scrapes of the gateway at a usual 30 s or 1 m interval


def wake_query(model: ModelConfig) -> str:
    """1 while the gateway in front of the model saw requests for its Service in the last minutes, else 0: it can
    only ask for one replica (threshold 1), queue depth does the rest."""
    assert model.autoscaling is not None and model.autoscaling.wake is not None
    gateway = GATEWAYS[model.autoscaling.wake]
    labels = {k: v.format(namespace=model.namespace, service=model.name) for k, v in gateway.labels.items()}
    return f"clamp_max(sum(rate({gateway.metric}{selector(labels)}[{WAKE_WINDOW}])), 1)"


def service_monitor_for(
    name: str,
    ns: str,
    labels: Mapping[str, str],
    service_labels: Mapping[str, str],
    port: str,
    monitoring: MonitoringConfig,
    *,
    honor_labels: bool = False,
) -> Obj:
    endpoint: Obj = {"port": port, "path": METRICS_PATH, "scheme": "http", "interval": monitoring.scrape_interval}
    if honor_labels:
        endpoint["honorLabels"] = True
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(name, ns, {**labels, **monitoring.labels}),
        "spec": {
            "selector": {"matchLabels": dict(service_labels)},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": [endpoint],
        },
    }


def service_monitor(model: ModelConfig, monitoring: MonitoringConfig) -> Obj | None:
    """Prometheus scrapes the serving port's /metrics through the model's Service."""
    if not monitoring.enabled:
        return None
    labels = model_labels(model)
    return service_monitor_for(model.name, model.namespace, labels, model_selector(model), HTTP_PORT_NAME, monitoring)


def _alert(name: str, expr: str, minutes: int, severity: str, model: ModelConfig, summary: str, text: str) -> Obj:
    return {
        "alert": name,
        "expr": expr,
        "for": f"{minutes}m",
        # namespace: an aggregated expression (avg, sum) drops it, and Alertmanager routes teams' alerts by it
        "labels": {"severity": severity, "model": model.name, "namespace": model.namespace},
        "annotations": {"summary": summary, "description": text},
    }


def alert_rules(model: ModelConfig) -> list[Obj]:
    """The serving alerts: not ready, a backlog, slow answers, pods that find no room (no GPU left)."""
    engine, alerts = model.engine_spec, model.alerts
    load_minutes = math.ceil(model.probes.model_load_seconds / 60) + 5
    waiting = model_series(model, engine.queue_metric)
    available, wanted = _replicas(model)
    pending = "kube_pod_status_unschedulable" + selector({"namespace": model.namespace})
    room = "room on the nodes"
    if model.resources.gpus:
        room = "GPUs: the GPU pool's budget (gpuPool.gpuBudget) or its nodes are used up"
    return [
        _alert(
            "ModelNotReady",
            f"{available} < {wanted}",
            load_minutes,
            "critical",
            model,
            f"Model {model.name} has fewer ready replicas than it should",
            f"Replicas of {model.name} have not become ready within the model's load budget "
            f"(probes.modelLoadSeconds {model.probes.model_load_seconds}s).",
        ),
        _alert(
            "ModelQueueBacklog",
            f"avg({waiting}) > {alerts.queue_depth}",
            alerts.queue_minutes,
            "warning",
            model,
            f"Requests queue up at model {model.name}",
            f"More than {alerts.queue_depth} requests wait per pod of {model.name} on average; the autoscaler is at "
            "its maximum or cannot add pods.",
        ),
        *(
            [
                _alert(
                    "ModelLatencyHigh",
                    f"{_p95(model)} > {alerts.p95_latency_seconds:g}",
                    10,
                    "warning",
                    model,
                    f"Model {model.name} answers slowly",
                    f"The 95th percentile request latency of {model.name} is above {alerts.p95_latency_seconds:g}s.",
                )
            ]
            if engine.latency_metric is not None  # an engine without a latency histogram gets no latency alert
            else []
        ),
        _alert(
            "ModelPodsPending",
            f"sum({pending}) > 0",
            10,
            "warning",
            model,
            f"Pods of model {model.name} cannot be scheduled",
            f"Pods of {model.name} wait for {room}.",
        ),
    ]


def prometheus_rule(model: ModelConfig, monitoring: MonitoringConfig) -> Obj | None:
    if not monitoring.enabled:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta(model.name, model.namespace, {**model_labels(model), **monitoring.labels}),
        "spec": {"groups": [{"name": f"{model.name}.serving", "rules": alert_rules(model)}]},
    }


def _panel(panel_id: int, title: str, unit: str, queries: Mapping[str, str]) -> Obj:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * ((panel_id - 1) % 2), "y": 8 * ((panel_id - 1) // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(queries.items())
        ],
    }


def dashboard(model: ModelConfig) -> Obj:
    """A Grafana dashboard of the model's engine metrics (and its GPUs', from the DCGM exporter)."""
    engine = model.engine_spec
    panels: list[tuple[str, str, dict[str, str]]] = [
        ("Requests waiting", "short", {"waiting": f"sum({model_series(model, engine.queue_metric)})"}),
        ("Requests running", "short", {"running": f"sum({model_series(model, engine.running_metric)})"}),
    ]
    # Each engine's panels from the counters it has: an encoder generates no tokens, llama.cpp counts no requests.
    if engine.requests_metric is not None:
        rps = f"sum(rate({model_series(model, engine.requests_metric)}[5m]))"
        panels.append(("Requests per second", "reqps", {"rps": rps}))
    if engine.tokens_metric is not None:
        tps = f"sum(rate({model_series(model, engine.tokens_metric)}[5m]))"
        panels.append(("Tokens generated per second", "short", {"tokens/s": tps}))
    if engine.latency_metric is not None:
        panels.append(("p95 latency", "s", {"p95": _p95(model)}))
    panels.append(("Replicas", "short", dict(zip(("ready", "wanted"), _replicas(model), strict=True))))
    if model.resources.gpus:
        gpu = selector({"namespace": model.namespace})  # the DCGM exporter labels each GPU with its pod
        panels += [
            ("GPU utilization", "percent", {"{{pod}}": f"avg by (pod) (DCGM_FI_DEV_GPU_UTIL{gpu})"}),
            ("GPU memory used", "decmbytes", {"{{pod}}": f"sum by (pod) (DCGM_FI_DEV_FB_USED{gpu})"}),
        ]
    return {
        "title": f"Model {model.name}",
        "uid": f"model-serving-{model.namespace}"[:40],
        "tags": [PART_OF, model.engine],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": [_panel(i, title, unit, queries) for i, (title, unit, queries) in enumerate(panels, start=1)],
    }


def dashboard_config_map(model: ModelConfig, monitoring: MonitoringConfig) -> wire.ConfigMap | None:
    """The dashboard as Grafana's dashboard sidecar (kube-prometheus-stack) picks it up: label grafana_dashboard."""
    if not monitoring.enabled:
        return None
    labels = {**model_labels(model), "grafana_dashboard": "1"}
    body = json.dumps(dashboard(model), indent=2, sort_keys=True)
    return config_map(f"{model.name}-dashboard", model.namespace, labels, {f"{model.name}.json": body})


def plan(model: ModelConfig, monitoring: MonitoringConfig) -> list[Step]:
    """ServiceMonitor, PrometheusRule, Grafana dashboard ConfigMap (monitoring.enabled)."""
    built = {
        "service-monitor": service_monitor(model, monitoring),
        "alerts": prometheus_rule(model, monitoring),
        "dashboard": dashboard_config_map(model, monitoring),
    }
    return [Step(name, obj) for name, obj in built.items() if obj is not None]
