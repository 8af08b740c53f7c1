"""What each component registers, as data: its objects in order, and which of them each one waits for.

The components register their plan as children (``kube.register_steps``); ``bench/raw_program.py`` registers the
same plans without any component. Pure: the objects come from :mod:`components.specs`, nothing is registered here.
A new object of a component is one more :class:`Step` in its plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components import specs
from components.config import GpuPoolConfig, ModelConfig, MonitoringConfig


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


def model_deployment(model: ModelConfig, image: Any, scheduling: specs.GpuScheduling, hub_token: Any) -> list[Step]:
    """ServiceAccount, hub-token Secret, cache claim, then the Deployment; a PDB. ``hub_token``: a secret Output."""
    steps = [Step("service-account", specs.service_account(model))]
    if model.hub_token:
        if hub_token is None:
            raise ValueError(f"model {model.name!r} mounts a hub token but none was given")
        steps.append(Step("hub-token", specs.hub_token_secret(model, hub_token)))
    claim = specs.model_cache_claim(model)
    if claim is not None:
        steps.append(Step("cache-claim", claim))
    needed = tuple(step.name for step in steps)
    steps.append(
        Step("deployment", specs.deployment(model, image, scheduling), after=needed, timeout=deployment_timeout(model))
    )
    budget = specs.disruption_budget(model)
    if budget is not None:
        steps.append(Step("disruption-budget", budget))
    return steps


def load_balanced_service(model: ModelConfig, monitoring: MonitoringConfig) -> list[Step]:
    return [Step("service", specs.service(model)), Step("network-policy", specs.network_policy(model, monitoring))]


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
