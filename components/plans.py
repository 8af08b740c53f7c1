"""What each component registers, as data: its objects in order, and which of them each one waits for.

The components register their plan as children (``kube.register_steps``); ``bench/raw_program.py`` registers the
same plans without any component. Pure: the objects come from :mod:`components.specs`, nothing is registered here.
A new object of a component is one more :class:`Step` in its plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components import specs, traffic
from components.config import GatewayConfig, GpuPoolConfig, ModelConfig, MonitoringConfig


@dataclass(frozen=True)
class Step:
    """One object; ``after`` names the steps of the same plan it waits for."""

    name: str
    obj: specs.Obj
    after: tuple[str, ...] = ()
    timeout: str | None = None  # create and update timeout, when the default would be too short


def gpu_node_pool(pool: GpuPoolConfig, monitoring: MonitoringConfig) -> list[Step]:
    """RuntimeClass, the device plugin (namespace, NetworkPolicy, ConfigMap, DaemonSet), the DCGM exporter (the
    same, a Service and its ServiceMonitor), Karpenter NodePool. ``monitoring``: the ServiceMonitor's labels."""
    steps = [Step("runtime-class", specs.runtime_class(pool))]
    if pool.device_plugin.enabled:
        ns = "plugin-namespace"
        steps += [
            Step(ns, specs.namespace(pool.device_plugin.namespace, pod_security="privileged")),
            Step("plugin-network-policy", specs.device_plugin_network_policy(pool), after=(ns,)),
            Step("plugin-config", specs.device_plugin_config(pool), after=(ns,)),
            Step("plugin", specs.device_plugin_daemon_set(pool), after=(ns, "plugin-config")),
        ]
    if pool.dcgm_exporter.enabled:
        ns = "dcgm-namespace"
        steps += [
            Step(ns, specs.namespace(pool.dcgm_exporter.namespace, pod_security="privileged")),
            Step("dcgm-network-policy", specs.dcgm_network_policy(pool, monitoring), after=(ns,)),
            Step("dcgm-counters", specs.dcgm_counters(pool), after=(ns,)),
            Step("dcgm-exporter", specs.dcgm_exporter_daemon_set(pool), after=(ns, "dcgm-counters", "runtime-class")),
            Step("dcgm-service", specs.dcgm_service(pool), after=(ns,)),
            Step("dcgm-service-monitor", specs.dcgm_service_monitor(pool, monitoring), after=(ns,)),
        ]
    node_pool = specs.karpenter_node_pool(pool)
    if node_pool is not None:
        steps.append(Step("node-pool", node_pool))
    return steps


def deployment_timeout(model: ModelConfig) -> str:
    """A while past the Deployment's own progress deadline: Kubernetes reports a stuck rollout first, and
    Pulumi, which only warns about that, then fails the update instead of waiting on."""
    deadline = specs.progress_deadline_seconds(model)
    return f"{deadline + min(600, max(60, deadline // 2))}s"


def model_deployment(
    model: ModelConfig, image: Any, scheduling: specs.GpuScheduling, hub_token: Any, canary_image: Any = None
) -> list[Step]:
    """ServiceAccount, hub-token Secret, cache claim, the prestage Job, then the Deployment (a LeaderWorkerSet for
    a multi-node model); a PDB; the canary's Deployment (and its PDB) beside them. ``hub_token``: a secret Output;
    ``canary_image``: the canary's image (default ``image``)."""
    steps = [Step("service-account", specs.service_account(model))]
    if model.hub_token:
        if hub_token is None:
            raise ValueError(f"model {model.name!r} mounts a hub token but none was given")
        steps.append(Step("hub-token", specs.hub_token_secret(model, hub_token)))
    claim = specs.model_cache_claim(model)
    if claim is not None:
        steps.append(Step("cache-claim", claim))
    job = specs.prestage_job(model, image)
    if job is not None:  # the rollout waits for the weights (Pulumi awaits the Job's completion)
        after = tuple(step.name for step in steps)
        steps.append(Step("prestage", job, after=after, timeout=f"{model.cache.prestage_deadline_seconds + 300}s"))
    needed = tuple(step.name for step in steps)
    tracks = [(model, image, "")]
    if model.canary is not None:
        tracks.append((model.canary_track(), image if canary_image is None else canary_image, "canary-"))
    for track, track_image, prefix in tracks:
        deployment = specs.workload(track, track_image, scheduling)
        steps.append(Step(f"{prefix}deployment", deployment, after=needed, timeout=deployment_timeout(track)))
        budget = specs.disruption_budget(track)
        if budget is not None:
            steps.append(Step(f"{prefix}disruption-budget", budget))
    return steps


def load_balanced_service(
    model: ModelConfig, monitoring: MonitoringConfig, gateway: GatewayConfig | None = None
) -> list[Step]:
    """The Service (and the canary's), and the NetworkPolicy of every pod of the model."""
    steps = [Step("service", specs.service(model))]
    if model.canary is not None:
        steps.append(Step("canary-service", specs.service(model.canary_track())))
    return [*steps, Step("network-policy", specs.network_policy(model, monitoring, gateway))]


def model_routing(model: ModelConfig, gateway: GatewayConfig, monitoring: MonitoringConfig) -> list[Step]:
    """Routed models (mode gateway, inference-pool): per track an endpoint picker and its InferencePool (mode
    inference-pool), then the HTTPRoute to the pools or the Services."""
    steps: list[Step] = []
    backends: list[str] = []
    if model.routing.mode == "inference-pool":
        for track, _ in traffic.split(model):
            prefix = "canary-" if track.track != "stable" else ""
            objects = traffic.picker_objects(track, gateway, monitoring)
            first = tuple(f"{prefix}picker-{name}" for name in objects if name != "deployment")
            for name, obj in objects.items():
                steps.append(Step(f"{prefix}picker-{name}", obj, after=first if name == "deployment" else ()))
            steps.append(Step(f"{prefix}pool", traffic.inference_pool(track), after=(f"{prefix}picker-service",)))
            backends.append(f"{prefix}pool")
    return [*steps, Step("route", traffic.http_route(model, gateway), after=tuple(backends))]


def gateway(config: GatewayConfig, models: Sequence[ModelConfig]) -> list[Step]:
    """The Gateway the stack creates, in a namespace of its own."""
    ns = specs.namespace(config.namespace, pod_security="baseline")
    return [
        Step("namespace", ns),
        Step("gateway", traffic.gateway(config, [m.namespace for m in models]), after=("namespace",)),
    ]


def autoscaler(model: ModelConfig, monitoring: MonitoringConfig) -> list[Step]:
    """The HPA (driver hpa) or the KEDA ScaledObject (driver keda), never both: KEDA makes an HPA of its own."""
    hpa = specs.autoscaler(model)
    scaled = specs.scaled_object(model, monitoring)
    return [Step("hpa", hpa)] if hpa is not None else [Step("scaled-object", scaled)] if scaled is not None else []


def model_monitoring(model: ModelConfig, monitoring: MonitoringConfig) -> list[Step]:
    """ServiceMonitor, PrometheusRule, Grafana dashboard ConfigMap (monitoring.enabled)."""
    built = {
        "service-monitor": specs.service_monitor(model, monitoring),
        "alerts": specs.prometheus_rule(model, monitoring),
        "dashboard": specs.dashboard_config_map(model, monitoring),
    }
    return [Step(name, obj) for name, obj in built.items() if obj is not None]
