"""Pure builders of the objects that route requests to a model through a Gateway (``routing.mode`` gateway or
inference-pool): the Gateway the stack may create, each model's HTTPRoute, and in mode inference-pool the
InferencePool of each track (stable, canary) with its endpoint picker (Deployment, Service, RBAC, config,
NetworkPolicy). The model's own objects (Deployments, Services, NetworkPolicy) are :mod:`components.specs`'.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.config.schema import MODEL_HEADER
from components.specs import (
    DNS_EGRESS,
    PART_OF,
    PICKER_SELECTOR,
    Obj,
    _from_namespace,
    _meta,
    _network_policy,
    container_security_context,
    model_labels,
    model_selector,
    selector_labels,
    service_wait_for,
)

GATEWAY_GROUP = "gateway.networking.k8s.io"
POOL_GROUP = "inference.networking.k8s.io"
OBJECTIVE_GROUP = "inference.networking.x-k8s.io"
POOL_KIND = "InferencePool"

# The endpoint picker's ports: the gateway's ext-proc calls, its gRPC health service, its Prometheus metrics.
PICKER_GRPC_PORT = 9002
PICKER_HEALTH_PORT = 9003
PICKER_METRICS_PORT = 9090
# The engine whose metric names the picker knows without being told.
PICKER_BUILTIN_ENGINE = "vllm"
PICKER_UID = 65532  # the picker image's distroless nonroot user
# The scorers a pool's picker may weigh, by their key under routing.picker.scorers.
SCORERS = {"queue": "queue-scorer", "kv_cache": "kv-cache-utilization-scorer", "prefix_cache": "prefix-cache-scorer"}


# ---------------------------------------------------------------------------------------------
# Gateway and HTTPRoute
# ---------------------------------------------------------------------------------------------


def gateway(config: GatewayConfig, namespaces: Sequence[str]) -> Obj:
    """The Gateway the stack creates (``gateway.gatewayClassName`` set): one HTTP listener admitting HTTPRoutes
    from ``namespaces`` (the routed models') only."""
    if config.gateway_class_name is None:
        raise ValueError("gateway.gatewayClassName is not set: the Gateway exists already")
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": _meta(config.name, config.namespace, _labels("gateway")),
        "spec": {
            "gatewayClassName": config.gateway_class_name,
            "listeners": [
                {
                    "name": "http",
                    "protocol": "HTTP",
                    "port": config.port,
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/metadata.name",
                                        "operator": "In",
                                        "values": sorted(set(namespaces)),
                                    }
                                ]
                            },
                        },
                        "kinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
                    },
                }
            ],
        },
    }


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def split(model: ModelConfig) -> list[tuple[ModelConfig, int]]:
    """The model's tracks and the share of requests (%) each takes: the stable one, and its canary's."""
    if model.canary is None:
        return [(model, 100)]
    weight = model.canary.weight
    return [(model, 100 - weight), (model.canary_track(), weight)]


def _backend(track: ModelConfig, weight: int) -> Obj:
    if track.routing.mode == "inference-pool":
        return {"group": POOL_GROUP, "kind": POOL_KIND, "name": track.instance, "weight": weight}
    return {"group": "", "kind": "Service", "name": track.instance, "port": track.service.port, "weight": weight}


def http_route(model: ModelConfig, config: GatewayConfig) -> Obj:
    """The model's HTTPRoute on the Gateway: a path prefix (stripped) or the model-name header, to its Service
    (mode gateway) or InferencePool (mode inference-pool), split by weight with a canary."""
    routing = model.routing
    rule: Obj
    if routing.match == "path":
        rule = {
            "matches": [{"path": {"type": "PathPrefix", "value": routing.path}}],
            # The server answers under /v1/...: the route's prefix is the gateway's, not the server's.
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                }
            ],
        }
    else:
        rule = {"matches": [{"headers": [{"type": "Exact", "name": MODEL_HEADER, "value": model.model_id}]}]}
    rule["backendRefs"] = [_backend(track, weight) for track, weight in split(model)]
    parent = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": config.name, "namespace": config.namespace}
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(model.name, model.namespace, model_labels(model)),
        "spec": {"parentRefs": [parent], "rules": [rule]},
    }


# ---------------------------------------------------------------------------------------------
# InferencePool and its endpoint picker (one of each per track)
# ---------------------------------------------------------------------------------------------


