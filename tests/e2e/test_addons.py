"""The local cluster's add-ons act on what the `local` stack declares (scripts/cluster/addons.py).

Cluster DNS and Services from a pod (CoreDNS, kube-proxy), the API server through the `kubernetes` Service with the
pod's ServiceAccount and RBAC, and no one else through the node's relay; Prometheus scraping every monitor and
evaluating every rule the stack registers; and KEDA scaling the chat model on its queue depth under a bounded
load and back, with the backlog alert raised and cleared, the dashboards' queries answered, and the fallback
replicas held while Prometheus is stopped.

The tests run in order on one deployed stack. Timings go to .cluster/logs/e2e-addons.json.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import KUBECONFIG, Kube, Load, Stack, new_stack, post_embeddings, record_timing, wait_until
from tests.harness import ROOT
from tests.kube_checks import promql_queries
from tests.project import Project

STACK = "local"
NAMESPACE = "ops"  # the tests' own: a `make up` of the checkout may be serving in `local-*`
CHAT, EMBEDDINGS = f"{NAMESPACE}-gemma", f"{NAMESPACE}-minilm"
MONITORING = "monitoring"  # stacks/Pulumi.local.yaml's monitoring.namespace
FALLBACK_REPLICAS = 2
NODE_IP, API_PORT = "10.89.0.1", int(os.environ.get("CLUSTER_PORT", "16443"))  # the bridge; the API port
TIMINGS = KUBECONFIG.parent / "logs" / "e2e-addons.json"
HELLO = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


@dataclass(frozen=True)
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.get("/api/v1/targets", state="active")["activeTargets"]
        return active

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def alert_states(self, name: str, namespace: str) -> set[str]:
        alerts = self.get("/api/v1/alerts")["alerts"]
        return {
            a["state"]
            for a in alerts
            if a["labels"].get("alertname") == name and a["labels"].get("namespace") == namespace
        }


def chat_load(url: str, clients: int, limit: float = 420) -> Load:
    """Clients asking the chat model in a loop (a bounded load)."""
    body = json.dumps({"messages": HELLO, "max_tokens": 48}).encode()

    def request() -> str | None:
        headers = {"Content-Type": "application/json"}
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/v1/chat/completions", body, headers), timeout=300
        ) as r:
            answer = json.load(r)
        ok = r.status == 200 and bool(answer["choices"][0]["message"]["content"].strip())
        return None if ok else f"{r.status}: {answer}"

    return Load(request, clients, limit)


@pytest.fixture(scope="module")
def deployed(e2e_project: Project) -> Iterator[Stack]:
    models = e2e_project.config(STACK)["models"]
    for model in models:
        if model["name"] == "gemma":
            assert model["autoscaling"]["driver"] == "keda", model["autoscaling"]
            model["autoscaling"]["fallbackReplicas"] = FALLBACK_REPLICAS
    e2e_project.edit_config(STACK, {"namespace": NAMESPACE, "models": models})
    stack = new_stack(e2e_project, STACK)
    stack.make("up")
    yield stack


@pytest.fixture(scope="module")
def prometheus(kube: Kube) -> Prometheus:
    status = subprocess.run(
        [str(ROOT / "scripts" / "local-cluster"), "status"], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stdout + status.stderr
    found = re.search(r"^Prometheus\s+(http://127\.0\.10\.\d+:9090)", status.stdout, re.MULTILINE)
    assert found, f"make cluster-status names no Prometheus URL:\n{status.stdout}"
    server = Prometheus(found.group(1))
    wait_until("Prometheus ready", lambda: _ready(server.url), timeout=120)
    return server


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _replicas(kube: Kube) -> tuple[int, int]:
    status = kube.get("deployment", "gemma", "-n", CHAT)
    return status["spec"]["replicas"], status["status"].get("readyReplicas", 0)


def _condition(kube: Kube, kind: str, name: str, namespace: str, condition: str) -> str:
    conditions = kube.get(kind, name, "-n", namespace).get("status", {}).get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == condition), "Unknown")


# ---------------------------------------------------------------------------------------------------
# DNS, Services and the API server, from a pod

PROBE = """
import json, socket, ssl, urllib.request, urllib.error
out = {}
for name in ("kubernetes.default", "prometheus-operated.monitoring", "kube-dns.kube-system.svc.cluster.local"):
    out[name] = sorted({a[4][0] for a in socket.getaddrinfo(name, 443, socket.AF_INET)})
try:
    socket.getaddrinfo("example.com", 443)
    out["outside"] = "resolved"
