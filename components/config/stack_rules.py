"""Rules across the stack's blocks, each one named function, listed in :data:`STACK_RULES`. They run once every
block is read and its own rules (:mod:`.rules`) checked, and see whichever models and pool are valid:
:class:`StackView` holds None for a block with mistakes of its own.

A rule yields :class:`Problem` s, each naming the key to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from components.config.errors import Problem
from components.config.model import ModelConfig
from components.config.pool import GpuPoolConfig
from components.config.stack import GatewayConfig, MonitoringConfig
from components.config.workload import Toleration


@dataclass(frozen=True)
class StackView:
    """The stack as read so far: None stands for a pool, a monitoring block or a model with mistakes of its own."""

    pool: GpuPoolConfig | None
    models: Sequence[ModelConfig | None]
    monitoring: MonitoringConfig | None
    has_hub_token: bool
    has_registry_password: bool
    gateway: GatewayConfig | None = None

    def valid_models(self) -> Iterator[tuple[int, ModelConfig]]:
        return ((i, m) for i, m in enumerate(self.models) if m is not None)


def models_are_distinct(stack: StackView) -> Iterator[Problem]:
    seen: list[tuple[int, ModelConfig]] = []
    for i, model in stack.valid_models():
        for j, other in seen:
            if other.name == model.name:
                yield Problem(f"models[{i}].name", f"duplicates models[{j}].name ({model.name!r})")
            elif other.namespace == model.namespace:
                yield Problem(f"models[{i}].namespace", f"duplicates models[{j}] ({model.namespace!r})")
        seen.append((i, model))


def models_leave_the_device_plugin_namespace(stack: StackView) -> Iterator[Problem]:
    """Two Namespace resources (restricted and privileged) would fight over one object."""
    if stack.pool is None or not stack.pool.device_plugin.enabled:
        return
    plugin_ns = stack.pool.device_plugin.namespace
    for i, model in stack.valid_models():
        if model.namespace == plugin_ns:
            yield Problem(f"models[{i}].namespace", f"must differ from gpuPool.devicePlugin.namespace ({plugin_ns!r})")


def secrets_are_set(stack: StackView) -> Iterator[Problem]:
    for i, model in stack.valid_models():
        if model.hub_token and not stack.has_hub_token:
            yield Problem(
                f"models[{i}].hubToken",
                "needs the secret model-serving:hubToken (pulumi config set --secret model-serving:hubToken …)",
            )
        build = model.image.build
        if build is not None and build.logs_in and not stack.has_registry_password:
            yield Problem(
                f"models[{i}].image.build.registry",
                "needs the secret model-serving:registryPassword (pulumi config set --secret …)",
            )


def node_selector_conflicts(model: Mapping[str, str], pool: Mapping[str, str]) -> list[str]:
    """The keys a GPU model's nodeSelector sets to another value than the pool's: its pods could land nowhere.

    (The Deployment builder refuses the same conflicts for callers that bypass the config.)
    """
    return [k for k, v in model.items() if k in pool and pool[k] != v]


def tolerates_the_gpu_taint(toleration: Toleration, pool: GpuPoolConfig) -> bool:
    """Whether a toleration lets a pod onto the pool's tainted nodes (the policy pack's gpu-scheduling test)."""
    return toleration.key == pool.taint.key and toleration.effect == pool.taint.effect


def models_schedule_with_the_pool(stack: StackView) -> Iterator[Problem]:
    """GPU models land on the pool's nodes, which their own nodeSelector must not contradict; CPU models stay off
    them, so they must not tolerate the pool's taint (the policy pack blocks both)."""
    pool = stack.pool
    if pool is None:
        return
    for i, model in stack.valid_models():
        if model.resources.gpus:
            for name in node_selector_conflicts(model.node_selector, pool.node_selector):
                yield Problem(
                    f"models[{i}].nodeSelector.{name}",
                    f"conflicts with gpuPool.nodeSelector.{name} ({model.node_selector[name]!r} is not "
                    f"{pool.node_selector[name]!r}): a GPU model's pods must land on the pool's nodes",
                )
            continue
        for j, toleration in enumerate(model.tolerations):
            if tolerates_the_gpu_taint(toleration, pool):
                yield Problem(
                    f"models[{i}].tolerations[{j}]",
                    f"must not tolerate the GPU pool's taint {pool.taint.key}:{pool.taint.effect}: the model uses "
                    "no GPU, and GPU nodes are kept for models that do",
                )


