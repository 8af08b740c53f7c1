"""monitoring.enabled: per model a ServiceMonitor, a PrometheusRule of serving alerts and a Grafana dashboard; and the
DCGM exporter of gpuPool.dcgmExporter. Every query names metrics of the exporters' lists."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from components import specs
from components.config import ENGINES, EXPORTERS, GATEWAYS, ModelConfig, MonitoringConfig
from components.config.engines import (
    DCGM,
    DCGM_COUNTERS,
    EXPORTER_ANNOTATION,
    KUBE_STATE_METRICS,
    SCRAPE_METRICS,
    SERVER,
)
from tests.harness import ROOT, STACKS, run_stack
from tests.kube_checks import promql_queries, validate_object
from tests.unit.mocking import SERVICE, model, run_model_service, typed

sys.path.insert(0, str(ROOT / "app"))  # the image runs the server's package from there too
from model_server.metrics import Metrics
from model_serving_policy.promql import metric_names  # the policy pack's own reading of PromQL

PROD = typed("prod")
MONITORING = PROD.monitoring
LLAMA = model("prod", "llama-3-1-8b")  # vllm, GPU
EMBEDDINGS = model("prod", "embeddings")  # server, CPU
LLAMA_70B = model("prod", "llama-3-1-70b")  # vllm, GPU, a LeaderWorkerSet over two nodes
MODELS = [LLAMA, EMBEDDINGS, LLAMA_70B]


def _ids(m: ModelConfig) -> str:
    return m.name


def _model_objects(m: ModelConfig) -> dict[str, dict[str, Any]]:
    return {step.name: step.obj for step in specs.monitoring.plan(m, MONITORING)}


def test_nothing_without_monitoring() -> None:
    off = MonitoringConfig()
    assert specs.monitoring.plan(LLAMA, off) == []
    assert specs.service_monitor(LLAMA, off) is specs.prometheus_rule(LLAMA, off) is None
    assert specs.dashboard_config_map(LLAMA, off) is None
    render = model("render")  # no KEDA, so no Prometheus needed
    kinds = {r.kind for r in run_model_service(render, "render", monitoring=off).resources}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "ConfigMap"}


@pytest.mark.parametrize("m", MODELS, ids=_ids)
def test_the_service_monitor_scrapes_the_serving_ports_metrics_through_the_models_service(m: ModelConfig) -> None:
    monitor = _model_objects(m)["service-monitor"]
    service = specs.service(m)
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"] == m.namespace
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # monitoring.labels, for Prometheus
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [m.namespace]}
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "scheme": "http", "interval": "30s"}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("m", MODELS, ids=_ids)
def test_the_alerts_cover_readiness_backlog_latency_and_pods_pending(m: ModelConfig) -> None:
    rule = _model_objects(m)["alerts"]
    [group] = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {"ModelNotReady", "ModelQueueBacklog", "ModelLatencyHigh", "ModelPodsPending"}
    engine = m.engine_spec
    assert engine.queue_metric in alerts["ModelQueueBacklog"]["expr"]
    assert alerts["ModelQueueBacklog"]["expr"].endswith(f"> {m.alerts.queue_depth}")
    assert alerts["ModelQueueBacklog"]["for"] == f"{m.alerts.queue_minutes}m"
    assert f"{engine.latency_metric}_bucket" in alerts["ModelLatencyHigh"]["expr"]
    assert alerts["ModelLatencyHigh"]["expr"].startswith("histogram_quantile(0.95,")
    # Not ready only once the model had its whole load budget.
    assert alerts["ModelNotReady"]["for"] == f"{-(-m.probes.model_load_seconds // 60) + 5}m"
    for alert in alerts.values():
        assert alert["labels"]["model"] == m.name and alert["labels"]["severity"] in ("warning", "critical")
        assert alert["labels"]["namespace"] == m.namespace  # kept whatever the expression aggregates
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    pending = alerts["ModelPodsPending"]["annotations"]["description"]
    assert ("gpuBudget" in pending) is bool(m.resources.gpus)


def test_alert_thresholds_follow_the_config() -> None:
    m = model("prod", "llama-3-1-8b", {"models[0].alerts": {"queueDepth": 3, "queueMinutes": 15}})
    alerts = {r["alert"]: r for r in specs.alert_rules(m)}
    assert alerts["ModelQueueBacklog"]["expr"].endswith("> 3") and alerts["ModelQueueBacklog"]["for"] == "15m"
    assert alerts["ModelLatencyHigh"]["expr"].endswith("> 60")  # prod sets it; the vllm default too
    assert {r["alert"]: r for r in specs.alert_rules(EMBEDDINGS)}["ModelLatencyHigh"]["expr"].endswith("> 2")


@pytest.mark.parametrize("m", MODELS, ids=_ids)
def test_the_dashboard_is_a_grafana_sidecar_config_map_of_json(m: ModelConfig) -> None:
    config_map = _model_objects(m)["dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(key, text)] = config_map["data"].items()
    assert key == f"{m.name}.json"
    board = json.loads(text)
    assert board["title"] == f"Model {m.name}" and board["panels"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    titles = {p["title"] for p in board["panels"]}
    assert {"Requests waiting", "p95 latency", "Replicas"} <= titles
    assert ("GPU utilization" in titles) is bool(m.resources.gpus)


@pytest.mark.parametrize("m", MODELS, ids=_ids)
def test_every_dashboard_panel_queries_metrics_of_the_engines_list(m: ModelConfig) -> None:
    """The same check as the policy pack's scraped-metrics rule, with the same PromQL reading: the engine's own
    metrics, the DCGM exporter's for GPU panels, kube-state-metrics' for replicas."""
    board = json.loads(next(iter(_model_objects(m)["dashboard"]["data"].values())))
    allowed = set(m.engine_spec.exporter.metrics) | set(DCGM.metrics) | set(KUBE_STATE_METRICS.metrics)
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            assert set(names) <= allowed, (panel["title"], names)
    engine_metrics = {n for p in board["panels"] for t in p["targets"] for n in metric_names(t["expr"])}
    assert engine_metrics & set(m.engine_spec.exporter.metrics) >= {
        m.engine_spec.queue_metric,
        m.engine_spec.running_metric,
    }


def _queries(stack: str) -> list[str]:
    return promql_queries(r.inputs for r in run_stack(stack).kubernetes_objects())


@pytest.mark.parametrize("stack", STACKS)
def test_every_query_of_every_stack_names_only_listed_metrics(stack: str) -> None:
    listed = {m for e in EXPORTERS.values() for m in e.metrics} | set(SCRAPE_METRICS)
    for query in _queries(stack):
        assert set(metric_names(query)) <= listed, query


def test_the_monitored_stacks_hold_queries() -> None:
    # A KEDA trigger per KEDA model (the 8B Llama's); 4 alerts per model; panel targets: 6 per model (two for
    # replicas), 2 more per GPU model (both Llamas), 1 more per model generating tokens (the vLLM ones).
    models = PROD.models
    triggers = sum(1 for m in models if m.keda)
    gpu_models = sum(1 for m in models if m.resources.gpus)
    generating = sum(1 for m in models if m.engine_spec.tokens_metric)
    assert (len(models), triggers, gpu_models, generating) == (3, 1, 2, 2)
    panels = len(models) * 6 + gpu_models * 2 + generating
    assert len(_queries("prod")) == triggers + len(models) * 4 + panels


def test_llamacpp_monitoring_reads_what_llama_server_exports() -> None:
    """llama-server has no latency histogram and no request counter: no latency alert, a tokens panel instead."""
    model = next(m for m in typed("local").models if m.engine == "llamacpp")
    alerts = {r["alert"]: r for r in specs.alert_rules(model)}
    assert set(alerts) == {"ModelNotReady", "ModelQueueBacklog", "ModelPodsPending"}
    assert "llamacpp:requests_deferred" in alerts["ModelQueueBacklog"]["expr"]
    titles = {p["title"]: p for p in specs.dashboard(model)["panels"]}
    assert set(titles) == {"Requests waiting", "Requests running", "Tokens generated per second", "Replicas"}
    assert "llamacpp:tokens_predicted_total" in titles["Tokens generated per second"]["targets"][0]["expr"]


def test_the_component_registers_the_three_objects_as_its_children() -> None:
    run = run_model_service(LLAMA, monitoring=MONITORING)
    component = run.one(SERVICE, LLAMA.name)
    monitoring = ("ConfigMap", "PrometheusRule", "ServiceMonitor")
    children = sorted((r.kind, r.name) for r in run.resources if r.parent == component.urn and r.kind in monitoring)
    assert children == [
        ("ConfigMap", f"{LLAMA.name}-dashboard"),
        ("PrometheusRule", LLAMA.name),
        ("ServiceMonitor", LLAMA.name),
    ]


@pytest.mark.parametrize("m", MODELS, ids=_ids)
def test_the_monitoring_objects_validate(m: ModelConfig) -> None:
    for obj in _model_objects(m).values():
        validate_object(obj)


def test_the_deployment_says_which_exporter_its_pods_are() -> None:
    for m in MODELS:
        workload = specs.workload(m, "img:1", specs.gpu_scheduling(PROD.gpu_pool))
        assert workload["kind"] == ("LeaderWorkerSet" if m.multi_node else "Deployment")
        assert workload["metadata"]["annotations"][EXPORTER_ANNOTATION] == ENGINES[m.engine].exporter.name
        spec = workload["spec"]
        templates = (
            [spec["leaderWorkerTemplate"]["leaderTemplate"], spec["leaderWorkerTemplate"]["workerTemplate"]]
            if m.multi_node
            else [spec["template"]]
        )
        for template in templates:
            assert "annotations" not in template["metadata"] or (
                EXPORTER_ANNOTATION not in template["metadata"]["annotations"]
            ), "on the workload, so that adding it rolls no pod"


def test_gateways_wake_on_metrics_of_listed_exporters() -> None:
    for gateway in GATEWAYS.values():
        assert gateway.exporter.scope == "cluster" and gateway.metric in gateway.exporter.metrics


# --- the DCGM exporter ----------------------------------------------------------------------------------------


def _dcgm(edits: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    stack = typed("prod", edits)
    steps = specs.gpu_pool.plan(stack.gpu_pool, stack.monitoring)
    return {s.name: s.obj for s in steps if s.name.startswith("dcgm")}


def test_the_dcgm_exporter_is_deployed_only_when_enabled() -> None:
    assert set(_dcgm()) == {
        "dcgm-namespace",
        "dcgm-network-policy",
        "dcgm-counters",
        "dcgm-exporter",
        "dcgm-service",
        "dcgm-service-monitor",
    }
    assert _dcgm({"gpuPool.dcgmExporter.enabled": False}) == {}


def test_the_dcgm_exporter_runs_the_pinned_image_on_every_gpu_node() -> None:
    objs = _dcgm()
    pod = objs["dcgm-exporter"]["spec"]["template"]["spec"]
    pool = PROD.gpu_pool
    [container] = pod["containers"]
    assert container["image"] == pool.dcgm_exporter.image and "@sha256:" in container["image"]
    assert pod["nodeSelector"] == dict(pool.node_selector)
    assert {"key": pool.taint.key, "operator": "Exists", "effect": pool.taint.effect} in pod["tolerations"]
    assert pod["runtimeClassName"] == pool.runtime_class  # the GPUs, without requesting any
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert objs["dcgm-namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert objs["dcgm-exporter"]["metadata"]["annotations"] == {EXPORTER_ANNOTATION: "dcgm"}


def test_the_counters_file_is_the_dcgm_metric_list() -> None:
    csv = _dcgm()["dcgm-counters"]["data"]["counters.csv"]
    rows = [line.split(", ", 2) for line in csv.splitlines() if not line.startswith("#")]
    assert [(name, kind) for name, kind, _ in rows] == [(name, kind) for name, kind, _ in DCGM_COUNTERS]
    assert [name for name, _, _ in rows] == list(DCGM.metrics)
    assert not any(name.startswith("DCGM_FI_PROF_") for name, _, _ in rows), "profiling fields need SYS_ADMIN"


def test_only_prometheus_reaches_the_dcgm_exporter() -> None:
    objs = _dcgm()
    policy = objs["dcgm-network-policy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "egress" not in policy
    [rule] = policy["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    monitor = objs["dcgm-service-monitor"]
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True  # the GPU's pod and namespace, not the exporter's
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= objs["dcgm-service"]["metadata"]["labels"].items()
    for obj in objs.values():
        validate_object(obj)


# --- the server engine's list is what app/ exports -----------------------------------------------------------

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "info": ("_info",), "histogram": ("_bucket", "_sum", "_count")}


def _server_exports() -> set[str]:
    """The series names the server's registry exposes, as Prometheus stores them."""
    return {f.name + suffix for f in Metrics().registry.collect() for suffix in SUFFIXES[f.type]}


def test_every_metric_the_server_exports_is_in_its_list() -> None:
    assert _server_exports() <= set(SERVER.metrics)


def test_every_metric_of_the_servers_list_is_exported() -> None:
    assert set(SERVER.metrics) <= _server_exports()
