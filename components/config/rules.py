"""Rules across keys, each one named function. A block's rules run once every key of the block is valid (as a
schema validator's model rules do); the stack's rules see whichever models and pool are valid.

A rule yields :class:`Problem` s, each naming the key to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.config.errors import Problem
from components.config.kinds import join, parse_quantity
from components.config.schema import (
    TMP_SIZE,
    Autoscaling,
    GpuPoolConfig,
    ImageBuildConfig,
    ImageConfig,
    KarpenterConfig,
    Metric,
    ModelConfig,
    Rollout,
    ServiceConfig,
    Toleration,
)


@dataclass(frozen=True)
class At:
    """Where a block was read: its key path and what the stack file gave."""

    path: str
    raw: Mapping[str, Any]

    def key(self, name: str) -> str:
        return join(self.path, name)

    def given(self, name: str) -> bool:
        """Whether the stack file sets ``name`` (dotted for nested keys)."""
        value: Any = self.raw
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value is not None


# --- gpuPool --------------------------------------------------------------------------------------


def pool_selects_gpu_nodes(pool: GpuPoolConfig, at: At) -> Iterator[Problem]:
    if not pool.node_selector:
        yield Problem(at.key("nodeSelector"), "must select GPU nodes with at least one label")


def karpenter_needs_a_budget(pool: GpuPoolConfig, at: At) -> Iterator[Problem]:
    if pool.karpenter is not None and pool.gpu_budget is None:
        yield Problem(at.key("gpuBudget"), "is required with gpuPool.karpenter (it becomes the NodePool limit)")


def karpenter_launches_gpu_instances(karpenter: KarpenterConfig, at: At) -> Iterator[Problem]:
    if not karpenter.instance_types and not karpenter.gpu_products:
        yield Problem(at.key("instanceTypes"), "or gpuProducts must name the GPU instances Karpenter may launch")


# --- models[i] ------------------------------------------------------------------------------------


def image_is_ref_or_build(image: ImageConfig, at: At) -> Iterator[Problem]:
    if (image.ref is None) == (image.build is None):
        yield Problem(at.path, "must set exactly one of ref (a prebuilt image) or build")


def push_needs_a_registry(build: ImageBuildConfig, at: At) -> Iterator[Problem]:
    if build.push and build.registry_server is None:
        yield Problem(at.key("registry.server"), "is required when push is true")


def replica_bounds(auto: Autoscaling, at: At) -> Iterator[Problem]:
    if auto.max_replicas < auto.min_replicas:
        yield Problem(at.key("maxReplicas"), f"must be >= minReplicas (got {auto.max_replicas} < {auto.min_replicas})")


def metric_has_a_target(metric: Metric, at: At) -> Iterator[Problem]:
    if metric.type == "cpu":
        return
    if metric.name is None:
        yield Problem(at.key("name"), "is required")
    value_key = "targetAverageValue" if metric.type == "pods" else "targetValue"
    value = metric.target_average_value if metric.type == "pods" else metric.target_value
    if value is None:
        yield Problem(at.key(value_key), f"is required for a {metric.type} metric")


def rollout_can_start(rollout: Rollout, at: At) -> Iterator[Problem]:
    if rollout.max_surge == 0 and rollout.max_unavailable == 0:
        yield Problem(at.key("maxUnavailable"), "must be >= 1 when maxSurge is 0, or a rollout never starts")


def source_ranges_need_a_load_balancer(service: ServiceConfig, at: At) -> Iterator[Problem]:
    if service.type != "LoadBalancer" and service.source_ranges:
        yield Problem(at.key("sourceRanges"), f"only applies to type LoadBalancer (type is {service.type})")


def toleration_value_needs_equal(toleration: Toleration, at: At) -> Iterator[Problem]:
    if toleration.operator == "Exists" and toleration.value is not None:
        yield Problem(at.key("value"), "only applies to operator Equal (Exists tolerates any value)")


def replicas_or_autoscaling(model: ModelConfig, at: At) -> Iterator[Problem]:
    if model.autoscaling is not None and at.given("replicas"):
        yield Problem(at.key("replicas"), "conflicts with autoscaling: the HPA owns the replica count")


def engine_gpus(model: ModelConfig, at: At) -> Iterator[Problem]:
    """A CPU engine asks for no GPU (a GPU it never touches only blocks other models); a GPU engine for one."""
    gpus, engine = model.resources.gpus, model.engine_spec
    if not engine.uses_gpus and gpus > 0:
        yield Problem(at.key("resources.gpus"), f"must be 0: engine {engine.name} runs on CPU only (got {gpus})")
    if engine.uses_gpus and gpus == 0:
        yield Problem(at.key("resources.gpus"), f"must be >= 1: engine {engine.name} serves on GPUs (got 0)")
    if not engine.uses_gpus and model.architecture is not None:
        yield Problem(
            at.key("architecture"),
            f"only sizes GPU engines (engine {engine.name} runs on CPU only); set resources instead",
        )


def gpus_cover_the_sizing(model: ModelConfig, at: At) -> Iterator[Problem]:
    sized = model.sizing
    gpus = model.resources.gpus
    if sized is not None and at.given("resources.gpus") and 0 < gpus < sized.gpus_per_replica:
        yield Problem(
            at.key("resources.gpus"),
            f"is {model.resources.gpus} but {at.key('architecture')} needs {sized.gpus_per_replica} GPUs "
            f"({sized.reason or 'weights, KV cache and overhead exceed one GPU'})",
        )


def cache_fits_ephemeral_storage(model: ModelConfig, at: At) -> Iterator[Problem]:
    """An emptyDir cache and /tmp count against the pod's ephemeral storage: the kubelet evicts the pod once a
    download outgrows the limit, long before the cache's own sizeLimit."""
    cache, storage = model.cache, model.resources.ephemeral_storage
    if cache.type == "emptyDir" and parse_quantity(storage) < parse_quantity(cache.size) + parse_quantity(TMP_SIZE):
        yield Problem(
            at.key("resources.ephemeralStorage"),
            f"must hold modelCache.size plus {TMP_SIZE} of /tmp (got {storage} "
            f"< {cache.size} + {TMP_SIZE}); raise it or use modelCache.type pvc",
        )


