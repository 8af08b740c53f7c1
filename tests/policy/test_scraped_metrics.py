"""scraped-metrics: what an HPA, a KEDA trigger or an alert names must be exported by a target Prometheus scrapes for
it; and hpa-target / gpu-budget for KEDA ScaledObjects."""

from __future__ import annotations

from typing import Any

import pytest
from model_serving_policy.exporters import EXPORTERS
from model_serving_policy.promql import metric_names
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from .builders import (
    POLICIES,
    check_stack,
    deployment,
    hpa,
    node_pool,
    pod_monitor,
    prometheus_rule,
    scaled_object,
    service,
    service_monitor,
    set_path,
)

WAITING = 'sum(vllm:num_requests_waiting{namespace="models",service="llm"})'


def _scraped(exporter: str = "vllm", **kwargs: Any) -> list[dict[str, Any]]:
    """A model Deployment exporting ``exporter``'s metrics, its Service, and a ServiceMonitor selecting it."""
    svc = set_path(service(), "metadata.labels", {"app": "llm"})
    return [deployment(exporter=exporter, **kwargs), svc, service_monitor()]


def _pods_metric(name: str) -> dict[str, Any]:
    return {"type": "Pods", "pods": {"metric": {"name": name}, "target": {"type": "AverageValue", "averageValue": "5"}}}


def _external_metric(name: str) -> dict[str, Any]:
    return {"type": "External", "external": {"metric": {"name": name}, "target": {"type": "Value", "value": "5"}}}


# --- the triggers, metrics and alerts of a scraped model ----------------------------------------------------


def test_a_scaled_object_on_a_metric_the_scraped_engine_exports_passes() -> None:
    assert not check_stack("scraped-metrics", [*_scraped(), scaled_object(queries=[WAITING])])


def test_a_misspelt_trigger_metric_is_named() -> None:
    query = 'sum(vllm:num_request_waiting{namespace="models"})'
    out = check_stack("scraped-metrics", [*_scraped(), scaled_object(queries=[query])])
    assert len(out.violations) == 1
    assert "ScaledObject models/llm triggers (t0) on 'vllm:num_request_waiting'" in out.text()
    assert "Deployment models/llm (exporter vllm)" in out.text()


def test_the_other_engines_metric_is_not_this_models() -> None:
    query = 'sum(model_server_requests_waiting{namespace="models"})'
    out = check_stack("scraped-metrics", [*_scraped("vllm"), scaled_object(queries=[query])])
    assert "'model_server_requests_waiting'" in out.text()
    assert not check_stack("scraped-metrics", [*_scraped("server"), scaled_object(queries=[query])])


@pytest.mark.parametrize(
    "scrape",
    [
        pytest.param(lambda: [pod_monitor()], id="pod-monitor"),
        pytest.param(
            lambda: [set_path(service(), "metadata.labels", {"app": "llm"}), service_monitor()], id="service-monitor"
        ),
    ],
)
def test_a_pod_or_service_monitor_makes_a_workload_scraped(scrape: Any) -> None:
    objs = [deployment(exporter="vllm"), *scrape(), scaled_object(queries=[WAITING])]
    assert not check_stack("scraped-metrics", objs)


def test_a_workload_nobody_scrapes_exports_nothing() -> None:
    """Without a monitor of the stack the pack cannot know what the cluster scrapes: it says so, as advice."""
    objs = [deployment(exporter="vllm"), service(), scaled_object(queries=[WAITING])]
    out = check_stack("scraped-metrics-unmonitored", objs)
    assert "(scraped: none;" in out.text()
    assert not check_stack("scraped-metrics", objs), "not proven missing: no refusal"
    # A ServiceMonitor of another namespace does not scrape it either.
    objs += [set_path(service_monitor(), "spec.namespaceSelector", {"matchNames": ["other"]})]
    assert check_stack("scraped-metrics-unmonitored", objs)
    assert POLICIES["scraped-metrics-unmonitored"].enforcement_level == EnforcementLevel.ADVISORY
    assert POLICIES["scraped-metrics"].enforcement_level == EnforcementLevel.MANDATORY


