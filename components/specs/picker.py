"""An InferencePool's endpoint picker, one per track: its Deployment, Service, RBAC, config and NetworkPolicy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.specs import wire
from components.specs.base import (
    OBJECTIVE_GROUP,
    PICKER_SELECTOR,
    POOL_GROUP,
    Obj,
    container_security_context,
    meta,
    model_selector,
)
from components.specs.network import DNS_EGRESS, from_namespace, isolation_policy, service_wait_for

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "PICKER_BUILTIN_ENGINE",
    "PICKER_GRPC_PORT",
    "PICKER_HEALTH_PORT",
    "PICKER_METRICS_PORT",
    "PICKER_UID",
    "SCORERS",
    "picker_args",
    "picker_config",
    "picker_deployment",
    "picker_labels",
    "picker_name",
    "picker_network_policy",
    "picker_objects",
    "picker_role",
    "picker_role_binding",
    "picker_service",
    "picker_service_account",
]

# The endpoint picker's ports: the gateway's ext-proc calls, its gRPC health service, its Prometheus metrics.
PICKER_GRPC_PORT = 9002
PICKER_HEALTH_PORT = 9003
PICKER_METRICS_PORT = 9090
# The engine whose metric names the picker knows without being told.
PICKER_BUILTIN_ENGINE = "vllm"
PICKER_UID = 65532  # the picker image's distroless nonroot user
# The scorers a pool's picker may weigh, by their key under routing.picker.scorers.
SCORERS = {"queue": "queue-scorer", "kv_cache": "kv-cache-utilization-scorer", "prefix_cache": "prefix-cache-scorer"}


def picker_name(track: ModelConfig) -> str:
    return f"{track.instance}-epp"


def picker_labels(track: ModelConfig) -> dict[str, str]:
    return {**PICKER_SELECTOR, "app.kubernetes.io/name": picker_name(track), "app.kubernetes.io/managed-by": "pulumi"}


def _picker_selector(track: ModelConfig) -> dict[str, str]:
    return {"app.kubernetes.io/name": picker_name(track)}


def picker_config(track: ModelConfig) -> str:
    """The picker's EndpointPickerConfig: where it reads the pods' load (the engine's metric names) and the
    weighted scorers; the highest total score wins."""
    engine = track.engine_spec
    extractor: Obj = {"defaultEngine": engine.name}
    if engine.name != PICKER_BUILTIN_ENGINE:  # the picker knows vLLM's metric names; the others it is told
        extractor["engineConfigs"] = [
            {
                "name": engine.name,
                "queuedRequestsSpec": engine.queue_metric,
                "runningRequestsSpec": engine.running_metric,
                "kvUsageSpec": engine.kv_cache_metric or "",
                "loraSpec": "",
                "cacheInfoSpec": "",
            }
        ]
    weights = {SCORERS[attr]: getattr(track.routing.picker.scorers, attr) for attr in SCORERS}
    scorers = [name for name, weight in weights.items() if weight > 0]
    config = {
        "apiVersion": f"{OBJECTIVE_GROUP}/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            {"type": "metrics-data-source"},
            {"type": "core-metrics-extractor", "parameters": extractor},
            *({"type": name} for name in [*scorers, "max-score-picker", "single-profile-handler"]),
        ],
        "dataLayer": {
            "sources": [{"pluginRef": "metrics-data-source", "extractors": [{"pluginRef": "core-metrics-extractor"}]}]
        },
        "schedulingProfiles": [
            {
                "name": "default",
                "plugins": [
                    *({"pluginRef": name, "weight": weights[name]} for name in scorers),
                    {"pluginRef": "max-score-picker"},
                ],
            }
        ],
    }
    # JSON, which the picker reads as the YAML it is, and the policy pack reads without a YAML parser.
    return json.dumps(config, separators=(",", ":"))


def picker_args(track: ModelConfig) -> list[str]:
    args = [
        f"--pool-name={track.instance}",
        f"--pool-namespace={track.namespace}",
        f"--pool-group={POOL_GROUP}",
        # In the args rather than a ConfigMap: a changed config rolls the picker's pods.
        f"--config-text={picker_config(track)}",
        f"--grpc-port={PICKER_GRPC_PORT}",
        f"--grpc-health-port={PICKER_HEALTH_PORT}",
        f"--metrics-port={PICKER_METRICS_PORT}",
        # Its metrics port is reachable from the monitoring namespace only (NetworkPolicy), without the token
        # reviews that would need a ClusterRole.
        "--metrics-endpoint-auth=false",
    ]
    if track.routing.picker.replicas > 1:
        args.append("--ha-enable-leader-election")
    return args


def _grpc_probe(period: int, failures: int) -> wire.Probe:
    return {
        "grpc": {"port": PICKER_HEALTH_PORT, "service": "inference-extension"},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def picker_deployment(track: ModelConfig) -> wire.Deployment:
    picker = track.routing.picker
    if picker.image is None:
        raise ValueError(f"model {track.name!r}: routing.picker.image is required with mode inference-pool")
    amounts = {"cpu": picker.cpu, "memory": picker.memory, "ephemeral-storage": "1Gi"}
    container: wire.Container = {
        "name": "epp",
        "image": picker.image,
        "imagePullPolicy": "IfNotPresent",
        "args": picker_args(track),
        "ports": [
            {"name": "grpc", "containerPort": PICKER_GRPC_PORT, "protocol": "TCP"},
            {"name": "grpc-health", "containerPort": PICKER_HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": PICKER_METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": {**container_security_context(), "runAsUser": PICKER_UID, "runAsGroup": PICKER_UID},
        "readinessProbe": _grpc_probe(5, 3),
        "livenessProbe": _grpc_probe(10, 3),
    }
    labels = picker_labels(track)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(picker_name(track), track.namespace, labels),
        "spec": {
            "replicas": picker.replicas,
            "selector": {"matchLabels": _picker_selector(track)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": picker_name(track),
                    # It takes the model's requests: it ranks as the model's pods do.
                    "priorityClassName": track.priority_class.name,
                    # It watches the pool and its pods through the API server.
                    "automountServiceAccountToken": True,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": PICKER_UID,
                        "runAsGroup": PICKER_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 130,
                    "containers": [container],
                },
            },
        },
    }


def picker_service(track: ModelConfig) -> wire.Service:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(
            picker_name(track), track.namespace, picker_labels(track), annotations=service_wait_for("ClusterIP")
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": _picker_selector(track),
            "ports": [
                {"name": "grpc", "port": PICKER_GRPC_PORT, "targetPort": "grpc", "appProtocol": "http2"},
                {"name": "metrics", "port": PICKER_METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def picker_service_account(track: ModelConfig) -> wire.ServiceAccount:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(picker_name(track), track.namespace, picker_labels(track)),
        "automountServiceAccountToken": False,  # the pod template opts in
    }


def picker_role(track: ModelConfig) -> wire.Role:
    """What the picker reads: its pool, the objectives naming its models, the pods it picks from; leases when
    several picker pods elect a leader."""
    read = ["get", "list", "watch"]
    rules: list[wire.PolicyRule] = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": read},
        {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": read},
        {"apiGroups": [OBJECTIVE_GROUP], "resources": ["inferenceobjectives", "inferencemodelrewrites"], "verbs": read},
    ]
    if track.routing.picker.replicas > 1:
        rules += [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "update", "patch"],
            },
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(picker_name(track), track.namespace, picker_labels(track)),
        "rules": rules,
    }


def picker_role_binding(track: ModelConfig) -> wire.RoleBinding:
    name = picker_name(track)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(name, track.namespace, picker_labels(track)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": track.namespace}],
    }


def picker_network_policy(
    track: ModelConfig, config: GatewayConfig, monitoring: MonitoringConfig
) -> wire.NetworkPolicy:
    """The gateway's proxies call the picker; Prometheus scrapes it. It talks to DNS, the API server and its
    model's pods (their metrics)."""
    ingress: list[wire.NetworkPolicyIngressRule] = [
        {
            "from": [from_namespace(config.proxy_namespace or config.namespace)],
            "ports": [{"protocol": "TCP", "port": PICKER_GRPC_PORT}],
        }
    ]
    if monitoring.enabled:
        ingress.append(
            {
                "from": [from_namespace(monitoring.namespace)],
                "ports": [{"protocol": "TCP", "port": PICKER_METRICS_PORT}],
            }
        )
    egress: list[wire.NetworkPolicyEgressRule] = [
        DNS_EGRESS,
        {
            "to": [{"podSelector": {"matchLabels": model_selector(track)}}],
            "ports": [{"protocol": "TCP", "port": track.port}],
        },
        # The API server's address is the cluster's own; its port is 443 behind the kubernetes Service, 6443 on
        # most control planes.
        {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]},
    ]
    return isolation_policy(
        picker_name(track), track.namespace, picker_labels(track), _picker_selector(track), ingress, egress=egress
    )


def picker_objects(
    track: ModelConfig, config: GatewayConfig, monitoring: MonitoringConfig
) -> dict[str, Mapping[str, Any]]:
    """A track's endpoint picker, by step name: what it needs before its Deployment, then the Deployment."""
    return {
        "service-account": picker_service_account(track),
        "role": picker_role(track),
        "role-binding": picker_role_binding(track),
        "network-policy": picker_network_policy(track, config, monitoring),
        "service": picker_service(track),
        "deployment": picker_deployment(track),
    }