def budget_covers_the_peak(stack: StackView) -> Iterator[Problem]:
    """At full scale and mid-rollout every model runs (max replicas + maxSurge) pods of its GPUs."""
    if stack.pool is None or stack.pool.gpu_budget is None or any(m is None for m in stack.models):
        return
    budget = stack.pool.gpu_budget
    demand = sum(m.peak_gpus for _, m in stack.valid_models())
    if demand <= budget:
        return
    canaries = [(i, m, m.canary) for i, m in stack.valid_models() if m.canary is not None and m.resources.gpus]
    stable = demand - sum(
        (c.replicas + m.rollout.max_surge) * m.nodes_per_replica * m.resources.gpus for _, m, c in canaries
    )
    if canaries and stable <= budget:
        # The models fit; their canaries do not: name the canaries, the change that broke the budget.
        for i, m, canary in canaries:
            yield Problem(
                f"models[{i}].canary.replicas",
                f"is more than gpuPool.gpuBudget {budget} holds: the canary's {canary.replicas} pod(s) + maxSurge "
                f"{m.rollout.max_surge} of {m.resources.gpus} GPU(s) bring the stack's peak to {demand} GPUs "
                f"({stable} without canaries)",
            )
        return
    yield Problem(
        "gpuPool.gpuBudget",
        f"is too small: the models may run {demand} GPUs at peak ((max replicas + maxSurge, and a canary's "
        f"replicas + maxSurge) × GPUs, summed) but the budget is {budget}",
    )


def keda_reads_the_scraped_metrics(stack: StackView) -> Iterator[Problem]:
    """A KEDA trigger queries Prometheus for what the model's ServiceMonitor has it scrape."""
    if stack.monitoring is None:
        return
    for i, model in stack.valid_models():
        if not model.keda:
            continue
        if stack.monitoring.prometheus_url is None:
            yield Problem(
                f"models[{i}].autoscaling.driver",
                "needs monitoring.prometheusUrl with keda: the Prometheus its trigger queries",
            )
        if not stack.monitoring.enabled:
            yield Problem(
                f"models[{i}].autoscaling.driver",
                "needs monitoring.enabled with keda: its trigger queries the metrics the model's ServiceMonitor "
                "has Prometheus scrape",
            )


def monitoring_leaves_the_pool_namespaces(stack: StackView) -> Iterator[Problem]:
    """The DCGM exporter's namespace is privileged and its own: no model and not the device plugin's."""
    if stack.pool is None or not stack.pool.dcgm_exporter.enabled:
        return
    dcgm_ns = stack.pool.dcgm_exporter.namespace
    if stack.pool.device_plugin.enabled and stack.pool.device_plugin.namespace == dcgm_ns:
        yield Problem(
            "gpuPool.dcgmExporter.namespace", f"must differ from gpuPool.devicePlugin.namespace ({dcgm_ns!r})"
        )
    for i, model in stack.valid_models():
        if model.namespace == dcgm_ns:
            yield Problem(f"models[{i}].namespace", f"must differ from gpuPool.dcgmExporter.namespace ({dcgm_ns!r})")


def gateway_namespace_is_its_own(stack: StackView) -> Iterator[Problem]:
    """A Gateway the stack creates lives in a namespace of its own: a model's holds only the model's objects."""
    gateway = stack.gateway
    if gateway is None or gateway.gateway_class_name is None:
        return
    valid = all(m is not None for m in stack.models)
    if valid and not any(m.routing.mode != "service" for _, m in stack.valid_models()):
        yield Problem(
            "gateway.gatewayClassName",
            "creates a Gateway no model uses: set a model's routing.mode to gateway or inference-pool",
        )
    for i, model in stack.valid_models():
        if model.namespace == gateway.namespace:
            yield Problem(f"models[{i}].namespace", f"must differ from gateway.namespace ({gateway.namespace!r})")
    pool = stack.pool
    taken = {
        "gpuPool.devicePlugin.namespace": pool.device_plugin.namespace if pool and pool.device_plugin.enabled else None,
        "gpuPool.dcgmExporter.namespace": pool.dcgm_exporter.namespace if pool and pool.dcgm_exporter.enabled else None,
        "monitoring.namespace": stack.monitoring.namespace if stack.monitoring else None,
    }
    for name, ns in taken.items():
        if ns == gateway.namespace:
            yield Problem("gateway.namespace", f"must differ from {name} ({ns!r})")


STACK_RULES: Sequence[Callable[[StackView], Iterator[Problem]]] = (
    keda_reads_the_scraped_metrics,
    monitoring_leaves_the_pool_namespaces,
    models_are_distinct,
    models_leave_the_device_plugin_namespace,
    secrets_are_set,
    models_schedule_with_the_pool,
    budget_covers_the_peak,
    gateway_namespace_is_its_own,
)
