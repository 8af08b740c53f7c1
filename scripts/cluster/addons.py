"""The local cluster's platform, run as pods on its real node: what the stacks declare objects for, acting on them.

- CoreDNS (kube-system): Service names resolve in pods, at the ``kube-dns`` Service's fixed address (the kubelet's
  clusterDNS).
- prometheus-operator, a ``Prometheus`` and kube-state-metrics (the ``local`` stack's ``monitoring.namespace``): the
  Prometheus selects the ServiceMonitors, PodMonitors and PrometheusRules carrying the stack's ``monitoring.labels``,
  in every namespace, and is reached in the cluster at ``prometheus-operated.<namespace>:9090`` (the stack's
  ``monitoring.prometheusUrl``) and from this machine through a LoadBalancer Service (``make cluster-status``).
- KEDA (``keda``): its operator and its metrics API server behind the aggregation layer
  (``v1beta1.external.metrics.k8s.io``), with the certificates the operator makes and rotates itself.

Each runs a static binary built from its pinned module (scripts/install-k8s) in an image of its own that
scripts/cluster/real-node.sh builds and imports (``images``): nothing is pulled. Every pod runs on the real node
(its label and taint), as a non-root user with no capabilities and a read-only root filesystem.

Usage: python scripts/cluster/addons.py [manifests|images|prometheus-service]
  manifests           the objects, a YAML stream for ``kubectl apply --server-side`` (the default)
  images              one line per image: reference and the binary of .tools/bin it holds
  prometheus-service  namespace/name of the Prometheus LoadBalancer Service
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from components.config import parse_stack_config, stack_file_config  # noqa: E402

Manifest = dict[str, Any]

NODE_SELECTOR = {"model-serving.dev/node": "local"}
TOLERATIONS = [{"key": "model-serving.dev/node", "operator": "Equal", "value": "local", "effect": "NoSchedule"}]
STAND_IN = "llm-d-inference-sim"  # the vLLM stand-in's binary (docs/weights-and-nodes.md)
PLATFORM_PRIORITY = "system-cluster-critical"  # the built-in class of a cluster's own add-ons
CLUSTER_DNS = "10.96.0.10"  # scripts/cluster/real-node.sh's CLUSTER_DNS: the kubelet's clusterDNS
KEDA_NAMESPACE = "keda"
PROMETHEUS_NAME = "local"
PROMETHEUS_LB = "prometheus"  # the LoadBalancer Service make cluster-status prints
LWS_NAMESPACE = "lws-system"
STORAGE_NAMESPACE = "local-path-storage"
STORAGE_CLASS = "local-path"  # the cluster's default class: claims without storageClassName get it
# Where the provisioner makes volumes on the real node; scripts/cluster/real-node.sh's node_down removes it. Resolved:
# a project copy that links .cluster (the e2e tests') re-applies the add-ons with the cluster's own path.
VOLUMES_DIR = (ROOT / ".cluster").resolve() / "node" / "volumes"
NOBODY = 65534


@dataclass(frozen=True)
class Versions:
    """The pinned versions (scripts/k8s-versions.env) the images are tagged with."""

    coredns: str
    prometheus: str
    prometheus_operator: str
    kube_state_metrics: str
    keda: str
    inference_sim: str
    lws: str
    local_path: str

    @classmethod
    def load(cls, path: Path = ROOT / "scripts" / "k8s-versions.env") -> Versions:
        env = {}
        for line in path.read_text().splitlines():
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                env[key] = value
        return cls(
            coredns=env["COREDNS_VERSION"],
            prometheus=env["PROMETHEUS_SERVER_VERSION"],
            prometheus_operator=env["PROMETHEUS_OPERATOR_BIN_VERSION"],
            kube_state_metrics=env["KUBE_STATE_METRICS_VERSION"],
            keda=env["KEDA_VERSION"],
            inference_sim=env["INFERENCE_SIM_VERSION"],
            lws=env["LWS_VERSION"],
            local_path=env["LOCAL_PATH_PROVISIONER_VERSION"],
        )

    def images(self) -> dict[str, str]:
        """Binary (in .tools/bin, at /bin/<binary> in its image) -> image reference."""
        tags = {
            "coredns": self.coredns,
            "prometheus": self.prometheus,
            "prometheus-operator": self.prometheus_operator,
            "prometheus-config-reloader": self.prometheus_operator,
            "kube-state-metrics": self.kube_state_metrics,
            "keda-operator": self.keda,
            "keda-adapter": self.keda,
            "lws-controller": self.lws,
            "local-path-provisioner": self.local_path,
            "local-path-helper": self.local_path,
            # Not an add-on: the vLLM stand-in the tests deploy models with, imported with the add-ons' images.
            STAND_IN: self.inference_sim,
        }
        return {binary: f"model-serving.local/{binary}:{tag}" for binary, tag in tags.items()}


@dataclass(frozen=True)
class Monitoring:
    """What the ``local`` stack's monitoring block says Prometheus is: where it runs, what its selectors match."""

    namespace: str
    labels: Mapping[str, str]

    @classmethod
    def of_stack(cls, stack: str = "local") -> Monitoring:
        raw = stack_file_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
        monitoring = parse_stack_config(raw, has_hub_token=True, has_registry_password=True).monitoring
        if not monitoring.enabled or not monitoring.labels:
            raise SystemExit(
                f"stacks/Pulumi.{stack}.yaml: model-serving:monitoring.enabled and monitoring.labels are what the "
                "local cluster's Prometheus selects by"
            )
        return cls(namespace=monitoring.namespace, labels=dict(monitoring.labels))


