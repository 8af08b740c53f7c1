"""The GPU pool's cluster-wide objects: the scheduling contract GPU workloads follow, the NVIDIA device plugin and
DCGM exporter DaemonSets (with their ConfigMaps, NetworkPolicies, Service and ServiceMonitor), the RuntimeClass and
the Karpenter NodePool; and :func:`plan`, the order GpuNodePool registers them in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import yaml

from components.config import GpuPoolConfig, MonitoringConfig
from components.config.engines import DCGM, DCGM_COUNTERS, EXPORTER_ANNOTATION
from components.specs import wire
from components.specs.base import PART_OF, Obj, Step, config_map, meta, namespace
from components.specs.monitoring import service_monitor_for
from components.specs.network import from_namespace, isolation_policy

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "DCGM_EXPORTER_NAME",
    "DCGM_PORT",
    "DEVICE_PLUGIN_NAME",
    "GpuScheduling",
    "dcgm_counters",
    "dcgm_exporter_daemon_set",
    "dcgm_labels",
    "dcgm_network_policy",
    "dcgm_service",
    "dcgm_service_monitor",
    "device_plugin_config",
    "device_plugin_daemon_set",
    "device_plugin_labels",
    "device_plugin_network_policy",
    "device_plugin_security_context",
    "gpu_scheduling",
    "karpenter_node_pool",
    "runtime_class",
]

DEVICE_PLUGIN_NAME = "nvidia-device-plugin"
DCGM_EXPORTER_NAME = "dcgm-exporter"
DCGM_PORT = 9400


@dataclass(frozen=True)
class GpuScheduling:
    """What a GPU workload needs to land on the pool: GpuNodePool's contract with the models placed on it.

    A value, nothing more: the pool's GPU ledger travels beside it in the component that reserves from it
    (:class:`components.capacity.PoolScheduling`).
    """

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, str], ...]
    runtime_class_name: str
    gpu_resource_name: str

    def wire(self) -> dict[str, Any]:
        """The contract as plain data (the component's registered output)."""
        return {
            "node_selector": dict(self.node_selector),
            "tolerations": [dict(t) for t in self.tolerations],
            "runtime_class_name": self.runtime_class_name,
            "gpu_resource_name": self.gpu_resource_name,
        }


def gpu_scheduling(pool: GpuPoolConfig) -> GpuScheduling:
    return GpuScheduling(
        node_selector=dict(pool.node_selector),
        tolerations=({"key": pool.taint.key, "operator": "Exists", "effect": pool.taint.effect},),
        runtime_class_name=pool.runtime_class,
        gpu_resource_name=pool.gpu_resource_name,
    )


def device_plugin_labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": DEVICE_PLUGIN_NAME,
        "app.kubernetes.io/instance": DEVICE_PLUGIN_NAME,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def device_plugin_config(pool: GpuPoolConfig) -> wire.ConfigMap:
    settings: Obj = {"version": "v1", "flags": {"migStrategy": pool.device_plugin.mig_strategy}}
    if pool.device_plugin.time_slicing_replicas > 1:
        settings["sharing"] = {
            "timeSlicing": {
                "resources": [{"name": pool.gpu_resource_name, "replicas": pool.device_plugin.time_slicing_replicas}]
            }
        }
    return config_map(
        f"{DEVICE_PLUGIN_NAME}-config",
        pool.device_plugin.namespace,
        device_plugin_labels(),
        {"config.yaml": yaml.safe_dump(settings, sort_keys=False)},
    )


def device_plugin_security_context(pool: GpuPoolConfig) -> wire.SecurityContext:
    """Root (it registers a socket in the kubelet's directory), read-only, no capabilities but what MIG needs.

    With a MIG strategy other than none the plugin enumerates MIG devices through NVML, which needs SYS_ADMIN:
    NVIDIA's own deployment (the nvidia-device-plugin chart) adds it then, and so does this one. Kubernetes
    treats a container with SYS_ADMIN as able to escalate, so that case says so instead of claiming otherwise.
    """
    mig = pool.device_plugin.mig_strategy != "none"
    return {
        "allowPrivilegeEscalation": mig,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": False,
        "runAsUser": 0,
        "runAsGroup": 0,
        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]} if mig else {"drop": ["ALL"]},
    }


