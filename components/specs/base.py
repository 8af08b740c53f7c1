"""What every builder shares: the wire-form type, labels, metadata, namespaces, security contexts, and the
:class:`Step` a concern's plan is made of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from components.config import ModelConfig, Toleration
from components.specs import wire

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "CACHE_DIR",
    "DRAIN_SECONDS",
    "GATEWAY_GROUP",
    "HTTP_PORT_NAME",
    "HUB_TOKEN_DIR",
    "LWS_GROUP",
    "METRICS_PATH",
    "OBJECTIVE_GROUP",
    "PART_OF",
    "PICKER_SELECTOR",
    "POOL_GROUP",
    "PRE_STOP_SECONDS",
    "ROLE_LABEL",
    "TRACK_LABEL",
    "UID",
    "Obj",
    "Step",
    "config_map",
    "container_security_context",
    "merge_patch",
    "meta",
    "model_labels",
    "model_selector",
    "namespace",
    "pod_security_context",
    "selector_labels",
    "toleration",
]

# A custom resource's wire form, or any part left untyped; the built-in kinds' are typed (components.specs.wire).
Obj = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One object of a plan; ``after`` names the steps of the same plan it waits for."""

    name: str
    obj: Mapping[str, Any]  # a wire.Deployment, wire.Service, ... or a custom resource's Obj
    after: tuple[str, ...] = ()
    timeout: str | None = None  # create and update timeout, when the default would be too short


PART_OF = "model-serving"
UID = 10001  # the app/ image's user; high enough not to collide with host users
HTTP_PORT_NAME = "http"
# The canary's pods and objects carry it (stable ones do not: adding it would roll every running model).
TRACK_LABEL = "model-serving.dev/track"
# Every endpoint picker's pods (they live in their model's namespace).
PICKER_SELECTOR = {"app.kubernetes.io/component": "endpoint-picker", "app.kubernetes.io/part-of": "model-serving"}
HUB_TOKEN_DIR = "/var/run/secrets/model-hub"
CACHE_DIR = "/cache"
METRICS_PATH = "/metrics"
# Shutdown: the endpoint removal propagates during the preStop pause, then the server drains.
PRE_STOP_SECONDS = 5
DRAIN_SECONDS = 25
# A multi-node replica's pods: the LeaderWorkerSet's API group, and the label telling its leader from its workers.
LWS_GROUP = "leaderworkerset.x-k8s.io"
ROLE_LABEL = "model-serving.dev/role"
# The Gateway API's and the Inference Extension's groups (routing and the endpoint picker).
GATEWAY_GROUP = "gateway.networking.k8s.io"
POOL_GROUP = "inference.networking.k8s.io"
OBJECTIVE_GROUP = "inference.networking.x-k8s.io"


def meta(
    name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None, **extra: Any
) -> wire.ObjectMeta:
    """``extra``: further ObjectMeta fields (``annotations=...``), left out when empty."""
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    meta.update({k: v for k, v in extra.items() if v})
    return cast(wire.ObjectMeta, meta)


def selector_labels(model: ModelConfig) -> dict[str, str]:
    """The immutable subset used by selectors (Deployment, Service, PDB, InferencePool): one track's pods (the
    canary's instance is `<name>-canary`)."""
    return {"app.kubernetes.io/name": model.name, "app.kubernetes.io/instance": model.instance}


def model_selector(model: ModelConfig) -> dict[str, str]:
    """Every pod of the model, stable and canary (NetworkPolicy, ServiceMonitor)."""
    return {"app.kubernetes.io/name": model.name}


def model_labels(model: ModelConfig) -> dict[str, str]:
    labels = {
        **selector_labels(model),
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    if model.track != "stable":
        labels[TRACK_LABEL] = model.track
    return labels


def namespace(name: str, *, pod_security: str = "restricted") -> wire.Namespace:
    labels = {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        "pod-security.kubernetes.io/enforce": pod_security,
        "pod-security.kubernetes.io/warn": pod_security,
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, labels=labels)}


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> Obj:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            current = result.get(key)
            result[key] = merge_patch(dict(current) if isinstance(current, Mapping) else {}, value)
        else:
            result[key] = value
    return result


def pod_security_context() -> wire.PodSecurityContext:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> wire.SecurityContext:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        # Stated by the container itself too: a patched or added container must not fall back to the image's user.
        "runAsUser": UID,
        "runAsGroup": UID,
        "capabilities": {"drop": ["ALL"]},
    }


def toleration(t: Toleration) -> wire.Toleration:
    obj: wire.Toleration = {"key": t.key, "operator": t.operator}
    if t.value is not None:
        obj["value"] = t.value
    obj["effect"] = t.effect
    return obj


def config_map(name: str, ns: str, labels: Mapping[str, str], data: Mapping[str, str]) -> wire.ConfigMap:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns, labels), "data": dict(data)}
