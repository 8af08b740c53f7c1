"""Fixtures for the policy tests: compliant Kubernetes objects, and calling policies the way
the engine does (props through ``deserialize_properties`` and ``unknown_checking_proxy``,
``ResourceValidationArgs`` / ``StackValidationArgs`` built as ``policy.py`` builds them)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any

from model_serving_policy import all_policies
from model_serving_policy.exporters import EXPORTER_ANNOTATION
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"registry.example.com/models/server:1.2.3@{DIGEST}"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_SELECTOR = {"nvidia.com/gpu.present": "true"}

POLICIES: dict[str, Policy] = {p.name: p for p in all_policies()}


# --- objects ----------------------------------------------------------------------------


def container(
    name: str = "server",
    *,
    cpu: str = "4",
    memory: str = "16Gi",
    gpus: int | str = 0,
    gpu_resource: str = "nvidia.com/gpu",
    image: str = IMAGE,
    probes: bool | None = None,
    shm: bool = False,
) -> dict[str, Any]:
    """A container every rule accepts under the default config (requests == limits)."""
    res: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        res[gpu_resource] = str(gpus)
    c: dict[str, Any] = {
        "name": name,
        "image": image,
        "resources": {"requests": dict(res), "limits": dict(res)},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if probes if probes is not None else bool(gpus):
        c["startupProbe"] = {"httpGet": {"path": "/healthz", "port": 8000}, "periodSeconds": 10, "failureThreshold": 60}
        c["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": 8000}}
        c["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8000}}
    if shm:
        c["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    return c


def pod_spec(
    containers: Sequence[dict[str, Any]],
    *,
    init: Sequence[dict[str, Any]] = (),
    gpu: bool | None = None,
) -> dict[str, Any]:
    """A pod spec; GPU scheduling (toleration, nodeSelector, /dev/shm) added when a
    container asks for GPUs."""
    uses_gpus = (
        gpu
        if gpu is not None
        else any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in containers)
    )
    spec: dict[str, Any] = {
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "priorityClassName": "models-serving",
        "containers": list(containers),
    }
    if init:
        spec["initContainers"] = list(init)
    if uses_gpus:
        spec["tolerations"] = [dict(GPU_TOLERATION)]
        spec["nodeSelector"] = dict(GPU_SELECTOR)
    if any(c.get("volumeMounts") for c in containers):
        spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    return spec


def deployment(
    name: str = "llm",
    namespace: str | None = "models",
    *,
    gpus: int = 1,
    containers: Sequence[dict[str, Any]] | None = None,
    replicas: int | None = None,
    max_surge: Any = 0,
    labels: Mapping[str, str] | None = None,
    kind: str = "Deployment",
    exporter: str | None = None,
) -> dict[str, Any]:
    """``exporter``: what its pods export on /metrics (the annotation the scraped-metrics rule reads)."""
    labels = dict(labels or {"app": name})
    if containers is None:
        containers = [container(gpus=gpus, shm=gpus > 1)]
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if namespace is not None:
        metadata["namespace"] = namespace
    if exporter is not None:
        metadata["annotations"] = {EXPORTER_ANNOTATION: exporter}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec(containers)},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if kind == "Deployment" and max_surge is not None:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 1}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec}


def hpa(
    target: str = "llm",
    namespace: str = "models",
    *,
    name: str | None = None,
    min_replicas: int | None = 1,
    max_replicas: Any = 3,
    metrics: list[dict[str, Any]] | None = None,
    kind: str = "Deployment",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
        "maxReplicas": max_replicas,
        "metrics": metrics
        if metrics is not None
        else [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "requests_in_flight"},
                    "target": {"type": "AverageValue", "averageValue": "8"},
                },
            }
        ],
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name or target, "namespace": namespace},
        "spec": spec,
    }


def scaled_object(
    target: str = "llm",
    namespace: str = "models",
    *,
    queries: Sequence[str] = ('sum(vllm:num_requests_waiting{namespace="models"})',),
    min_replicas: int | None = 1,
    max_replicas: int | None = 3,
) -> dict[str, Any]:
    """A KEDA ScaledObject with one Prometheus trigger per query."""
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": target},
        "triggers": [
            {
                "type": "prometheus",
                "name": f"t{i}",
                "metadata": {"serverAddress": "http://prometheus:9090", "query": q, "threshold": "5"},
            }
            for i, q in enumerate(queries)
        ],
    }
    if min_replicas is not None:
        spec["minReplicaCount"] = min_replicas
    if max_replicas is not None:
        spec["maxReplicaCount"] = max_replicas
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": target, "namespace": namespace},
        "spec": spec,
    }


def service_monitor(app: str = "llm", namespace: str = "models", *, name: str | None = None) -> dict[str, Any]:
    """Selects the Services labelled ``app`` (``service()`` labels none: give it labels)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": name or app, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": app}}, "endpoints": [{"port": "http"}]},
    }


