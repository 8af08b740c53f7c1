"""Isolation acts on the real node: the model's NetworkPolicy refuses and admits real connections (kube-router's
firewall), its namespace's quota and LimitRange are Kubernetes' admission, and its pods run at its priority.

One model of the `local` stack (the embeddings server, a fixed replica) is routed through a Gateway (whose namespace
its policy admits, created here, no Gateway needed), with `egressTo` the node's pod subnet, so that every rule of
its policy has a peer to try. Probes are pods of the tests' own on the node, each a bounded TCP connect; the listener
on the node's bridge address is the test's own.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import KUBECONFIG, Kube, Stack, new_stack, wait_until
from tests.project import Project

STACK = "local"
PREFIX = "iso"  # the tests' own namespaces: a `make up` of the checkout may be serving in `local-*`
MODEL = "minilm"
MODEL_NS = f"{PREFIX}-{MODEL}"
GATEWAY_NS = f"{PREFIX}-gateway"
OUTSIDE_NS = f"{PREFIX}-elsewhere"  # unrelated to the stack: its policy admits nothing from there
MONITORING = "monitoring"  # stacks/Pulumi.local.yaml's monitoring.namespace
NODE_IP, POD_SUBNET = "10.89.0.1", "10.89.0.0/24"
SERVING_PORT = 8000  # the server engine's container port
OPEN, CLOSED = "open", "closed"

# A bounded connect: "open" when the peer accepts, else why not (a refusal by the firewall or no listener).
CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("open")
except OSError as exc:
    print("closed", type(exc).__name__)
"""
# The peers' listeners: the serving port's number and 443 (the port `egressTo` admits), each answering and closing.
LISTEN = """
import socket, threading
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        s.accept()[0].close()
for port in (443, 8000):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
threading.Event().wait()
"""


def _image() -> str:
    return str(json.loads((KUBECONFIG.parent / "images.json").read_text())["model-serving/server:local"])