def shared_cache_access_mode(model: ModelConfig, at: At) -> Iterator[Problem]:
    cache = model.cache
    shared = model.max_replicas + model.rollout.max_surge > 1
    if cache.type == "pvc" and shared and cache.access_mode not in ("ReadWriteMany", "ReadOnlyMany"):
        yield Problem(
            at.key("modelCache.accessMode"),
            f"must be ReadWriteMany or ReadOnlyMany when more than one pod shares the cache (got {cache.access_mode})",
        )


BLOCK_RULES: Mapping[type, Sequence[Callable[[Any, At], Iterator[Problem]]]] = {
    GpuPoolConfig: (pool_selects_gpu_nodes, karpenter_needs_a_budget),
    KarpenterConfig: (karpenter_launches_gpu_instances,),
    ImageConfig: (image_is_ref_or_build,),
    ImageBuildConfig: (push_needs_a_registry,),
    Autoscaling: (replica_bounds,),
    Metric: (metric_has_a_target,),
    Rollout: (rollout_can_start,),
    ServiceConfig: (source_ranges_need_a_load_balancer,),
    Toleration: (toleration_value_needs_equal,),
    ModelConfig: (
        replicas_or_autoscaling,
        engine_gpus,
        gpus_cover_the_sizing,
        cache_fits_ephemeral_storage,
        shared_cache_access_mode,
    ),
}


# --- the stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackView:
    """The stack as read so far: None stands for a pool or a model with mistakes of its own."""

    pool: GpuPoolConfig | None
    models: Sequence[ModelConfig | None]
    has_hub_token: bool
    has_registry_password: bool

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
        if build is not None and build.push and build.registry_server and not stack.has_registry_password:
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
    demand = sum(m.peak_gpus for _, m in stack.valid_models())
    if demand > stack.pool.gpu_budget:
        yield Problem(
            "gpuPool.gpuBudget",
            f"is too small: the models may run {demand} GPUs at peak "
            f"((max replicas + maxSurge) × GPUs, summed) but the budget is {stack.pool.gpu_budget}",
        )


STACK_RULES: Sequence[Callable[[StackView], Iterator[Problem]]] = (
    models_are_distinct,
    models_leave_the_device_plugin_namespace,
    secrets_are_set,
    models_schedule_with_the_pool,
    budget_covers_the_peak,
)