# ---------------------------------------------------------------------------------------------------
# building blocks


def meta(name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if namespace:
        out["namespace"] = namespace
    out["labels"] = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "model-serving-local",
        **(labels or {}),
    }
    return out


def resources(cpu: str, cpu_limit: str, memory: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": NOBODY,
    "runAsGroup": NOBODY,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def container(name: str, image: str, args: list[str], res: dict[str, Any], **extra: Any) -> dict[str, Any]:
    binary = image.split("/")[-1].split(":")[0]
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": [f"/bin/{binary}"],
        "args": args,
        "resources": res,
        "securityContext": CONTAINER_SECURITY,
        **extra,
    }


def http_probe(path: str, port: int | str, scheme: str = "HTTP", delay: int = 0) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port, "scheme": scheme}, "initialDelaySeconds": delay, "periodSeconds": 5}


def pod_spec(service_account: str, containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "serviceAccountName": service_account,
        # The platform outranks the models (their own classes, 1e6 by default): a model pod that does not fit the
        # node must wait, not preempt DNS, Prometheus or KEDA.
        "priorityClassName": PLATFORM_PRIORITY,
        "nodeSelector": NODE_SELECTOR,
        "tolerations": TOLERATIONS,
        "securityContext": POD_SECURITY,
        "terminationGracePeriodSeconds": 10,
        "containers": containers,
        **extra,
    }


def deployment(name: str, namespace: str, spec: dict[str, Any], labels: Mapping[str, str] | None = None) -> Manifest:
    selector = {"app.kubernetes.io/name": name, **(labels or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, namespace, labels),
        "spec": {
            "replicas": 1,
            # One node, two CPUs: the old pod goes first rather than a second copy waiting for room.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": meta(name, labels=labels)["labels"]}, "spec": spec},
        },
    }


def service(
    name: str, namespace: str, ports: list[dict[str, Any]], selector: Mapping[str, str], **spec: Any
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace),
        "spec": {"selector": dict(selector), "ports": ports, **spec},
    }


def port(name: str, number: int, target: int | str | None = None, protocol: str = "TCP") -> dict[str, Any]:
    return {"name": name, "port": number, "targetPort": target if target is not None else number, "protocol": protocol}


def service_account(name: str, namespace: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, namespace)}


def namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name)}


def rule(groups: list[str], resources_: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources_, "verbs": verbs}