def test_an_hpa_reads_a_metric_under_its_adapters_name() -> None:
    """prometheus-adapter serves vllm:num_requests_waiting as vllm_num_requests_waiting (vLLM production-stack's
    adapter rules do): a monitored model's HPA on that name passes; a misspelt one is still refused."""
    objs = _scraped("vllm")
    assert not check_stack("scraped-metrics", [*objs, hpa(metrics=[_pods_metric("vllm_num_requests_waiting")])])
    assert not check_stack("scraped-metrics", [*objs, hpa(metrics=[_external_metric("vllm_num_requests_waiting")])])
    out = check_stack("scraped-metrics", [*objs, hpa(metrics=[_pods_metric("vllm_num_request_waiting")])])
    assert "per-pod metric 'vllm_num_request_waiting'" in out.text()
    # KEDA and alerts query Prometheus itself: no adapter renames their metrics.
    query = 'sum(vllm_num_requests_waiting{namespace="models"})'
    assert check_stack("scraped-metrics", [*objs, scaled_object(queries=[query])])


def test_an_adapters_further_names_come_from_the_config() -> None:
    objs = [*_scraped("vllm"), hpa(metrics=[_pods_metric("llm_queue_depth")])]
    assert check_stack("scraped-metrics", objs)
    assert not check_stack("scraped-metrics", objs, {"adapterMetrics": ["llm_queue_depth"]})


def test_an_hpa_on_a_workload_the_cluster_scrapes_by_annotation_is_advice_only() -> None:
    """Annotation-based scraping, no monitor of the stack: the cluster's adapter may serve any name."""
    d = set_path(deployment(exporter="vllm"), "spec.template.metadata.annotations", {"prometheus.io/scrape": "true"})
    objs = [d, hpa(metrics=[_pods_metric("vllm_queue_len")])]
    assert not check_stack("scraped-metrics", objs)
    assert "per-pod metric 'vllm_queue_len'" in check_stack("scraped-metrics-unmonitored", objs).text()


def test_annotation_based_scraping_counts() -> None:
    d = set_path(deployment(exporter="vllm"), "spec.template.metadata.annotations", {"prometheus.io/scrape": "true"})
    assert not check_stack("scraped-metrics", [d, scaled_object(queries=[WAITING])])


def test_a_scraped_workload_that_does_not_say_what_it_exports_is_named() -> None:
    out = check_stack("scraped-metrics", [*_scraped(None), scaled_object(queries=[WAITING])])
    assert "Deployment models/llm (no known model-serving.dev/exporter)" in out.text()


def test_an_hpa_pods_metric_must_be_the_scaled_workloads_own() -> None:
    objs = _scraped("server")
    assert not check_stack("scraped-metrics", [*objs, hpa(metrics=[_pods_metric("model_server_requests_in_flight")])])
    out = check_stack("scraped-metrics", [*objs, hpa(metrics=[_pods_metric("requests_in_flight")])])
    assert "per-pod metric 'requests_in_flight'" in out.text()
    # Exported by another scraped workload of the namespace is not enough: a Pods metric is the target's own.
    other = [deployment("other", exporter="vllm", labels={"app": "other"}), pod_monitor("other")]
    out = check_stack("scraped-metrics", [*objs, *other, hpa(metrics=[_pods_metric("vllm:num_requests_waiting")])])
    assert "per-pod metric 'vllm:num_requests_waiting'" in out.text()


def test_an_hpa_external_metric_may_come_from_any_scraped_target_of_the_namespace() -> None:
    objs = _scraped("server")
    assert not check_stack("scraped-metrics", [*objs, hpa(metrics=[_external_metric("model_server_requests_total")])])
    out = check_stack("scraped-metrics", [*objs, hpa(metrics=[_external_metric("sqs_messages_visible")])])
    assert "external metric 'sqs_messages_visible'" in out.text()


def test_a_cpu_hpa_names_no_metric() -> None:
    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}
    assert not check_stack("scraped-metrics", [deployment(), hpa(metrics=[cpu])])