def _probe_pod(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A listener on ports 443 and 8000, and python for the connects (the server image); restricted."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "nodeSelector": {"model-serving.dev/node": "local"},
            "tolerations": [{"key": "model-serving.dev/node", "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
                # Port 443 without a capability: a namespaced, safe sysctl.
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "443"}],
            },
            "containers": [
                {
                    "name": "probe",
                    "image": _image(),
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", LISTEN],
                    "resources": {"limits": {"cpu": "50m", "memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


def _pod_ip(kube: Kube, name: str, namespace: str) -> str:
    kube.run("wait", "--for=condition=Ready", f"pod/{name}", "-n", namespace, "--timeout=120s", timeout=150)
    return str(kube.get("pod", name, "-n", namespace)["status"]["podIP"])


def _connect(kube: Kube, namespace: str, target: str, address: str, port: int) -> str:
    """From a container of ``target`` (``pod/name`` or ``deployment/name``), connect to address:port."""
    result = kube.run("exec", "-n", namespace, target, "--", "python3", "-c", CONNECT, address, str(port), timeout=60)
    return result.stdout.split()[0]


def _eventually(kube: Kube, namespace: str, target: str, address: str, port: int, want: str) -> None:
    """The firewall follows pods and policies within seconds: wait for ``want``, bounded."""
    wait_until(
        f"{namespace}/{target} -> {address}:{port} to be {want}",
        lambda: _connect(kube, namespace, target, address, port) == want,
        timeout=45,
        interval=2,
    )


@pytest.fixture(scope="module")
def deployed(e2e_project: Project, kube: Kube) -> Iterator[Stack]:
    model = next(m for m in e2e_project.config(STACK)["models"] if m["name"] == MODEL)
    model.pop("autoscaling")
    model.update(
        replicas=1,
        routing={"mode": "gateway"},
        service={"type": "ClusterIP", "port": 80, "egressTo": [POD_SUBNET]},
    )
    e2e_project.edit_config(STACK, {"namespace": PREFIX, "models": [model], "gateway": {"namespace": GATEWAY_NS}})
    for namespace in (GATEWAY_NS, OUTSIDE_NS):
        kube.run("create", "namespace", namespace, check=False)  # a crashed run's may be there
    stack = new_stack(e2e_project, STACK)
    try:
        stack.make("up")
        yield stack
    finally:
        kube.run("delete", "namespace", GATEWAY_NS, OUTSIDE_NS, "--wait=false", check=False)
        kube.run("delete", "pod", "iso-monitor", "-n", MONITORING, "--wait=false", check=False)


@pytest.fixture(scope="module")
def peers(deployed: Stack, kube: Kube) -> dict[str, str]:
    """Probe pods: one in an unrelated namespace, one in the gateway's, one in Prometheus'; their addresses."""
    pods = {"outside": OUTSIDE_NS, "gateway": GATEWAY_NS, "monitor": MONITORING}
    for role, namespace in pods.items():
        kube.run("apply", "-f", "-", stdin=json.dumps(_probe_pod(f"iso-{role}", namespace)))
    return {role: _pod_ip(kube, f"iso-{role}", namespace) for role, namespace in pods.items()}


@pytest.fixture(scope="module")
def model_ip(deployed: Stack, kube: Kube) -> str:
    (pod,) = kube.items("pods", MODEL_NS, f"app.kubernetes.io/name={MODEL}")
    return str(pod["status"]["podIP"])


@pytest.fixture()
def node_listener() -> Iterator[int]:
    """A listener of the test's own on the node's bridge address (a port no policy admits), accepting and closing."""
    server = socket.create_server((NODE_IP, 0))
    server.settimeout(0.5)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


MODEL_POD = f"deployment/{MODEL}"


def test_an_unrelated_namespace_cannot_open_the_models_port(peers: dict[str, str], model_ip: str, kube: Kube) -> None:
    _eventually(kube, OUTSIDE_NS, "pod/iso-outside", model_ip, SERVING_PORT, CLOSED)


def test_the_gateways_and_prometheus_namespaces_can(peers: dict[str, str], model_ip: str, kube: Kube) -> None:
    _eventually(kube, GATEWAY_NS, "pod/iso-gateway", model_ip, SERVING_PORT, OPEN)
    _eventually(kube, MONITORING, "pod/iso-monitor", model_ip, SERVING_PORT, OPEN)


def test_the_model_reaches_dns_and_its_egress_only(peers: dict[str, str], kube: Kube) -> None:
    outside = peers["outside"]
    _eventually(kube, MODEL_NS, MODEL_POD, outside, SERVING_PORT, CLOSED)
    assert _connect(kube, MODEL_NS, MODEL_POD, outside, 443) == OPEN  # egressTo: HTTPS to the pod subnet
    # The control: the unrelated pod itself reaches the same listener (it has no policy).
    assert _connect(kube, OUTSIDE_NS, "pod/iso-outside", peers["gateway"], SERVING_PORT) == OPEN
    resolve = "import socket; print(socket.getaddrinfo('kubernetes.default', 443, socket.AF_INET)[0][4][0])"
    answer = kube.run("exec", "-n", MODEL_NS, MODEL_POD, "--", "python3", "-c", resolve, timeout=60).stdout.strip()
    assert answer == "10.96.0.1"


def test_the_model_cannot_open_a_port_of_the_node_its_policy_does_not_admit(
    peers: dict[str, str], node_listener: int, kube: Kube
) -> None:
    # The control: a pod without a policy reaches the listener on the node's bridge address...
    assert _connect(kube, OUTSIDE_NS, "pod/iso-outside", NODE_IP, node_listener) == OPEN
    # ...and the model's pod, whose egress is DNS and HTTPS to egressTo, does not.
    assert _connect(kube, MODEL_NS, MODEL_POD, NODE_IP, node_listener) == CLOSED


def test_model_pods_carry_the_models_priority(deployed: Stack, kube: Kube) -> None:
    priority = kube.get("priorityclass", MODEL_NS)
    assert (priority["value"], priority["preemptionPolicy"]) == (1_000_000, "PreemptLowerPriority")
    for pod in kube.items("pods", MODEL_NS, f"app.kubernetes.io/name={MODEL}"):
        assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == (MODEL_NS, 1_000_000)


def test_a_container_without_limits_gets_the_limit_ranges_defaults(deployed: Stack, kube: Kube) -> None:
    pod = _probe_pod("no-limits", MODEL_NS)
    del pod["spec"]["containers"][0]["resources"]
    del pod["spec"]["securityContext"]["sysctls"]
    kube.run("apply", "-f", "-", stdin=json.dumps(pod))
    try:
        resources = kube.get("pod", "no-limits", "-n", MODEL_NS)["spec"]["containers"][0]["resources"]
    finally:
        kube.run("delete", "pod", "no-limits", "-n", MODEL_NS, "--wait=true", timeout=120)
    limits = kube.get("limitrange", MODEL, "-n", MODEL_NS)["spec"]["limits"][0]
    assert resources == {"limits": limits["default"], "requests": limits["defaultRequest"]}
    assert limits["default"] == {"cpu": "250m", "memory": "1Gi"}  # the server container's (stacks/Pulumi.local.yaml)


def test_removing_the_policy_restores_reach(peers: dict[str, str], model_ip: str, kube: Kube) -> None:
    """The refusals above are the policy's: without it the same probes pass. (The stack's next `up` puts it back.)"""
    kube.run("delete", "networkpolicy", MODEL, "-n", MODEL_NS)
    _eventually(kube, OUTSIDE_NS, "pod/iso-outside", model_ip, SERVING_PORT, OPEN)
    _eventually(kube, MODEL_NS, MODEL_POD, peers["outside"], SERVING_PORT, OPEN)


def test_scaling_past_the_quota_by_hand_leaves_the_extra_pod_unadmitted(deployed: Stack, kube: Kube) -> None:
    quota = kube.get("resourcequota", MODEL, "-n", MODEL_NS)
    # One replica and a surge of one: two pods of 250m and 1Gi.
    assert quota["spec"]["hard"] == {
        "limits.cpu": "500m",
        "limits.memory": "2Gi",
        "requests.cpu": "500m",
        "requests.memory": "2Gi",
    }
    kube.run("scale", "deployment", MODEL, "-n", MODEL_NS, "--replicas=3")
    try:

        def refused() -> str | None:
            for rs in kube.items("replicasets", MODEL_NS):
                for condition in rs.get("status", {}).get("conditions", []):
                    if condition["type"] == "ReplicaFailure" and "exceeded quota" in condition["message"]:
                        return str(condition["message"])
            return None

        wait_until("the ReplicaSet to report the quota's refusal", lambda: refused() is not None, timeout=60)
        message = refused()
        assert message is not None and f"exceeded quota: {MODEL}" in message, message
        pods = kube.items("pods", MODEL_NS, f"app.kubernetes.io/name={MODEL}")
        assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
        used = kube.get("resourcequota", MODEL, "-n", MODEL_NS)["status"]["used"]
        assert used["requests.cpu"] == "500m" and used["requests.memory"] == "2Gi"
    finally:
        kube.run("scale", "deployment", MODEL, "-n", MODEL_NS, "--replicas=1")