READ = ["get", "list", "watch"]
ALL = ["*"]


def cluster_role(name: str, rules: list[dict[str, Any]]) -> Manifest:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name), "rules": rules}


def binding(
    name: str,
    role: str,
    account: str,
    account_namespace: str,
    *,
    namespace: str | None = None,
    role_kind: str = "ClusterRole",
) -> Manifest:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
    }


def account_with_role(name: str, namespace_: str, rules: list[dict[str, Any]]) -> list[Manifest]:
    """A ServiceAccount and a ClusterRole of the same name, bound."""
    return [service_account(name, namespace_), cluster_role(name, rules), binding(name, name, name, namespace_)]


# ---------------------------------------------------------------------------------------------------
# CoreDNS

COREFILE = """\
.:53 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    cache 30
    loadbalance
    reload
}
"""


def coredns(images: Mapping[str, str]) -> list[Manifest]:
    ns = "kube-system"
    labels = {"k8s-app": "kube-dns"}  # what the stacks' NetworkPolicies admit DNS to
    rules = [
        rule([""], ["endpoints", "services", "pods", "namespaces"], ["list", "watch"]),
        rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch"]),
    ]
    spec = pod_spec(
        "coredns",
        [
            container(
                "coredns",
                images["coredns"],
                ["-conf", "/etc/coredns/Corefile"],
                resources("20m", "100m", "32Mi", "96Mi"),
                ports=[
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9153},
                ],
                livenessProbe=http_probe("/health", 8080),
                readinessProbe=http_probe("/ready", 8181),
                volumeMounts=[{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
            )
        ],
        # Port 53 as a non-root user with no capabilities: a namespaced sysctl the kubelet allows.
        securityContext={**POD_SECURITY, "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}]},
        dnsPolicy="Default",
        volumes=[{"name": "config", "configMap": {"name": "coredns"}}],
    )
    return [
        *account_with_role("coredns", ns, rules),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("coredns", ns), "data": {"Corefile": COREFILE}},
        deployment("coredns", ns, spec, labels),
        service(
            "kube-dns",
            ns,
            [port("dns", 53, protocol="UDP"), port("dns-tcp", 53), port("metrics", 9153)],
            {"app.kubernetes.io/name": "coredns", **labels},
            clusterIP=CLUSTER_DNS,
        ),
    ]


# ---------------------------------------------------------------------------------------------------
# Prometheus: the operator, the server, kube-state-metrics


def service_monitor(name: str, namespace_: str, labels: Mapping[str, str], port_name: str, **endpoint: Any) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(name, namespace_, labels),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "endpoints": [{"port": port_name, **endpoint}],
        },
    }


def prometheus_operator(images: Mapping[str, str], monitoring: Monitoring) -> list[Manifest]:
    ns = monitoring.namespace
    group = ["monitoring.coreos.com"]
    rules = [
        rule(
            group,
            [
                "prometheuses",
                "prometheuses/finalizers",
                "prometheuses/status",
                "servicemonitors",
                "servicemonitors/status",
                "podmonitors",
                "podmonitors/status",
                "probes",
                "probes/status",
                "prometheusrules",
                "prometheusrules/status",
                "scrapeconfigs",
                "scrapeconfigs/status",
                "prometheusagents",
                "alertmanagers",
                "alertmanagerconfigs",
                "thanosrulers",
            ],
            ALL,
        ),
        rule(["apps"], ["statefulsets"], ALL),
        rule([""], ["configmaps", "secrets"], ALL),
        rule([""], ["pods"], ["list", "delete"]),
        rule([""], ["services", "services/finalizers", "endpoints"], ["get", "create", "update", "delete"]),
        rule([""], ["nodes"], ["list", "watch"]),
        rule([""], ["namespaces"], READ),
        rule(["events.k8s.io"], ["events"], ["create", "patch"]),
        rule(["networking.k8s.io"], ["ingresses"], READ),
        rule(["storage.k8s.io"], ["storageclasses"], ["get"]),
    ]
    reloader = images["prometheus-config-reloader"]
    args = [
        f"--prometheus-config-reloader={reloader}",
        "--config-reloader-cpu-request=5m",
        "--config-reloader-cpu-limit=50m",
        "--config-reloader-memory-request=16Mi",
        "--config-reloader-memory-limit=48Mi",
        "--disable-unmanaged-prometheus-configuration=true",
        "--log-level=info",
    ]
    spec = pod_spec(
        "prometheus-operator",
        [
            container(
                "prometheus-operator",
                images["prometheus-operator"],
                args,
                resources("20m", "200m", "48Mi", "128Mi"),
                ports=[{"name": "http", "containerPort": 8080}],
                readinessProbe=http_probe("/healthz", 8080),
            )
        ],
    )
    return [*account_with_role("prometheus-operator", ns, rules), deployment("prometheus-operator", ns, spec)]