def test_alerts_read_scraped_and_cluster_metrics_and_their_own_records() -> None:
    rules = [
        {"alert": "Backlog", "expr": "avg(vllm:num_requests_waiting) > 10"},
        {"alert": "NotReady", "expr": "kube_deployment_status_replicas_available < kube_deployment_spec_replicas"},
        {"alert": "Down", "expr": 'up{service="llm"} == 0'},
        {"record": "llm:waiting:avg", "expr": "avg(vllm:num_requests_waiting)"},
        {"alert": "Recorded", "expr": "llm:waiting:avg > 10"},
    ]
    assert not check_stack("scraped-metrics", [*_scraped(), prometheus_rule(rules=rules)])
    typo = prometheus_rule(
        rules=[{"alert": "Slow", "expr": "histogram_quantile(0.95, rate(vllm:e2e_latency[5m])) > 1"}]
    )
    out = check_stack("scraped-metrics", [*_scraped(), typo])
    assert "alert Slow reads 'vllm:e2e_latency'" in out.text()


def test_cluster_exporters_are_those_the_config_says_the_cluster_scrapes() -> None:
    rule = prometheus_rule(rules=[{"alert": "Pending", "expr": "sum(kube_pod_status_unschedulable) > 0"}])
    assert not check_stack("scraped-metrics", [*_scraped(), rule])
    out = check_stack("scraped-metrics", [*_scraped(), rule], {"clusterExporters": []})
    assert "'kube_pod_status_unschedulable'" in out.text() and "cluster exporters: none" in out.text()
    wake = 'clamp_max(sum(rate(istio_requests_total{destination_service_name="llm"}[2m])), 1)'
    so = scaled_object(queries=[WAITING, wake])
    assert not check_stack("scraped-metrics", [*_scraped(), so])
    assert check_stack("scraped-metrics", [*_scraped(), so], {"clusterExporters": ["kube-state-metrics"]})


def test_gpu_metrics_come_from_a_scraped_dcgm_exporter_of_any_namespace() -> None:
    rule = prometheus_rule(rules=[{"alert": "Idle", "expr": 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="models"}) < 5'}])
    assert check_stack("scraped-metrics", [*_scraped(), rule]), "no DCGM exporter: no GPU metrics"
    dcgm = deployment("dcgm-exporter", "gpu-monitoring", gpus=0, exporter="dcgm", labels={"app": "dcgm-exporter"})
    dcgm["kind"] = "DaemonSet"
    dcgm["spec"].pop("strategy")
    assert not check_stack("scraped-metrics", [*_scraped(), rule, dcgm, pod_monitor("dcgm-exporter", "gpu-monitoring")])


def test_an_unknown_query_is_undecided_not_passed() -> None:
    so = set_path(scaled_object(), "spec.triggers[0].metadata.query", UNKNOWN_STRING_VALUE)
    out = check_stack("scraped-metrics", [*_scraped(), so])
    assert not out.violations and out.undecided and "query" in out.undecided


def test_the_exporter_lists_name_no_metric_twice_and_parse_as_metric_names() -> None:
    for name, (_, metrics) in EXPORTERS.items():
        assert len(set(metrics)) == len(metrics), name
        for metric in metrics:
            assert metric_names(metric) == [metric], metric


# --- KEDA in the other rules ----------------------------------------------------------------------------------


def test_a_scaled_object_target_must_leave_replicas_unset() -> None:
    out = check_stack("hpa-target", [deployment(replicas=2), scaled_object()])
    assert "sets spec.replicas although ScaledObject models/llm scales it" in out.text()
    assert not check_stack("hpa-target", [deployment(), scaled_object()])


def test_a_scaled_object_of_a_missing_workload_is_named() -> None:
    out = check_stack("hpa-target", [scaled_object("nothing")])
    assert "ScaledObject models/nothing scales Deployment models/nothing, which is not in this stack" in out.text()


def test_an_hpa_next_to_a_scaled_object_passes_while_a_model_moves_to_keda() -> None:
    """`up --refresh` shows the stack analysis the HPA about to be deleted next to the new ScaledObject."""
    assert not check_stack("hpa-target", [deployment(), hpa(metrics=[]), scaled_object()])


def test_the_gpu_budget_counts_a_scaled_objects_maximum() -> None:
    objs = [deployment(gpus=2), scaled_object(min_replicas=0, max_replicas=5), node_pool(gpu_limit=8)]
    out = check_stack("gpu-budget", objs)
    assert "5 ScaledObject maxReplicaCount" in out.text()
    assert not check_stack("gpu-budget", [deployment(gpus=2), scaled_object(max_replicas=4), node_pool(gpu_limit=8)])
