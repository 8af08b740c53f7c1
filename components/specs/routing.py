"""Routing a model through a Gateway (``routing.mode`` gateway or inference-pool): the Gateway a stack may create,
each model's HTTPRoute (split by weight with a canary) and, in mode inference-pool, each track's InferencePool with
its endpoint picker (:mod:`components.specs.picker`); :func:`plan` and :func:`gateway_plan`, their order."""

from __future__ import annotations

from collections.abc import Sequence

from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.config.routing import MODEL_HEADER
from components.specs.base import (
    GATEWAY_GROUP,
    PART_OF,
    POOL_GROUP,
    Obj,
    Step,
    meta,
    model_labels,
    namespace,
    selector_labels,
)
from components.specs.picker import PICKER_GRPC_PORT, picker_name, picker_objects

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "POOL_KIND",
    "gateway",
    "http_route",
    "inference_pool",
    "split",
]

POOL_KIND = "InferencePool"


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
        "metadata": meta(config.name, config.namespace, _labels("gateway")),
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
        "metadata": meta(model.name, model.namespace, model_labels(model)),
        "spec": {"parentRefs": [parent], "rules": [rule]},
    }


# ---------------------------------------------------------------------------------------------
# InferencePool and its endpoint picker (one of each per track)
# ---------------------------------------------------------------------------------------------


def inference_pool(track: ModelConfig) -> Obj:
    """The track's pods on their serving port, and the picker that chooses among them."""
    picker = track.routing.picker
    return {
        "apiVersion": f"{POOL_GROUP}/v1",
        "kind": POOL_KIND,
        "metadata": meta(track.instance, track.namespace, model_labels(track)),
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


def plan(model: ModelConfig, gateway: GatewayConfig, monitoring: MonitoringConfig) -> list[Step]:
    """Routed models (mode gateway, inference-pool): per track an endpoint picker and its InferencePool (mode
    inference-pool), then the HTTPRoute to the pools or the Services."""
    steps: list[Step] = []
    backends: list[str] = []
    if model.routing.mode == "inference-pool":
        for track, _ in split(model):
            prefix = "canary-" if track.track != "stable" else ""
            objects = picker_objects(track, gateway, monitoring)
            first = tuple(f"{prefix}picker-{name}" for name in objects if name != "deployment")
            for name, obj in objects.items():
                steps.append(Step(f"{prefix}picker-{name}", obj, after=first if name == "deployment" else ()))
            steps.append(Step(f"{prefix}pool", inference_pool(track), after=(f"{prefix}picker-service",)))
            backends.append(f"{prefix}pool")
    return [*steps, Step("route", http_route(model, gateway), after=tuple(backends))]


def gateway_plan(config: GatewayConfig, models: Sequence[ModelConfig]) -> list[Step]:
    """The Gateway the stack creates, in a namespace of its own."""
    ns = namespace(config.namespace, pod_security="baseline")
    return [
        Step("namespace", ns),
        Step("gateway", gateway(config, [m.namespace for m in models]), after=("namespace",)),
    ]