def prometheus(images: Mapping[str, str], versions: Versions, monitoring: Monitoring) -> list[Manifest]:
    ns = monitoring.namespace
    rules = [
        rule([""], ["nodes", "nodes/metrics", "services", "endpoints", "pods"], READ),
        rule([""], ["configmaps"], ["get"]),
        rule(["discovery.k8s.io"], ["endpointslices"], READ),
        rule(["networking.k8s.io"], ["ingresses"], READ),
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    select = {"matchLabels": dict(monitoring.labels)}
    server = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": meta(PROMETHEUS_NAME, ns),
        "spec": {
            "version": versions.prometheus,
            "image": images["prometheus"],
            "imagePullPolicy": "Never",
            "replicas": 1,
            "serviceAccountName": "prometheus",
            "serviceMonitorSelector": select,
            "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": select,
            "podMonitorNamespaceSelector": {},
            "ruleSelector": select,
            "ruleNamespaceSelector": {},
            "scrapeInterval": "15s",
            "evaluationInterval": "15s",
            "retention": "2h",
            "resources": resources("80m", "500m", "192Mi", "512Mi"),
            "securityContext": {**POD_SECURITY, "fsGroup": NOBODY},
            "nodeSelector": NODE_SELECTOR,
            "tolerations": TOLERATIONS,
            "priorityClassName": PLATFORM_PRIORITY,
        },
    }
    lb = service(
        PROMETHEUS_LB,
        ns,
        [port("web", 9090)],
        {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": PROMETHEUS_NAME},
        type="LoadBalancer",
        loadBalancerSourceRanges=["127.0.0.0/8"],
    )
    return [*account_with_role("prometheus", ns, rules), server, lb]


KSM_RESOURCES = (
    "pods",
    "deployments",
    "statefulsets",
    "replicasets",
    "nodes",
    "namespaces",
    "horizontalpodautoscalers",
)


def kube_state_metrics(images: Mapping[str, str], monitoring: Monitoring) -> list[Manifest]:
    ns = monitoring.namespace
    rules = [
        rule([""], ["pods", "nodes", "namespaces"], ["list", "watch"]),
        rule(["apps"], ["deployments", "statefulsets", "replicasets"], ["list", "watch"]),
        rule(["autoscaling"], ["horizontalpodautoscalers"], ["list", "watch"]),
    ]
    spec = pod_spec(
        "kube-state-metrics",
        [
            container(
                "kube-state-metrics",
                images["kube-state-metrics"],
                ["--port=8080", "--telemetry-port=8081", f"--resources={','.join(KSM_RESOURCES)}"],
                resources("10m", "100m", "32Mi", "96Mi"),
                ports=[{"name": "http-metrics", "containerPort": 8080}, {"name": "telemetry", "containerPort": 8081}],
                livenessProbe=http_probe("/livez", 8080),
                readinessProbe=http_probe("/readyz", 8081),
            )
        ],
    )
    return [
        *account_with_role("kube-state-metrics", ns, rules),
        deployment("kube-state-metrics", ns, spec),
        service(
            "kube-state-metrics", ns, [port("http-metrics", 8080)], {"app.kubernetes.io/name": "kube-state-metrics"}
        ),
        # honorLabels: the series keep the namespace and pod they describe, not the exporter's.
        service_monitor("kube-state-metrics", ns, monitoring.labels, "http-metrics", honorLabels=True),
    ]


# ---------------------------------------------------------------------------------------------------
# KEDA


def keda(images: Mapping[str, str]) -> list[Manifest]:
    ns = KEDA_NAMESPACE
    account = "keda-operator"
    scaled = [
        "scaledobjects",
        "scaledobjects/finalizers",
        "scaledobjects/status",
        "scaledjobs",
        "scaledjobs/finalizers",
        "scaledjobs/status",
        "triggerauthentications",
        "triggerauthentications/status",
        "clustertriggerauthentications",
        "clustertriggerauthentications/status",
    ]
    events = [
        "cloudeventsources",
        "cloudeventsources/status",
        "clustercloudeventsources",
        "clustercloudeventsources/status",
    ]
    write = ["get", "list", "watch", "patch", "update"]
    rules = [
        rule([""], ["configmaps", "configmaps/status", "pods", "secrets", "services"], READ),
        rule([""], ["limitranges", "serviceaccounts"], ["list", "watch"]),
        rule(["", "events.k8s.io"], ["events"], ["create", "patch"]),
        rule(["*"], ["*"], ["get"]),  # the scale targets of any kind
        rule(["*"], ["*/scale"], write),
        rule(["apiregistration.k8s.io"], ["apiservices"], write),  # the caBundle of its APIService
        rule(["apps"], ["deployments", "replicasets", "statefulsets"], ["list", "watch"]),
        rule(["autoscaling"], ["horizontalpodautoscalers"], ALL),
        rule(["batch"], ["jobs"], ALL),
        rule(["discovery.k8s.io"], ["endpointslices"], READ),
        rule(["keda.sh"], scaled, write),
        rule(["eventing.keda.sh"], events, write),
    ]
    own = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(account, ns),
        "rules": [
            rule([""], ["secrets"], ALL),  # the certificates' Secret it writes
            rule(["coordination.k8s.io"], ["leases"], ALL),
        ],
    }
    certs = {"name": "certificates", "secret": {"secretName": "kedaorg-certs", "optional": True}}
    certs_mount = {"name": "certificates", "mountPath": "/certs", "readOnly": True}
    env = [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "WATCH_NAMESPACE", "value": ""},
        {"name": "KEDA_HTTP_DEFAULT_TIMEOUT", "value": "3000"},
    ]
    operator_args = [
        "--leader-elect=false",  # one replica: no lease to wait for after a restart
        "--enable-cert-rotation=true",
        "--enable-webhook-patching=false",  # no admission webhooks here
        "--zap-log-level=info",
        "--zap-encoder=console",
    ]
    operator = pod_spec(
        account,
        [
            container(
                "keda-operator",
                images["keda-operator"],
                operator_args,
                resources("40m", "500m", "96Mi", "512Mi"),
                env=env,
                ports=[
                    {"name": "metrics", "containerPort": 8080},
                    {"name": "probes", "containerPort": 8081},
                    {"name": "metricsservice", "containerPort": 9666},
                ],
                livenessProbe=http_probe("/healthz", 8081, delay=10),
                readinessProbe=http_probe("/readyz", 8081),
                volumeMounts=[certs_mount],
            )
        ],
        volumes=[certs],
    )
    adapter_args = [
        "--secure-port=6443",
        "--cert-dir=/certs",
        "--tls-cert-file=/certs/tls.crt",
        "--tls-private-key-file=/certs/tls.key",
        "--client-ca-file=/certs/ca.crt",
        "--zap-log-level=info",
    ]
    adapter = pod_spec(
        account,
        [
            container(
                "keda-adapter",
                images["keda-adapter"],
                adapter_args,
                resources("20m", "300m", "64Mi", "384Mi"),
                env=env,
                ports=[{"name": "https", "containerPort": 6443}, {"name": "metrics", "containerPort": 8080}],
                livenessProbe=http_probe("/healthz", 6443, "HTTPS", delay=5),
                readinessProbe=http_probe("/readyz", 6443, "HTTPS"),
                volumeMounts=[certs_mount, {"name": "tmp", "mountPath": "/tmp"}],
            )
        ],
        volumes=[certs, {"name": "tmp", "emptyDir": {}}],
    )
    external_reader = cluster_role("keda-external-metrics-reader", [rule(["external.metrics.k8s.io"], ["*"], ALL)])
    return [
        namespace(ns),
        *account_with_role(account, ns, rules),
        own,
        binding(account, account, account, ns, namespace=ns, role_kind="Role"),
        # The metrics API server: delegated authentication and authorization, as any aggregated API server.
        binding("keda-auth-delegator", "system:auth-delegator", account, ns),
        binding(
            "keda-auth-reader",
            "extension-apiserver-authentication-reader",
            account,
            ns,
            namespace="kube-system",
            role_kind="Role",
        ),
        external_reader,
        binding(
            "keda-hpa-controller-external-metrics",
            "keda-external-metrics-reader",
            "horizontal-pod-autoscaler",
            "kube-system",
        ),
        deployment("keda-operator", ns, operator),
        service(
            "keda-operator",
            ns,
            [port("metricsservice", 9666), port("metrics", 8080)],
            {"app.kubernetes.io/name": "keda-operator"},
        ),
        deployment("keda-metrics-apiserver", ns, adapter),
        service(
            "keda-metrics-apiserver",
            ns,
            [port("https", 443, 6443), port("metrics", 8080)],
            {"app.kubernetes.io/name": "keda-metrics-apiserver"},
        ),
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": meta("v1beta1.external.metrics.k8s.io"),
            # No caBundle: the operator's certificate rotator fills it in (and the Secret both pods mount).
            "spec": {
                "service": {"name": "keda-metrics-apiserver", "namespace": ns, "port": 443},
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


# ---------------------------------------------------------------------------------------------------
# LeaderWorkerSet controller


def lws(images: Mapping[str, str]) -> list[Manifest]:
    """The LeaderWorkerSet controller with its admission webhooks: it creates each group's leader StatefulSet and the
    leader's worker StatefulSet; its pod webhook labels a group's pods (worker index, group key) and gives the workers
    the leader's address. Its own certificate rotator makes the webhooks' serving certificate and CA, writes them to
    the Secret the pod mounts and into the two webhook configurations' caBundle (names fixed in the controller)."""
    ns = LWS_NAMESPACE
    account = "lws-controller"
    service_name, secret = "lws-webhook-service", "lws-webhook-server-cert"  # the controller's defaults
    full = ["create", "delete", "get", "list", "patch", "update", "watch"]
    rules = [
        rule([""], ["nodes"], ["get", "list", "patch", "update", "watch"]),
        rule([""], ["pods", "services"], full),
        rule([""], ["pods/finalizers"], ["update"]),
        rule([""], ["secrets"], ["get", "list", "update", "watch"]),
        rule(["", "events.k8s.io"], ["events"], ["create", "get", "list", "patch", "update", "watch"]),
        rule(
            ["admissionregistration.k8s.io"],
            ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
            ["get", "list", "update", "watch"],
        ),
        rule(["apps"], ["controllerrevisions", "statefulsets"], full),
        rule(["apps"], ["controllerrevisions/finalizers", "statefulsets/finalizers"], ["update"]),
        rule(["apps"], ["controllerrevisions/status", "statefulsets/status"], ["get", "patch", "update"]),
    ]
    for group, kind in (
        ("leaderworkerset.x-k8s.io", "leaderworkersets"),
        ("disaggregatedset.x-k8s.io", "disaggregatedsets"),
    ):
        rules += [
            rule([group], [kind], full),
            rule([group], [f"{kind}/finalizers"], ["update"]),
            rule([group], [f"{kind}/status"], ["get", "patch", "update"]),
        ]
    config = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        # One replica: no lease to wait for after a restart; the namespace is where the rotator keeps its Secret.
        "leaderElection": {"leaderElect": False, "resourceNamespace": ns},
        "internalCertManagement": {"enable": True, "webhookServiceName": service_name, "webhookSecretName": secret},
        "webhook": {"port": 9443},
        "health": {"healthProbeBindAddress": ":8081"},
        "metrics": {"bindAddress": "0"},  # its metrics are not scraped here
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("lws-config", ns),
        "data": {"controller_manager_config.yaml": yaml.safe_dump(config, sort_keys=False)},
    }
    certs_dir = "/tmp/k8s-webhook-server/serving-certs"  # the controller's default certDir
    spec = pod_spec(
        account,
        [
            container(
                "manager",
                images["lws-controller"],
                ["--config=/etc/lws/controller_manager_config.yaml", "--zap-log-level=info"],
                resources("20m", "500m", "64Mi", "256Mi"),
                ports=[{"name": "webhook", "containerPort": 9443}, {"name": "probes", "containerPort": 8081}],
                livenessProbe=http_probe("/healthz", 8081, delay=10),
                readinessProbe=http_probe("/readyz", 8081),
                volumeMounts=[
                    {"name": "config", "mountPath": "/etc/lws", "readOnly": True},
                    {"name": "certs", "mountPath": certs_dir, "readOnly": True},
                ],
            )
        ],
        volumes=[
            {"name": "config", "configMap": {"name": "lws-config"}},
            {"name": "certs", "secret": {"secretName": secret}},
        ],
    )

    def hook(name: str, path: str, group: str, resource: str, operations: list[str], **extra: Any) -> dict[str, Any]:
        # No caBundle: the rotator fills it in.
        return {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": service_name, "namespace": ns, "path": path}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": operations, "resources": [resource]}],
            **extra,
        }

    # The pod webhooks see only the groups' pods: every other pod is admitted without them.
    group_pods = {
        "objectSelector": {"matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]}
    }
    lws_group, write = "leaderworkerset.x-k8s.io", ["CREATE", "UPDATE"]
    mutating = [
        hook(
            "mleaderworkerset.kb.io",
            "/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
            lws_group,
            "leaderworkersets",
            write,
        ),
        hook("mpod.kb.io", "/mutate--v1-pod", "", "pods", ["CREATE"], **group_pods),
    ]
    validating = [
        hook(
            "vleaderworkerset.kb.io",
            "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
            lws_group,
            "leaderworkersets",
            write,
        ),
        hook("vpod.kb.io", "/validate--v1-pod", "", "pods", write, **group_pods),
        hook(
            "vdisaggregatedset.kb.io",
            "/validate-disaggregatedset-x-k8s-io-v1-disaggregatedset",
            "disaggregatedset.x-k8s.io",
            "disaggregatedsets",
            write,
        ),
    ]
    return [
        namespace(ns),
        *account_with_role(account, ns, rules),
        config_map,
        # Created empty; the rotator writes the certificate and CA into it (server-side apply leaves its data alone).
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta(secret, ns), "type": "Opaque"},
        deployment("lws-controller", ns, spec),
        service(service_name, ns, [port("https", 443, 9443)], {"app.kubernetes.io/name": "lws-controller"}),
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": meta("lws-mutating-webhook-configuration"),
            "webhooks": mutating,
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": meta("lws-validating-webhook-configuration"),
            "webhooks": validating,
        },
    ]