def pod_monitor(app: str = "llm", namespace: str = "models") -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": app}}, "podMetricsEndpoints": [{"port": "http"}]},
    }


def prometheus_rule(namespace: str = "models", *, rules: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "alerts", "namespace": namespace},
        "spec": {"groups": [{"name": "serving", "rules": list(rules)}]},
    }


def cpu_metric(utilization: int = 70) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}},
    }


def pdb(
    app: str = "llm",
    namespace: str = "models",
    *,
    name: str | None = None,
    max_unavailable: Any = 1,
    min_available: Any = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": app}}}
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    if min_available is not None:
        spec["minAvailable"] = min_available
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name or app, "namespace": namespace},
        "spec": spec,
    }


def service(
    app: str = "llm",
    namespace: str = "models",
    *,
    type_: str = "ClusterIP",
    source_ranges: list[str] | None = None,
    annotations: dict[str, str] | None = None,
    selector: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": type_,
        "selector": selector if selector is not None else {"app": app},
        "ports": [{"port": 80, "targetPort": 8000}],
    }
    if source_ranges is not None:
        spec["loadBalancerSourceRanges"] = source_ranges
    metadata: dict[str, Any] = {"name": app, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def node_pool(gpu_limit: Any = 8, name: str = "gpu") -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"requirements": []}}}
    if gpu_limit is not None:
        spec["limits"] = {"nvidia.com/gpu": gpu_limit}
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}, "spec": spec}


