"""The e2e stack's KEDA ScaledObject, ServiceMonitors, PrometheusRules, dashboards and DCGM exporter on the real API
server: the CRDs the local cluster installs from their Go modules (cluster-assets crds), every new object accepted
by server-side apply (`make up`), held as the program wrote it, its PromQL parsed by Prometheus' parser; then the
embeddings model moved to KEDA with scale to zero, and the stack destroyed.

The e2e stack's models run on fake GPU nodes, so what is checked here is that the API server takes the objects;
KEDA and Prometheus acting on a stack's objects are test_addons.py's (the `local` stack, on the real node).
The tests of this module run in order and share one deployed stack.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from components import specs
from components.config import SECRET_KEYS, StackConfig, parse_stack_config
from tests.e2e.conftest import Kube, Stack, new_stack, wait_until
from tests.harness import ROOT
from tests.kube_checks import promql_queries
from tests.project import Project

STACK = "e2e"
ASSETS = ROOT / ".tools" / "bin" / "cluster-assets"
CRDS = [
    "scaledobjects.keda.sh",
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "inferencepools.inference.networking.k8s.io",
    "inferenceobjectives.inference.networking.x-k8s.io",
    "leaderworkersets.leaderworkerset.x-k8s.io",
]
DCGM_NAMESPACE = "nvidia-dcgm-exporter"


@pytest.fixture(scope="module")
def deployed(e2e_project: Project, hub_token: str) -> Stack:
    stack = new_stack(e2e_project, STACK, secrets={"hubToken": hub_token})
    stack.make("up")
    return stack


def _config(stack: Stack) -> StackConfig:
    raw = {k: v for k, v in stack.project.config(STACK).items() if k not in SECRET_KEYS}
    return parse_stack_config(raw, has_hub_token=True)


def _live(kube: Kube, kind: str, name: str, namespace: str) -> dict[str, Any]:
    """The object as the API server holds it, with its managed fields (kubectl leaves them out by default)."""
    obj: dict[str, Any] = kube.get(kind, name, "-n", namespace, "--show-managed-fields")
    return obj


def _applied(obj: dict[str, Any]) -> bool:
    """Whether the object was written by server-side apply (Pulumi's provider with enable_server_side_apply)."""
    return any(f.get("operation") == "Apply" for f in obj["metadata"].get("managedFields", []))


def test_the_crds_from_the_go_modules_are_established(kube: Kube) -> None:
    for name in CRDS:
        crd = kube.get("crd", name)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", name


def _addon(obj: dict[str, Any]) -> bool:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "model-serving-local"


def _owner_kinds(obj: dict[str, Any]) -> set[str]:
    return {owner["kind"] for owner in obj["metadata"].get("ownerReferences", [])}


def test_the_keda_model_has_a_scaled_object_and_no_hpa(deployed: Stack, kube: Kube) -> None:
    config = _config(deployed)
    for model in config.models:
        if model.autoscaling is None:
            assert not kube.items("hpa", model.namespace), model.name
            continue
        if not model.keda:
            assert kube.items("hpa", model.namespace), model.name
            continue
        live = _live(kube, "scaledobjects.keda.sh", model.name, model.namespace)
        assert _applied(live)
        sent = specs.scaled_object(model, config.monitoring)
        assert sent is not None
        spec = live["spec"]
        for key in ("scaleTargetRef", "minReplicaCount", "maxReplicaCount", "cooldownPeriod", "pollingInterval"):
            assert spec[key] == sent["spec"][key], key
        assert spec["triggers"] == sent["spec"]["triggers"]
        assert (
            spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
            == (sent["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"])
        )
        # KEDA (an add-on of the local cluster) drives it through an HPA of its own; the program makes none.
        owners = [_owner_kinds(h) for h in kube.items("hpa", model.namespace)]
        assert owners == [{"ScaledObject"}], "a KEDA model's only HPA is KEDA's"
        deployment = _live(kube, "deployment", model.name, model.namespace)
        # Its pods are fake (kwok), so its query finds no series: KEDA holds the lower bound.
        assert deployment["spec"]["replicas"] == max(1, model.autoscaling.min_replicas)
        applied = [f for f in deployment["metadata"]["managedFields"] if f.get("operation") == "Apply"]
        assert applied and not any(
            '"f:replicas"' in json.dumps(f.get("fieldsV1", {}).get("f:spec", {})) for f in applied
        ), "the program does not own spec.replicas"


def test_every_model_has_its_monitor_alerts_and_dashboard(deployed: Stack, kube: Kube) -> None:
    config = _config(deployed)
    for model in config.models:
        ns = model.namespace
        monitor = _live(kube, "servicemonitors.monitoring.coreos.com", model.name, ns)
        assert _applied(monitor)
        assert monitor["spec"]["endpoints"][0]["port"] == "http"
        assert monitor["metadata"]["labels"]["release"] == config.monitoring.labels["release"]
        rule = _live(kube, "prometheusrules.monitoring.coreos.com", model.name, ns)
        assert _applied(rule)
        assert {r["alert"] for r in rule["spec"]["groups"][0]["rules"]} == {
            "ModelNotReady",
            "ModelQueueBacklog",
            "ModelLatencyHigh",
            "ModelPodsPending",
        }
        dashboard = _live(kube, "configmap", f"{model.name}-dashboard", ns)
        assert _applied(dashboard) and dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(dashboard["data"][f"{model.name}.json"])["panels"]


def test_the_dcgm_exporter_runs_on_the_gpu_nodes_and_is_monitored(deployed: Stack, kube: Kube) -> None:
    namespace = kube.get("namespace", DCGM_NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    exporter = _live(kube, "daemonset", "dcgm-exporter", DCGM_NAMESPACE)
    assert _applied(exporter)
    status = exporter["status"]
    # The pool's GPU nodes the exporter tolerates: the fake ones (the real node's taint keeps node agents off it).
    gpu_nodes = [
        n
        for n in kube.items("nodes")
        if "nvidia.com/gpu" in n["status"].get("allocatable", {}) and n["metadata"]["labels"].get("type") == "kwok"
    ]
    assert status["desiredNumberScheduled"] == len(gpu_nodes) > 0
    assert status["numberReady"] == status["desiredNumberScheduled"]
    monitor = _live(kube, "servicemonitors.monitoring.coreos.com", "dcgm-exporter", DCGM_NAMESPACE)
    assert _applied(monitor) and monitor["spec"]["endpoints"][0]["honorLabels"] is True
    assert kube.exists("service", "dcgm-exporter", DCGM_NAMESPACE)
    assert kube.exists("configmap", "dcgm-exporter-counters", DCGM_NAMESPACE)


def _held_queries(kube: Kube) -> list[str]:
    objects = [
        *kube.items("scaledobjects.keda.sh"),
        *kube.items("prometheusrules.monitoring.coreos.com"),
        *kube.items("configmaps", selector="grafana_dashboard=1"),
    ]
    return promql_queries(objects)


def test_every_query_the_api_server_holds_parses_with_prometheus_parser(deployed: Stack, kube: Kube) -> None:
    queries = _held_queries(kube)
    assert len(queries) > 10
    result = subprocess.run(
        [str(ASSETS), "promql"], input="\n".join(queries) + "\n", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_embeddings_model_moves_to_keda_and_may_scale_to_zero(deployed: Stack, kube: Kube) -> None:
    """An update from an HPA to a ScaledObject that may scale to zero, woken by the gateway's requests."""
    config = deployed.project.config(STACK)
    embeddings = next(m for m in config["models"] if m["name"] == "embeddings")
    embeddings["autoscaling"] = {
        "driver": "keda",
        "minReplicas": 0,
        "maxReplicas": 3,
        "metric": {"type": "pods", "name": "model_server_requests_waiting", "targetAverageValue": "4"},
        "cooldownPeriod": 600,
        "wake": "istio",
    }
    deployed.project.edit_config(STACK, {"models": config["models"]})
    deployed.make("up")
    live = _live(kube, "scaledobjects.keda.sh", "embeddings", "e2e-embeddings")
    assert _applied(live)
    assert (live["spec"]["minReplicaCount"], live["spec"]["cooldownPeriod"]) == (0, 600)
    assert [t["name"] for t in live["spec"]["triggers"]] == ["load", "wake"]
    assert "istio_requests_total" in live["spec"]["triggers"][1]["metadata"]["query"]
    wait_until(
        "the program's embeddings HPA to be replaced by KEDA's",
        lambda: [_owner_kinds(h) for h in kube.items("hpa", "e2e-embeddings")] == [{"ScaledObject"}],
        timeout=60,
    )
    result = subprocess.run(
        [str(ASSETS), "promql"], input="\n".join(_held_queries(kube)) + "\n", capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_destroy_removes_the_new_objects(deployed: Stack, kube: Kube) -> None:
    deployed.make("destroy")
    for namespace in ("e2e-llama", "e2e-llama-70b", "e2e-embeddings", "e2e-reranker", "e2e-gateway", DCGM_NAMESPACE):
        wait_until(f"namespace {namespace} to be gone", lambda ns=namespace: not kube.exists("namespace", ns))
    assert not kube.items("scaledobjects.keda.sh")
    # Only the cluster's own monitor is left (kube-state-metrics', an add-on of the local cluster).
    left = [m["metadata"]["name"] for m in kube.items("servicemonitors.monitoring.coreos.com") if not _addon(m)]
    assert not left, left
