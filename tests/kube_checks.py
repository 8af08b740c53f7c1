"""Checks every Kubernetes object the program emits: the official 1.31 schema, strict, and name rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.31"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Kinds whose names become DNS labels (Services become DNS names; namespaces are labels).
LABEL_NAMED = {"Namespace", "Service"}
# Custom resources have no schema in kubernetes-validate; their shape is asserted in tests, and tests/integration
# validates them against the CRDs the local cluster installs (cluster-assets crds).
CUSTOM_KINDS = {
    ("karpenter.sh/v1", "NodePool"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("inference.networking.k8s.io/v1", "InferencePool"),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
}


def manifest(inputs: dict[str, Any]) -> dict[str, Any]:
    """The object as Kubernetes receives it (the Pulumi inputs minus nothing: they are wire form)."""
    return {k: v for k, v in inputs.items() if v is not None}


def validate_object(obj: dict[str, Any]) -> None:
    """Raise if the object breaks the 1.31 OpenAPI schema (unknown fields fail) or naming rules."""
    if (obj["apiVersion"], obj["kind"]) not in CUSTOM_KINDS:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    check_name(obj["kind"], obj["metadata"]["name"])
    if "namespace" in obj["metadata"]:
        check_name("Namespace", obj["metadata"]["namespace"])


def check_name(kind: str, name: str) -> None:
    if kind in LABEL_NAMED:
        ok = len(name) <= 63 and DNS1123_LABEL.match(name)
    else:
        ok = len(name) <= 253 and DNS1123_SUBDOMAIN.match(name)
    if not ok:
        raise ValueError(f"{kind} name {name!r} is not a valid DNS-1123 name")


def promql_queries(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every PromQL expression the objects hold: KEDA Prometheus triggers, PrometheusRule rules, Grafana dashboard
    panels (a ConfigMap's JSON values)."""
    out: list[str] = []
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj.get("kind") == "ScaledObject":
            out += [t["metadata"]["query"] for t in spec.get("triggers", []) if t["type"] == "prometheus"]
        if obj.get("kind") == "PrometheusRule":
            out += [rule["expr"] for group in spec.get("groups", []) for rule in group["rules"]]
        if obj.get("kind") == "ConfigMap":
            for text in (obj.get("data") or {}).values():
                if text.lstrip().startswith("{"):
                    board = json.loads(text)
                    out += [t["expr"] for panel in board.get("panels", []) for t in panel.get("targets", [])]
    return out
