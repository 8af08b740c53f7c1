"""How requests reach a model's pods: its Service and the NetworkPolicy admitting its port (``service``), its
route through the stack's Gateway and the endpoint picker (``routing``), and a canary's share of them
(``canary``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from components.config.declare import EMPTY, REQUIRED, Block, Derived, key
from components.config.kinds import LABEL_KEY, Choice, ImageRef, Int, Quantity, StringMap, Strings, Text, check_cidr
from components.config.workload import check_revision


def _service_type(s: Any) -> str:
    """Behind a gateway the Service is the route's backend only: nothing outside should bypass the routes."""
    return "LoadBalancer" if s["routing"].mode == "service" else "ClusterIP"


def _egress(s: Any) -> list[str]:
    return ["0.0.0.0/0"] if s["model_dir"] is None else []


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """The model's Service and the NetworkPolicy admitting its port."""

    type_name: ClassVar[str] = "Service"
    type: str = key(
        Choice(("LoadBalancer", "ClusterIP", "NodePort")),
        Derived("`LoadBalancer`; `ClusterIP` when routing.mode is not `service`", lambda s: _service_type(s)),
        "Service type",
    )
    port: int = key(Int(1, 65535), 80, "Service port")
    annotations: Mapping[str, str] = key(StringMap(LABEL_KEY), {}, "e.g. an internal-load-balancer annotation")
    source_ranges: tuple[str, ...] = key(
        Strings("CIDRs", check_cidr), (), "`loadBalancerSourceRanges` (type LoadBalancer only)"
    )
    external_traffic_policy: str = key(Choice(("Local", "Cluster")), "Local", "`Local` keeps client IPs")
    session_affinity: str = key(Choice(("None", "ClientIP")), "None", "sticky clients")
    allow_from: tuple[str, ...] = key(
        Strings("CIDRs", check_cidr),
        (),
        "NetworkPolicy sources admitted to the serving port (`[]`: anywhere; behind a gateway, only the gateway's "
        "and the endpoint picker's pods)",
    )
    egress_to: tuple[str, ...] = key(
        Strings("CIDRs", check_cidr),
        Derived("`[0.0.0.0/0]` when the model downloads from the hub (no `modelDir`), else `[]`", lambda s: _egress(s)),
        "where the pods may open HTTPS connections (the model hub); DNS is always allowed, nothing else is",
    )


ROUTING_MODES = ("service", "gateway", "inference-pool")
# The header the Inference Extension's body-based router sets from an OpenAI request's `model` field.
MODEL_HEADER = "X-Gateway-Model-Name"


@dataclass(frozen=True, kw_only=True)
class PickerScorers:
    """Weights of the endpoint picker's scorers: each scores every pod, the weighted sum picks one (0: off)."""

    queue: int = key(Int(0, 100), 2, "requests waiting on the pod (the engine's queue metric)")
    kv_cache: int = key(Int(0, 100), 2, "the pod's KV-cache utilization (vLLM's `vllm:kv_cache_usage_perc`)")
    prefix_cache: int = key(Int(0, 100), 3, "how much of the prompt's prefix the pod likely holds in its cache")


@dataclass(frozen=True, kw_only=True)
class PickerConfig:
    """The Inference Extension's endpoint picker (EPP) of an InferencePool: it chooses the pod for each request."""

    type_name: ClassVar[str] = "EndpointPicker"
    image: str | None = key(
        ImageRef(),
        None,
        "the picker image (`registry.k8s.io/gateway-api-inference-extension/epp`), pinned by digest; required in "
        "mode `inference-pool`",
    )
    replicas: int = key(Int(1, 10), 1, "picker pods (more than one elect a leader)")
    cpu: str = key(Quantity(), "1", "CPU per picker pod (requests equal limits)")
    memory: str = key(Quantity(), "1Gi", "memory per picker pod")
    failure_mode: str = key(
        Choice(("FailClose", "FailOpen")),
        "FailClose",
        "what the gateway does when the picker does not answer: refuse the request, or send it to any pod",
    )
    scorers: PickerScorers = key(Block(PickerScorers), EMPTY, "scorer weights")


@dataclass(frozen=True, kw_only=True)
class RoutingConfig:
    """How requests reach the model's pods (docs/load-balancing.md)."""

    type_name: ClassVar[str] = "Routing"
    mode: str = key(
        Choice(ROUTING_MODES),
        "service",
        "`service`: the model's Service balances connections; `gateway`: an HTTPRoute on the stack's `gateway` "
        "to the Service; `inference-pool`: an HTTPRoute to an InferencePool whose endpoint picker chooses a pod "
        "per request from its queue and caches",
    )
    match: str = key(
        Choice(("path", "header")),
        "path",
        f"`path`: requests under `path` (the prefix is stripped); `header`: requests whose `{MODEL_HEADER}` header "
        "is the modelId (set from the body's `model` by the Inference Extension's body-based router)",
    )
    path: str = key(
        Text("path prefix", pattern=re.compile(r"^/[A-Za-z0-9._~/-]*/$")),
        Derived("`/<name>/`", lambda s: f"/{s['name']}/"),
        "the path prefix routed to the model (match `path`); it ends in `/`",
    )
    picker: PickerConfig = key(Block(PickerConfig), EMPTY, "the endpoint picker (mode `inference-pool`)")


@dataclass(frozen=True, kw_only=True)
class CanaryConfig:
    """A second Deployment of the model running a new image, args or revision, taking ``weight`` % of requests."""

    type_name: ClassVar[str] = "Canary"
    weight: int = key(
        Int(0, 100), REQUIRED, "the canary's share of requests in %; the stable pods take the rest (100: promoted)"
    )
    image: str | None = key(ImageRef(), None, "prebuilt image the canary runs", unset="the model's")
    args: tuple[str, ...] | None = key(Strings(), None, "container args the canary runs", unset="the model's")
    model_revision: str | None = key(
        Text("commit", check=check_revision), None, "hub revision the canary serves", unset="the model's"
    )
    replicas: int = key(Int(1, 1000), 1, "canary pods (its GPUs count against gpuPool.gpuBudget)")