def device_plugin() -> dict[str, Any]:
    """The NVIDIA device plugin DaemonSet as the program writes it (root, hostPath)."""
    c = container("nvidia-device-plugin", cpu="200m", memory="256Mi")
    c["securityContext"] = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}}
    spec = pod_spec([c], gpu=True)
    spec["priorityClassName"] = "system-node-critical"
    spec["volumes"] = [{"name": "device-plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "nvidia-device-plugin", "namespace": "nvidia-device-plugin"},
        "spec": {
            "selector": {"matchLabels": {"app": "nvidia-device-plugin"}},
            "template": {"metadata": {"labels": {"app": "nvidia-device-plugin"}}, "spec": spec},
        },
    }


DEVICE_PLUGIN_EXEMPTION = {
    "kind": "DaemonSet",
    "namespace": "nvidia-device-plugin",
    "name": "nvidia-device-plugin",
    "reason": "registers GPUs with the kubelet",
}

TYPES = {
    "Deployment": "kubernetes:apps/v1:Deployment",
    "StatefulSet": "kubernetes:apps/v1:StatefulSet",
    "DaemonSet": "kubernetes:apps/v1:DaemonSet",
    "ReplicaSet": "kubernetes:apps/v1:ReplicaSet",
    "Pod": "kubernetes:core/v1:Pod",
    "Job": "kubernetes:batch/v1:Job",
    "CronJob": "kubernetes:batch/v1:CronJob",
    "HorizontalPodAutoscaler": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "PodDisruptionBudget": "kubernetes:policy/v1:PodDisruptionBudget",
    "Service": "kubernetes:core/v1:Service",
    "NodePool": "kubernetes:karpenter.sh/v1:NodePool",
    "Namespace": "kubernetes:core/v1:Namespace",
    "ScaledObject": "kubernetes:keda.sh/v1alpha1:ScaledObject",
    "ServiceMonitor": "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    "PodMonitor": "kubernetes:monitoring.coreos.com/v1:PodMonitor",
    "PrometheusRule": "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
    "Gateway": "kubernetes:gateway.networking.k8s.io/v1:Gateway",
    "HTTPRoute": "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
    "InferencePool": "kubernetes:inference.networking.k8s.io/v1:InferencePool",
    "ServiceAccount": "kubernetes:core/v1:ServiceAccount",
    "Role": "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "RoleBinding": "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "PersistentVolumeClaim": "kubernetes:core/v1:PersistentVolumeClaim",
    "LeaderWorkerSet": "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet",
}


def type_of(obj: Mapping[str, Any]) -> str:
    """The Pulumi type of a wire-form object, as the Kubernetes provider names it (``core`` for the legacy group)."""
    api_version = str(obj["apiVersion"])
    return f"kubernetes:{api_version if '/' in api_version else f'core/{api_version}'}:{obj['kind']}"


def set_path(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set ``a.b[0].c`` in a copy of ``obj``."""
    out = copy.deepcopy(obj)
    cur: Any = out
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        cur = cur[int(part)] if part.isdigit() else cur.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value
    return out


# --- calling policies as the engine does ------------------------------------------------


def proxied(props: Mapping[str, Any], *, remediation: bool = False) -> Any:
    """Props as ``policy.py`` hands them to a policy."""
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(props)), remediation))


def options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def urn_of(resource_type: str, name: str) -> str:
    return f"urn:pulumi:test::model-serving::{resource_type}::{name}"


@dataclass
class Outcome:
    violations: list[str] = field(default_factory=list)
    #: URNs given with each violation (stack policies).
    urns: list[str | None] = field(default_factory=list)
    #: The message of the UnknownValueError the policy raised, if any.
    undecided: str | None = None

    def __bool__(self) -> bool:
        return bool(self.violations)

    def text(self) -> str:
        return "\n".join(self.violations)


def _run(result: Any) -> Any:
    if isawaitable(result):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(result)
        finally:
            loop.close()
    return result


def check(
    policy_name: str,
    obj: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    resource_type: str | None = None,
    provider: Mapping[str, Any] | None = None,
) -> Outcome:
    """Run a resource policy's ``validate`` on one object."""
    policy = POLICIES[policy_name]
    assert isinstance(policy, ResourceValidationPolicy)
    rtype = resource_type or type_of(obj)
    rname = name or obj.get("metadata", {}).get("name") or "res"
    prov = (
        PolicyProviderResource("pulumi:providers:kubernetes", proxied(provider), "urn:provider", "k8s")
        if provider is not None
        else None
    )
    args = ResourceValidationArgs(rtype, proxied(obj), urn_of(rtype, rname), rname, options(), prov, config)
    out = Outcome()

    def report(message: str, urn: str | None = None) -> None:
        out.violations.append(message)
        out.urns.append(urn)

    try:
        _run(policy.validate(args, report))
    except UnknownValueError as e:
        out.undecided = e.message
    return out


def remediate(
    policy_name: str, obj: Mapping[str, Any], config: Mapping[str, Any] | None = None, *, name: str | None = None
) -> Any:
    """Run a resource policy's ``remediate`` as the engine's Remediate does."""
    policy = POLICIES[policy_name]
    assert isinstance(policy, ResourceValidationPolicy)
    rtype = type_of(obj)
    rname = name or obj.get("metadata", {}).get("name") or "res"
    args = ResourceValidationArgs(
        rtype, proxied(obj, remediation=True), urn_of(rtype, rname), rname, options(), None, config
    )
    return _run(policy.remediate(args))


def stack(objs: Sequence[Mapping[str, Any]], *, names: Sequence[str] | None = None) -> list[PolicyResource]:
    resources = []
    for i, obj in enumerate(objs):
        rtype = type_of(obj)
        rname = names[i] if names else obj.get("metadata", {}).get("name") or f"res{i}"
        resources.append(
            PolicyResource(rtype, proxied(obj), urn_of(rtype, rname), rname, options(), None, None, [], {})
        )
    return resources


def check_stack(
    policy_name: str,
    objs: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any] | None = None,
    *,
    names: Sequence[str] | None = None,
) -> Outcome:
    """Run a stack policy's ``validate`` over objects (as outputs)."""
    policy = POLICIES[policy_name]
    assert isinstance(policy, StackValidationPolicy)
    out = Outcome()

    def report(message: str, urn: str | None = None) -> None:
        out.violations.append(message)
        out.urns.append(urn)

    try:
        _run(policy.validate(StackValidationArgs(stack(objs, names=names), config), report))
    except UnknownValueError as e:
        out.undecided = e.message
    return out