def picker_name(track: ModelConfig) -> str:
    return f"{track.instance}-epp"


def picker_labels(track: ModelConfig) -> dict[str, str]:
    return {**PICKER_SELECTOR, "app.kubernetes.io/name": picker_name(track), "app.kubernetes.io/managed-by": "pulumi"}


def _picker_selector(track: ModelConfig) -> dict[str, str]:
    return {"app.kubernetes.io/name": picker_name(track)}


def inference_pool(track: ModelConfig) -> Obj:
    """The track's pods on their serving port, and the picker that chooses among them."""
    picker = track.routing.picker
    return {
        "apiVersion": f"{POOL_GROUP}/v1",
        "kind": POOL_KIND,
        "metadata": _meta(track.instance, track.namespace, model_labels(track)),
        "spec": {
            "selector": {"matchLabels": selector_labels(track)},
            "targetPorts": [{"number": track.port}],
            "endpointPickerRef": {
                "group": "",
                "kind": "Service",
                "name": picker_name(track),
                "port": {"number": PICKER_GRPC_PORT},
                "failureMode": picker.failure_mode,
            },
        },
    }


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


def _grpc_probe(period: int, failures: int) -> Obj:
    return {
        "grpc": {"port": PICKER_HEALTH_PORT, "service": "inference-extension"},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def picker_deployment(track: ModelConfig) -> Obj:
    picker = track.routing.picker
    if picker.image is None:
        raise ValueError(f"model {track.name!r}: routing.picker.image is required with mode inference-pool")
    amounts = {"cpu": picker.cpu, "memory": picker.memory, "ephemeral-storage": "1Gi"}
    container: Obj = {
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
        "metadata": _meta(picker_name(track), track.namespace, labels),
        "spec": {
            "replicas": picker.replicas,
            "selector": {"matchLabels": _picker_selector(track)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": picker_name(track),
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


def picker_service(track: ModelConfig) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
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


def picker_service_account(track: ModelConfig) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(picker_name(track), track.namespace, picker_labels(track)),
        "automountServiceAccountToken": False,  # the pod template opts in
    }


def picker_role(track: ModelConfig) -> Obj:
    """What the picker reads: its pool, the objectives naming its models, the pods it picks from; leases when
    several picker pods elect a leader."""
    read = ["get", "list", "watch"]
    rules: list[Obj] = [
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
        "metadata": _meta(picker_name(track), track.namespace, picker_labels(track)),
        "rules": rules,
    }


def picker_role_binding(track: ModelConfig) -> Obj:
    name = picker_name(track)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, track.namespace, picker_labels(track)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": track.namespace}],
    }


def picker_network_policy(track: ModelConfig, config: GatewayConfig, monitoring: MonitoringConfig) -> Obj:
    """The gateway's proxies call the picker; Prometheus scrapes it. It talks to DNS, the API server and its
    model's pods (their metrics)."""
    ingress: list[Obj] = [
        {
            "from": [_from_namespace(config.proxy_namespace or config.namespace)],
            "ports": [{"protocol": "TCP", "port": PICKER_GRPC_PORT}],
        }
    ]
    if monitoring.enabled:
        ingress.append(
            {
                "from": [_from_namespace(monitoring.namespace)],
                "ports": [{"protocol": "TCP", "port": PICKER_METRICS_PORT}],
            }
        )
    egress: list[Obj] = [
        DNS_EGRESS,
        {
            "to": [{"podSelector": {"matchLabels": model_selector(track)}}],
            "ports": [{"protocol": "TCP", "port": track.port}],
        },
        # The API server's address is the cluster's own; its port is 443 behind the kubernetes Service, 6443 on
        # most control planes.
        {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]},
    ]
    return _network_policy(
        picker_name(track), track.namespace, picker_labels(track), _picker_selector(track), ingress, egress=egress
    )


def picker_objects(track: ModelConfig, config: GatewayConfig, monitoring: MonitoringConfig) -> dict[str, Obj]:
    """A track's endpoint picker, by step name: what it needs before its Deployment, then the Deployment."""
    return {
        "service-account": picker_service_account(track),
        "role": picker_role(track),
        "role-binding": picker_role_binding(track),
        "network-policy": picker_network_policy(track, config, monitoring),
        "service": picker_service(track),
        "deployment": picker_deployment(track),
    }