except OSError as exc:
    out["outside"] = type(exc).__name__
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
token = open(sa + "token").read()
context = ssl.create_default_context(cafile=sa + "ca.crt")
def status(path):
    auth = {"Authorization": "Bearer " + token}
    request = urllib.request.Request("https://kubernetes.default.svc" + path, headers=auth)
    try:
        return urllib.request.urlopen(request, context=context, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code
out["own pods"] = status("/api/v1/namespaces/%s/pods" % open(sa + "namespace").read())
out["secrets of kube-system"] = status("/api/v1/namespaces/kube-system/secrets")
with urllib.request.urlopen("http://prometheus-operated.monitoring:9090/-/ready", timeout=10) as response:
    out["prometheus"] = response.status
print(json.dumps(out))
"""


def test_a_pod_resolves_services_and_reaches_the_api_server_as_its_service_account(deployed: Stack, kube: Kube) -> None:
    image = json.loads((KUBECONFIG.parent / "images.json").read_text())["model-serving/server:local"]
    ns = EMBEDDINGS
    # Its ServiceAccount may read the pods of its namespace, nothing else.
    kube.run("create", "role", "probe", "--verb=list", "--resource=pods", "-n", ns)
    kube.run("create", "serviceaccount", "probe", "-n", ns)
    kube.run("create", "rolebinding", "probe", "--role=probe", f"--serviceaccount={ns}:probe", "-n", ns)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": ns},
        "spec": {
            "serviceAccountName": "probe",
            "restartPolicy": "Never",
            "nodeSelector": {"model-serving.dev/node": "local"},
            "tolerations": [{"key": "model-serving.dev/node", "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", PROBE],
                    "resources": {"limits": {"cpu": "50m", "memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }
    try:
        kube.run("apply", "-f", "-", stdin=json.dumps(pod))
        wait_until(
            "the probe pod to finish",
            lambda: kube.get("pod", "probe", "-n", ns)["status"].get("phase") in ("Succeeded", "Failed"),
            timeout=120,
        )
        logs = kube.run("logs", "probe", "-n", ns).stdout
        assert kube.get("pod", "probe", "-n", ns)["status"]["phase"] == "Succeeded", logs
    finally:
        kube.run("delete", "pod,rolebinding,role,serviceaccount", "probe", "-n", ns, "--wait=false", check=False)
    seen = json.loads(logs.strip().splitlines()[-1])
    assert seen["kubernetes.default"] == ["10.96.0.1"]
    assert seen["kube-dns.kube-system.svc.cluster.local"] == ["10.96.0.10"]
    prometheus_pods = {
        p["status"]["podIP"] for p in kube.items("pods", MONITORING, "app.kubernetes.io/name=prometheus")
    }
    assert set(seen["prometheus-operated.monitoring"]) == prometheus_pods  # headless: the pod's own address
    assert seen["outside"] == "gaierror"  # no forwarding: names outside the cluster fail, fast
    assert seen["own pods"] == 200 and seen["secrets of kube-system"] == 403, seen  # authenticated, and RBAC holds
    assert seen["prometheus"] == 200


def test_the_api_relay_on_the_node_address_admits_only_the_node_subnet(deployed: Stack) -> None:
    def answer(source: str) -> bytes:
        with socket.create_connection((NODE_IP, API_PORT), timeout=5, source_address=(source, 0)) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            chunks = []
            try:
                while chunk := conn.recv(4096):
                    chunks.append(chunk)
            except ConnectionResetError:  # closed with the request unread
                pass
            return b"".join(chunks)

    # From the node's subnet (the bridge's own address, as a pod's would be): the API server answers (over TLS, so
    # plain HTTP gets its 400).
    assert b"400" in answer(NODE_IP)
    # From anywhere else (loopback here): closed without a byte.
    assert answer("127.0.0.1") == b""


# ---------------------------------------------------------------------------------------------------
# Prometheus: targets, rules


def test_every_monitor_has_a_target_that_is_up(deployed: Stack, kube: Kube, prometheus: Prometheus) -> None:
    monitors = [
        f"{kind}/{m['metadata']['namespace']}/{m['metadata']['name']}"
        for kind, plural in (("serviceMonitor", "servicemonitors"), ("podMonitor", "podmonitors"))
        for ns in (CHAT, EMBEDDINGS)
        for m in kube.items(plural, ns)
    ]
    assert len(monitors) == 2, monitors
    monitors.append(f"serviceMonitor/{MONITORING}/kube-state-metrics")  # the series the alerts and panels use

    def up() -> dict[str, list[str]]:
        pools: dict[str, list[str]] = {}
        for target in prometheus.targets():
            pools.setdefault(target["scrapePool"].rsplit("/", 1)[0], []).append(target["health"])
        return pools

    start = time.monotonic()
    wait_until("a target up for every monitor", lambda: all("up" in up().get(m, []) for m in monitors), timeout=180)
    record_timing(TIMINGS, "targets up", time.monotonic() - start)
    # The series carry the labels the stack's queries select by.
    assert prometheus.query(f'up{{namespace="{CHAT}",service="gemma"}} == 1')
    assert prometheus.query(f'kube_deployment_spec_replicas{{namespace="{CHAT}",deployment="gemma"}}')


def test_every_rule_is_loaded_and_evaluates_without_error(deployed: Stack, kube: Kube, prometheus: Prometheus) -> None:
    declared = {
        (group["name"], rule["alert"])
        for ns in (CHAT, EMBEDDINGS)
        for obj in kube.items("prometheusrules", ns)
        for group in obj["spec"]["groups"]
        for rule in group["rules"]
    }
    assert declared

    def evaluated() -> dict[tuple[str, str], str]:
        groups = prometheus.get("/api/v1/rules")["groups"]
        return {(g["name"], r["name"]): r.get("health", "") for g in groups for r in g["rules"]}

    wait_until("every rule evaluated", lambda: all(evaluated().get(k) == "ok" for k in declared), timeout=120)
    errors = {k: r.get("lastError") for r in prometheus.rules() for k in [r["name"]] if r.get("lastError")}
    assert not errors, errors


# ---------------------------------------------------------------------------------------------------
# KEDA: queue depth under load, the backlog alert, the dashboards, back to one, the fallback


def test_queue_depth_scales_the_chat_model_out_and_raises_the_backlog_alert(
    deployed: Stack, kube: Kube, prometheus: Prometheus
) -> None:
    assert _replicas(kube) == (1, 1)
    wait_until(
        "the ScaledObject Ready", lambda: _condition(kube, "scaledobject", "gemma", CHAT, "Ready") == "True", timeout=60
    )
    # 10 clients on 2 slots a pod: 8 wait on one pod, 3 a pod on two; the alert's threshold (queueDepth) is 2.
    load = chat_load(deployed.endpoint("gemma"), clients=10).start()
    start = time.monotonic()
    try:
        wait_until(
            "the ScaledObject Active",
            lambda: _condition(kube, "scaledobject", "gemma", CHAT, "Active") == "True",
            timeout=120,
        )
        wait_until("two ready replicas", lambda: _replicas(kube)[1] >= 2, timeout=240, interval=2)
        record_timing(TIMINGS, "scale out to two replicas", time.monotonic() - start)
        wait_until(
            "ModelQueueBacklog pending or firing",
            lambda: bool(prometheus.alert_states("ModelQueueBacklog", CHAT) & {"pending", "firing"}),
            timeout=180,
            interval=3,
        )
        record_timing(TIMINGS, "backlog alert raised", time.monotonic() - start)
    finally:
        load.stop()
    assert not load.failures, load.failures[:5]
    assert load.ok > 0
    # The embeddings model serves too, so that every dashboard has something to show.
    for _ in range(20):
        status, _ = post_embeddings(deployed.endpoint("minilm"), {"input": "a lighthouse"})
        assert status == 200


def test_every_dashboard_query_returns_data(deployed: Stack, kube: Kube, prometheus: Prometheus) -> None:
    boards = [cm for ns in (CHAT, EMBEDDINGS) for cm in kube.items("configmaps", ns, "grafana_dashboard=1")]
    assert len(boards) == 2
    queries = promql_queries(boards)
    assert len(queries) >= 8, queries

    def empty() -> list[str]:
        return [q for q in queries if not prometheus.query(q)]

    wait_until("data for every panel", lambda: not empty(), timeout=120, interval=5)


def test_the_backlog_clears_and_the_model_scales_back_to_one(
    deployed: Stack, kube: Kube, prometheus: Prometheus
) -> None:
    start = time.monotonic()
    wait_until("ModelQueueBacklog cleared", lambda: not prometheus.alert_states("ModelQueueBacklog", CHAT), timeout=120)
    # scaleDownWindowSeconds 60, then KEDA's HPA removes the second pod.
    wait_until("one replica", lambda: _replicas(kube) == (1, 1), timeout=300, interval=3)
    record_timing(TIMINGS, "scale back to one replica", time.monotonic() - start)
    assert _condition(kube, "scaledobject", "gemma", CHAT, "Active") == "False"


def test_the_fallback_holds_replicas_while_prometheus_is_stopped(
    deployed: Stack, kube: Kube, prometheus: Prometheus
) -> None:
    def scale_prometheus(replicas: int) -> None:
        patch = json.dumps({"spec": {"replicas": replicas}})
        kube.run("patch", "prometheus", "local", "-n", MONITORING, "--type", "merge", "-p", patch)

    start = time.monotonic()
    scale_prometheus(0)
    try:
        wait_until(
            "Prometheus stopped", lambda: not kube.items("pods", MONITORING, "app.kubernetes.io/name=prometheus"), 120
        )
        wait_until(
            "the ScaledObject in fallback",
            lambda: _condition(kube, "scaledobject", "gemma", CHAT, "Fallback") == "True",
            timeout=180,
            interval=2,
        )
        wait_until(f"{FALLBACK_REPLICAS} replicas held", lambda: _replicas(kube)[0] == FALLBACK_REPLICAS, timeout=120)
        record_timing(TIMINGS, "fallback replicas held", time.monotonic() - start)
    finally:
        scale_prometheus(1)
    wait_until("Prometheus back", lambda: _ready(prometheus.url), timeout=180, interval=2)
    wait_until(
        "the ScaledObject out of fallback",
        lambda: _condition(kube, "scaledobject", "gemma", CHAT, "Fallback") == "False",
        timeout=180,
        interval=2,
    )