def device_plugin_daemon_set(pool: GpuPoolConfig) -> wire.DaemonSet:
    labels = device_plugin_labels()
    env: list[wire.EnvVar] = [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}]
    if pool.device_plugin.mig_strategy != "none":
        # The container toolkit then exposes the MIG monitor capability the plugin reads (as NVIDIA's chart does).
        env.append({"name": "NVIDIA_MIG_MONITOR_DEVICES", "value": "all"})
    # No probes: the plugin serves nothing but a gRPC unix socket to the kubelet (no health endpoint, no port),
    # NVIDIA's chart defines none, and the pinned image cannot be relied on for a shell to exec a check in. The
    # kubelet itself watches the registration: a plugin that dies is restarted, and a node whose plugin socket is
    # gone reports zero allocatable GPUs.
    container: wire.Container = {
        "name": DEVICE_PLUGIN_NAME,
        "image": pool.device_plugin.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["--config-file=/config/config.yaml"],
        "env": env,
        "securityContext": device_plugin_security_context(pool),
        # Guaranteed QoS: it must never be the pod a node under pressure evicts.
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "100m", "memory": "128Mi"},
        },
        "volumeMounts": [
            {"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"},
            {"name": "config", "mountPath": "/config", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes: list[wire.Volume] = [
        {"name": "device-plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
        {"name": "config", "configMap": {"name": f"{DEVICE_PLUGIN_NAME}-config"}},
        # The root filesystem is read-only; a scratch /tmp in case a library wants one.
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
    ]
    return _node_daemon_set(pool, DEVICE_PLUGIN_NAME, pool.device_plugin.namespace, labels, container, volumes)


def _node_daemon_set(
    pool: GpuPoolConfig,
    name: str,
    ns: str,
    labels: Mapping[str, str],
    container: wire.Container,
    volumes: Sequence[wire.Volume],
    *,
    priority: str = "system-node-critical",
    runtime_class: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> wire.DaemonSet:
    """A DaemonSet on every GPU node of the pool (its selector and taint), one pod at a time on updates."""
    scheduling = gpu_scheduling(pool)
    pod: wire.PodSpec = {
        "priorityClassName": priority,
        "automountServiceAccountToken": False,
        "nodeSelector": dict(scheduling.node_selector),
        "tolerations": [
            *(cast(wire.Toleration, dict(t)) for t in scheduling.tolerations),
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
        ],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": list(volumes),
    }
    if runtime_class:
        pod["runtimeClassName"] = scheduling.runtime_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(name, ns, labels, annotations=dict(annotations or {})),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def dcgm_labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": DCGM_EXPORTER_NAME,
        "app.kubernetes.io/instance": DCGM_EXPORTER_NAME,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def dcgm_counters(pool: GpuPoolConfig) -> wire.ConfigMap:
    """The exporter's counters file, from the one DCGM metric list (engines.DCGM_COUNTERS)."""
    lines = ["# DCGM field, Prometheus metric type, help message"]
    lines += [f"{name}, {kind}, {text}" for name, kind, text in DCGM_COUNTERS]
    data = {"counters.csv": "\n".join(lines) + "\n"}
    return config_map(f"{DCGM_EXPORTER_NAME}-counters", pool.dcgm_exporter.namespace, dcgm_labels(), data)


def dcgm_exporter_daemon_set(pool: GpuPoolConfig) -> wire.DaemonSet:
    """NVIDIA's DCGM exporter on every GPU node: GPU metrics labelled with the pod each GPU is given to.

    It needs the GPUs without requesting any (the nvidia runtime class, all devices visible) and the kubelet's
    pod-resources socket (a hostPath, root) to name the pods. No capability: the device fields it exports need no
    profiling privilege (SYS_ADMIN), which NVIDIA's chart adds for the DCP fields this list leaves out.
    """
    labels = dcgm_labels()
    http: wire.HTTPGetAction = {"path": "/health", "port": "metrics"}
    container: wire.Container = {
        "name": DCGM_EXPORTER_NAME,
        "image": pool.dcgm_exporter.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-f", "/etc/dcgm-exporter/counters.csv", "--address", f":{DCGM_PORT}"],
        "env": [
            {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
        ],
        "ports": [{"name": "metrics", "containerPort": DCGM_PORT, "protocol": "TCP"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": False,
            "runAsUser": 0,
            "runAsGroup": 0,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"cpu": "100m", "memory": "512Mi"},
        },
        # DCGM starts its host engine first: give it a minute before the probes count.
        "startupProbe": {"httpGet": http, "periodSeconds": 5, "failureThreshold": 24},
        "readinessProbe": {"httpGet": http, "periodSeconds": 10},
        "livenessProbe": {"httpGet": http, "periodSeconds": 30, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True},
            {"name": "counters", "mountPath": "/etc/dcgm-exporter", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes: list[wire.Volume] = [
        {"name": "pod-resources", "hostPath": {"path": "/var/lib/kubelet/pod-resources"}},
        {"name": "counters", "configMap": {"name": f"{DCGM_EXPORTER_NAME}-counters"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    return _node_daemon_set(
        pool,
        DCGM_EXPORTER_NAME,
        pool.dcgm_exporter.namespace,
        labels,
        container,
        volumes,
        runtime_class=True,
        annotations={EXPORTER_ANNOTATION: DCGM.name},  # for the policy pack's scraped-metrics rule
    )


def dcgm_service(pool: GpuPoolConfig) -> wire.Service:
    """The exporters' metrics port, for the ServiceMonitor (cluster-internal)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(DCGM_EXPORTER_NAME, pool.dcgm_exporter.namespace, dcgm_labels()),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": DCGM_EXPORTER_NAME},
            "ports": [{"name": "metrics", "port": DCGM_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def dcgm_network_policy(pool: GpuPoolConfig, monitoring: MonitoringConfig) -> wire.NetworkPolicy:
    """Only Prometheus reaches the exporters, and they reach nothing (DCGM runs inside the exporter)."""
    rule: wire.NetworkPolicyIngressRule = {
        "from": [from_namespace(monitoring.namespace)],
        "ports": [{"protocol": "TCP", "port": DCGM_PORT}],
    }
    return isolation_policy(
        DCGM_EXPORTER_NAME, pool.dcgm_exporter.namespace, dcgm_labels(), {}, [rule], deny_egress=True
    )


def dcgm_service_monitor(pool: GpuPoolConfig, monitoring: MonitoringConfig) -> Obj:
    """honorLabels: the exporter's own namespace and pod labels name the pod each GPU serves, not the exporter."""
    return service_monitor_for(
        DCGM_EXPORTER_NAME,
        pool.dcgm_exporter.namespace,
        dcgm_labels(),
        {"app.kubernetes.io/name": DCGM_EXPORTER_NAME},
        "metrics",
        monitoring,
        honor_labels=True,
    )


def device_plugin_network_policy(pool: GpuPoolConfig) -> wire.NetworkPolicy:
    """Default deny for the plugin's namespace: the plugin talks to the kubelet over a unix socket, not the network."""
    return isolation_policy(
        "default-deny", pool.device_plugin.namespace, device_plugin_labels(), {}, [], deny_egress=True
    )


def runtime_class(pool: GpuPoolConfig) -> wire.RuntimeClass:
    scheduling = gpu_scheduling(pool)
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": meta(pool.runtime_class, labels={"app.kubernetes.io/part-of": PART_OF}),
        "handler": "nvidia",
        # Pods naming this class land on GPU nodes even if they forget the selector.
        "scheduling": {
            "nodeSelector": dict(scheduling.node_selector),
            "tolerations": [cast(wire.Toleration, dict(t)) for t in scheduling.tolerations],
        },
    }


def karpenter_node_pool(pool: GpuPoolConfig) -> Obj | None:
    karpenter = pool.karpenter
    if karpenter is None:
        return None
    requirements: list[Obj] = [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(karpenter.capacity_types)},
    ]
    if karpenter.instance_types:
        requirements.append(
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(karpenter.instance_types)}
        )
    if karpenter.gpu_products:
        requirements.append(
            {"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": list(karpenter.gpu_products)}
        )
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": meta(pool.name, labels={"app.kubernetes.io/part-of": PART_OF}),
        "spec": {
            "template": {
                "metadata": {"labels": dict(pool.node_selector)},
                "spec": {
                    "nodeClassRef": {
                        "group": karpenter.node_class_group,
                        "kind": karpenter.node_class_kind,
                        "name": karpenter.node_class_name,
                    },
                    "requirements": requirements,
                    "taints": [{"key": pool.taint.key, "value": pool.taint.value, "effect": pool.taint.effect}],
                    "expireAfter": karpenter.expire_after,
                },
            },
            # The GPU budget: Karpenter stops launching nodes once the pool holds this many GPUs.
            "limits": {pool.gpu_resource_name: str(pool.gpu_budget)},
            "disruption": {
                "consolidationPolicy": karpenter.consolidation_policy,
                "consolidateAfter": karpenter.consolidate_after,
                "budgets": [{"nodes": karpenter.disruption_budget_nodes}],
            },
        },
    }


def plan(pool: GpuPoolConfig, monitoring: MonitoringConfig) -> list[Step]:
    """RuntimeClass, the device plugin (namespace, NetworkPolicy, ConfigMap, DaemonSet), the DCGM exporter (the
    same, a Service and its ServiceMonitor), Karpenter NodePool. ``monitoring``: the ServiceMonitor's labels."""
    steps = [Step("runtime-class", runtime_class(pool))]
    if pool.device_plugin.enabled:
        ns = "plugin-namespace"
        steps += [
            Step(ns, namespace(pool.device_plugin.namespace, pod_security="privileged")),
            Step("plugin-network-policy", device_plugin_network_policy(pool), after=(ns,)),
            Step("plugin-config", device_plugin_config(pool), after=(ns,)),
            Step("plugin", device_plugin_daemon_set(pool), after=(ns, "plugin-config")),
        ]
    if pool.dcgm_exporter.enabled:
        ns = "dcgm-namespace"
        steps += [
            Step(ns, namespace(pool.dcgm_exporter.namespace, pod_security="privileged")),
            Step("dcgm-network-policy", dcgm_network_policy(pool, monitoring), after=(ns,)),
            Step("dcgm-counters", dcgm_counters(pool), after=(ns,)),
            Step("dcgm-exporter", dcgm_exporter_daemon_set(pool), after=(ns, "dcgm-counters", "runtime-class")),
            Step("dcgm-service", dcgm_service(pool), after=(ns,)),
            Step("dcgm-service-monitor", dcgm_service_monitor(pool, monitoring), after=(ns,)),
        ]
    node_pool = karpenter_node_pool(pool)
    if node_pool is not None:
        steps.append(Step("node-pool", node_pool))
    return steps