# ---------------------------------------------------------------------------------------------------
# Storage: local-path-provisioner


def local_path(images: Mapping[str, str], volumes_dir: Path = VOLUMES_DIR) -> list[Manifest]:
    """Dynamic volumes, as a cloud's CSI driver gives them: the default StorageClass, bound on creation. Shared-
    filesystem mode: each volume is a directory under ``volumes_dir`` on the real node with no node affinity, so a
    claim binds by itself and pods on any node may use it (the fake nodes' pods never mount it). A helper pod on the
    real node makes and removes the directory (the project's helper, in place of the provisioner's shell scripts)."""
    ns = STORAGE_NAMESPACE
    account = "local-path-provisioner"
    rules = [
        rule([""], ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"], READ),
        rule([""], ["persistentvolumes"], ["get", "list", "watch", "create", "patch", "update", "delete"]),
        rule([""], ["events"], ["create", "patch"]),
        rule(["storage.k8s.io"], ["storageclasses"], READ),
    ]
    own = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(account, ns),
        "rules": [rule([""], ["pods"], ["get", "list", "watch", "create", "patch", "update", "delete"])],
    }
    helper_binary = "/bin/local-path-helper"
    config = {
        "sharedFileSystemPath": str(volumes_dir),
        "setupCommand": helper_binary,
        "teardownCommand": helper_binary,
    }
    helper_image = images["local-path-helper"]
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": PLATFORM_PRIORITY,
            "nodeSelector": NODE_SELECTOR,  # the volumes are on the real node (the provisioner adds a toleration)
            # Root, to make and remove directories under the node's root-owned volumes directory, including what the
            # claim's pods wrote there as other users (DAC_OVERRIDE); nothing else.
            "securityContext": {"runAsUser": 0, "runAsGroup": 0, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "helper-pod",
                    "image": helper_image,
                    "imagePullPolicy": "Never",
                    "resources": resources("10m", "100m", "16Mi", "64Mi"),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"], "add": ["DAC_OVERRIDE"]},
                    },
                }
            ],
        },
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("local-path-config", ns),
        "data": {
            "config.json": json.dumps(config, indent=2),
            "helperPod.yaml": yaml.safe_dump(helper_pod, sort_keys=False),
        },
    }
    env = [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    args = [
        "start",
        "--config=/etc/config/config.json",
        "--helper-pod-file=/etc/config/helperPod.yaml",
        f"--helper-image={helper_image}",
        f"--service-account-name={account}",
        "--configmap-name=local-path-config",
    ]
    spec = pod_spec(
        account,
        [
            container(
                "local-path-provisioner",
                images["local-path-provisioner"],
                args,
                resources("10m", "200m", "32Mi", "128Mi"),
                env=env,
                volumeMounts=[{"name": "config", "mountPath": "/etc/config", "readOnly": True}],
            )
        ],
        volumes=[{"name": "config", "configMap": {"name": "local-path-config"}}],
    )
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            **meta(STORAGE_CLASS),
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "Immediate",  # a claim binds on its own, before any pod uses it
        "reclaimPolicy": "Delete",
    }
    return [
        namespace(ns),
        *account_with_role(account, ns, rules),
        own,
        binding(account, account, account, ns, namespace=ns, role_kind="Role"),
        config_map,
        deployment("local-path-provisioner", ns, spec),
        storage_class,
    ]


# ---------------------------------------------------------------------------------------------------


def manifests(images: Mapping[str, str], versions: Versions, monitoring: Monitoring) -> list[Manifest]:
    """Every object of the platform, namespaces first."""
    out = [namespace(monitoring.namespace)] if monitoring.namespace != "kube-system" else []
    out += coredns(images)
    out += prometheus_operator(images, monitoring)
    out += prometheus(images, versions, monitoring)
    out += kube_state_metrics(images, monitoring)
    out += keda(images)
    out += lws(images)
    out += local_path(images)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what", nargs="?", default="manifests", choices=("manifests", "images", "stand-in-image", "prometheus-service")
    )
    args = parser.parse_args(argv)
    versions = Versions.load()
    images = versions.images()
    if args.what == "images":
        for binary, ref in images.items():
            print(ref, binary)
        return
    if args.what == "stand-in-image":  # pinned in .cluster/images.json, for the stacks that deploy it
        print(images[STAND_IN])
        return
    monitoring = Monitoring.of_stack()
    if args.what == "prometheus-service":
        print(f"{monitoring.namespace}/{PROMETHEUS_LB}")
        return
    yaml.safe_dump_all(manifests(images, versions, monitoring), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
