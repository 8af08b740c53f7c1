"""How a model is reached and what it may reach: its Services and the NetworkPolicy of its pods (and the helpers
the pool's and the pickers' policies share); :func:`plan`, their order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from components.config import GatewayConfig, ModelConfig, MonitoringConfig
from components.specs import wire
from components.specs.base import (
    HTTP_PORT_NAME,
    PICKER_SELECTOR,
    ROLE_LABEL,
    Step,
    meta,
    model_labels,
    model_selector,
    selector_labels,
)

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "DNS_EGRESS",
    "DNS_PEER",
    "WAIT_FOR_ANNOTATION",
    "from_namespace",
    "https_egress",
    "isolation_policy",
    "network_policy",
    "service",
    "service_wait_for",
]

# What `pulumi up` waits for on a ClusterIP or NodePort Service (pulumi-kubernetes' `pulumi.com/waitFor`): its
# cluster IP, there at once. By default the provider waits until the Service has endpoints and then 10 s for them
# to settle, on every Service, while the workload's own await already waits for its ready pods. A LoadBalancer keeps
# that wait: its `endpoint` output is for clients, who expect it to answer once `up` returns.
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"


def service_wait_for(service_type: str) -> dict[str, str]:
    return {} if service_type == "LoadBalancer" else {WAIT_FOR_ANNOTATION: "jsonpath={.spec.clusterIP}"}


def service(model: ModelConfig) -> wire.Service:
    cfg = model.service
    # A multi-node replica serves from its leader; its workers hold GPUs, not the API.
    selector = {**selector_labels(model), **({ROLE_LABEL: "leader"} if model.multi_node else {})}
    spec: wire.ServiceSpec = {
        "type": cfg.type,
        "selector": selector,
        "ports": [{"name": HTTP_PORT_NAME, "port": cfg.port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        "sessionAffinity": cfg.session_affinity,
    }
    if cfg.session_affinity == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    if cfg.type in ("LoadBalancer", "NodePort"):
        spec["externalTrafficPolicy"] = cfg.external_traffic_policy
    if cfg.source_ranges:
        spec["loadBalancerSourceRanges"] = list(cfg.source_ranges)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(
            model.instance,
            model.namespace,
            model_labels(model),
            annotations={**service_wait_for(cfg.type), **cfg.annotations},  # the config's win
        ),
        "spec": spec,
    }


def isolation_policy(
    name: str,
    ns: str,
    labels: Mapping[str, str],
    pod_selector: Mapping[str, str],
    ingress: Sequence[wire.NetworkPolicyIngressRule],
    *,
    deny_egress: bool = False,
    egress: Sequence[wire.NetworkPolicyEgressRule] | None = None,
) -> wire.NetworkPolicy:
    """A NetworkPolicy admitting ``ingress`` (none: deny all) to the selected pods; ``deny_egress`` denies all
    egress too, ``egress`` allows only those rules."""
    restrict_egress = deny_egress or egress is not None
    spec: wire.NetworkPolicySpec = {
        "podSelector": {"matchLabels": dict(pod_selector)} if pod_selector else {},
        "policyTypes": ["Ingress", "Egress"] if restrict_egress else ["Ingress"],
    }
    if ingress:
        spec["ingress"] = list(ingress)
    if egress:
        spec["egress"] = list(egress)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, ns, labels),
        "spec": spec,
    }


def from_namespace(name: str) -> wire.NetworkPolicyPeer:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


# The cluster DNS every pod resolves names through (CoreDNS keeps kube-dns's label).
DNS_PEER: wire.NetworkPolicyPeer = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_EGRESS: wire.NetworkPolicyEgressRule = {
    "to": [DNS_PEER],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def https_egress(cidrs: Sequence[str]) -> list[wire.NetworkPolicyEgressRule]:
    return (
        [{"to": [{"ipBlock": {"cidr": c}} for c in cidrs], "ports": [{"protocol": "TCP", "port": 443}]}]
        if cidrs
        else []
    )


def network_policy(
    model: ModelConfig, monitoring: MonitoringConfig, gateway: GatewayConfig | None = None
) -> wire.NetworkPolicy:
    """Every pod of the model (stable and canary): the serving port admits ``service.allowFrom`` (anywhere when
    empty and not behind a gateway), the gateway's proxies and the endpoint pickers (routed models) and
    Prometheus; egress is DNS and HTTPS to ``service.egressTo``."""
    ports: list[wire.NetworkPolicyPort] = [{"protocol": "TCP", "port": model.port}]
    sources: list[wire.NetworkPolicyPeer] = [{"ipBlock": {"cidr": cidr}} for cidr in model.service.allow_from]
    routed = model.routing.mode != "service"
    if routed:
        if gateway is None:
            raise ValueError(f"model {model.name!r} is routed through a gateway but none was given")
        sources.append(from_namespace(gateway.proxy_namespace or gateway.namespace))
    if model.routing.mode == "inference-pool":  # the pickers scrape the pods' metrics to choose one
        sources.append({"podSelector": {"matchLabels": dict(PICKER_SELECTOR)}})
    rules: list[wire.NetworkPolicyIngressRule] = [{"from": sources, "ports": ports} if sources else {"ports": ports}]
    if (sources or routed) and monitoring.enabled:  # Prometheus scrapes /metrics on the serving port
        rules.append({"from": [from_namespace(monitoring.namespace)], "ports": ports})
    egress = [DNS_EGRESS, *https_egress(model.service.egress_to)]
    if model.multi_node:  # a replica's pods talk Ray and NCCL to each other, on ports of their choosing
        peers: list[wire.NetworkPolicyPeer] = [{"podSelector": {"matchLabels": model_selector(model)}}]
        rules.append({"from": peers})
        egress.append({"to": peers})
    return isolation_policy(
        model.name, model.namespace, model_labels(model), model_selector(model), rules, egress=egress
    )


def plan(model: ModelConfig, monitoring: MonitoringConfig, gateway: GatewayConfig | None = None) -> list[Step]:
    """The Service (and the canary's), and the NetworkPolicy of every pod of the model."""
    steps = [Step("service", service(model))]
    if model.canary is not None:
        steps.append(Step("canary-service", service(model.canary_track())))
    return [*steps, Step("network-policy", network_policy(model, monitoring, gateway))]
