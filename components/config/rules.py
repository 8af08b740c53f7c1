"""Rules across keys, each one named function. A block's rules run once its keys are read, even when some of them
are wrong, so that one run reports every mistake: a wrong key reads as INVALID, and a rule that touches one is
skipped (its mistake is reported already); a rule's problem on a key that has a mistake of its own is dropped. The
stack's rules see whichever models and pool are valid.

A rule yields :class:`Problem` s, each naming the key to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.config.engines import GATEWAYS
from components.config.errors import Problem
from components.config.kinds import join, parse_quantity
from components.config.schema import (
    KEDA_ONLY,
    TMP_SIZE,
    Autoscaling,
    CanaryConfig,
    GatewayConfig,
    GpuPoolConfig,
    ImageBuildConfig,
    ImageConfig,
    KarpenterConfig,
    Metric,
    ModelConfig,
    MonitoringConfig,
    Rollout,
    RoutingConfig,
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
    if auto.fallback_replicas is not None and auto.fallback_replicas > auto.max_replicas:
        yield Problem(
            at.key("fallbackReplicas"), f"must be <= maxReplicas (got {auto.fallback_replicas} > {auto.max_replicas})"
        )


def keda_keys_need_keda(auto: Autoscaling, at: At) -> Iterator[Problem]:
    if auto.driver == "keda":
        return
    for name in KEDA_ONLY:
        if at.given(name):
            yield Problem(at.key(name), "only applies to driver keda (an HPA has no such setting)")
    if auto.min_replicas == 0:
        yield Problem(
            at.key("minReplicas"),
            "must be >= 1 with driver hpa: an HPA never scales to zero (driver keda with wake can)",
        )


def keda_scales_on_a_query(auto: Autoscaling, at: At) -> Iterator[Problem]:
    if auto.driver == "keda" and auto.metric.type == "cpu":
        yield Problem(
            at.key("metric.type"),
            "must be pods or external with driver keda (its trigger is a Prometheus query); cpu scales with driver hpa",
        )


def zero_needs_a_wake_signal(auto: Autoscaling, at: At) -> Iterator[Problem]:
    """At zero replicas no pod of the model exports anything: a trigger on the model's own metric reads nothing and
    can never fire again. Only a request counter of the gateway in front of the model exists then."""
    if auto.driver == "keda" and auto.min_replicas == 0 and auto.wake is None:
        yield Problem(
            at.key("wake"),
            f"is required for minReplicas 0: with no pod left nothing exports {auto.metric.name or 'its metric'}, so "
            "a trigger on it "
            "could never wake the model; name the gateway in front of it whose request counter can "
            f"({', '.join(GATEWAYS)}), or keep minReplicas >= 1",
        )


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


def picker_has_a_pinned_image(routing: RoutingConfig, at: At) -> Iterator[Problem]:
    if routing.mode != "inference-pool":
        return
    image = routing.picker.image
    if image is None:
        yield Problem(at.key("picker.image"), "is required with mode inference-pool (the endpoint picker's image)")
    elif "@sha256:" not in image:
        yield Problem(at.key("picker.image"), f"must be pinned by digest, <repository>@sha256:<64 hex> (got {image!r})")


def canary_changes_something(canary: CanaryConfig, at: At) -> Iterator[Problem]:
    if canary.image is None and canary.args is None and canary.model_revision is None:
        yield Problem(at.path, "must set image, args or modelRevision: what the canary runs that the model does not")


def replicas_or_autoscaling(model: ModelConfig, at: At) -> Iterator[Problem]:
    if model.autoscaling is not None and at.given("replicas"):
        yield Problem(at.key("replicas"), "conflicts with autoscaling: the autoscaler owns the replica count")


def metric_is_exported(model: ModelConfig, at: At) -> Iterator[Problem]:
    """A pods or external metric is one the model's engine exports: a typo would give an autoscaler that never
    scales (the policy pack's scraped-metrics rule checks the objects the same way)."""
    auto = model.autoscaling
    if auto is None or auto.metric.type == "cpu" or auto.metric.name is None:
        return
    exporter = model.engine_spec.exporter
    if auto.metric.name not in exporter.metrics:
        engine = model.engine_spec
        yield Problem(
            at.key("autoscaling.metric.name"),
            f"is not a metric engine {engine.name} exports (got {auto.metric.name!r}; e.g. {engine.queue_metric}, "
            f"{engine.running_metric}; config reference: Metrics)",
        )


def canary_needs_weighted_routes(model: ModelConfig, at: At) -> Iterator[Problem]:
    """A Service balances over every pod it selects: only an HTTPRoute's weights split requests by share."""
    canary = model.canary
    if canary is None:
        return
    if model.routing.mode == "service":
        yield Problem(
            at.key("canary"),
            "needs routing.mode gateway or inference-pool: the HTTPRoute's weights split requests between the "
            "stable pods and the canary's",
        )
    unchanged = (
        (canary.image is None or canary.image == model.image.ref)
        and (canary.args is None or canary.args == model.args)
        and (canary.model_revision is None or canary.model_revision == model.model_revision)
    )
    if unchanged and (canary.image, canary.args, canary.model_revision) != (None, None, None):
        yield Problem(at.key("canary"), "runs what the model runs: its image, args and modelRevision are the model's")


def service_behind_the_gateway(model: ModelConfig, at: At) -> Iterator[Problem]:
    if model.routing.mode != "service" and model.service.type == "LoadBalancer":
        yield Problem(
            at.key("service.type"),
            f"must be ClusterIP or NodePort with routing.mode {model.routing.mode}: requests enter through the "
            "Gateway, and a LoadBalancer would bypass its routes",
        )


def engine_gpus(model: ModelConfig, at: At) -> Iterator[Problem]:
    """A CPU engine asks for no GPU (a GPU it never touches only blocks other models); a GPU engine for one."""
    gpus, engine = model.resources.gpus, model.engine_spec
    if not engine.uses_gpus and gpus > 0:
        yield Problem(at.key("resources.gpus"), f"must be 0: engine {engine.name} runs on CPU only (got {gpus})")
    if engine.uses_gpus and gpus == 0:
        yield Problem(at.key("resources.gpus"), f"must be >= 1: engine {engine.name} serves on GPUs (got 0)")
    if not engine.uses_gpus and model.architecture is not None and model.engine != "llamacpp":
        yield Problem(
            at.key("architecture"),
            f"only sizes GPU engines and llamacpp (engine {engine.name} runs on CPU only); set resources instead",
        )


def llamacpp_serves_a_baked_model(model: ModelConfig, at: At) -> Iterator[Problem]:
    """llama-server loads a GGUF from the image: it has no hub download here, and its settings mean nothing to
    another engine."""
    if model.engine != "llamacpp":
        if at.given("llamacpp"):
            yield Problem(at.key("llamacpp"), f"is for engine llamacpp only (engine is {model.engine})")
        return
    if model.model_dir is None:
        yield Problem(
            at.key("modelDir"),
            f"is required with engine llamacpp: llama-server loads <modelDir>/{model.llamacpp.model_file} from the "
            f"image and does not download {model.model_id!r} from the hub",
        )
    if model.llamacpp.gguf_bytes is not None and model.architecture is None:
        yield Problem(
            at.key("architecture"),
            "is required with llamacpp.ggufBytes: its layers, kvHeads and headDim size the KV cache",
        )


def gpus_cover_the_sizing(model: ModelConfig, at: At) -> Iterator[Problem]:
    sized = model.sizing
    gpus = model.resources.gpus
    per_pod = sized.gpus_per_replica // sized.nodes_per_replica if sized is not None else 0
    if sized is not None and at.given("resources.gpus") and 0 < gpus < per_pod:
        yield Problem(
            at.key("resources.gpus"),
            f"is {model.resources.gpus} but {at.key('architecture')} needs {per_pod} GPUs per pod "
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


def prestage_needs_a_shared_pinned_cache(model: ModelConfig, at: At) -> Iterator[Problem]:
    """The Job writes the cache once; the pods, on any node, read it: a PVC every node can mount, and an exact
    revision to download (a moving name would differ between the Job and a later one)."""
    cache = model.cache
    if not cache.prestage:
        return
    if cache.type != "pvc":
        yield Problem(at.key("modelCache.type"), "must be pvc with prestage: an emptyDir dies with its pod")
    elif cache.access_mode != "ReadWriteMany":
        yield Problem(
            at.key("modelCache.accessMode"),
            f"must be ReadWriteMany with prestage: a Job writes the cache the pods read (got {cache.access_mode})",
        )
    if model.model_revision is None:
        yield Problem(at.key("modelRevision"), "is required with modelCache.prestage: the commit to download")
    if model.engine != "vllm":
        yield Problem(
            at.key("modelCache.prestage"),
            f"needs engine vllm, whose image downloads from the hub (engine {model.engine}'s image holds its model)",
        )
    if model.canary is not None and model.canary.model_revision not in (None, model.model_revision):
        yield Problem(
            at.key("canary.modelRevision"),
            "conflicts with modelCache.prestage: the canary reads the model's pre-staged revision offline",
        )


def shared_cache_access_mode(model: ModelConfig, at: At) -> Iterator[Problem]:
    cache = model.cache
    shared = model.peak_pods > 1
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
    Autoscaling: (replica_bounds, keda_keys_need_keda, keda_scales_on_a_query, zero_needs_a_wake_signal),
    Metric: (metric_has_a_target,),
    Rollout: (rollout_can_start,),
    ServiceConfig: (source_ranges_need_a_load_balancer,),
    Toleration: (toleration_value_needs_equal,),
    RoutingConfig: (picker_has_a_pinned_image,),
    CanaryConfig: (canary_changes_something,),
    ModelConfig: (
        replicas_or_autoscaling,
        canary_needs_weighted_routes,
        service_behind_the_gateway,
        metric_is_exported,
        engine_gpus,
        llamacpp_serves_a_baked_model,
        gpus_cover_the_sizing,
        cache_fits_ephemeral_storage,
        shared_cache_access_mode,
        prestage_needs_a_shared_pinned_cache,
    ),
}


# --- the stack ------------------------------------------------------------------------------------


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
