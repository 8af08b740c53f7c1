"""Rules across the keys of one block, each one named function, listed in :data:`BLOCK_RULES` by the block they
check. A block's rules run once its keys are read, even when some of them are wrong, so that one run reports every
mistake: a wrong key reads as INVALID, and a rule that touches one is skipped (its mistake is reported already); a
rule's problem on a key that has a mistake of its own is dropped. The rules across blocks, which see the whole stack,
are in :mod:`.stack_rules`.

A rule yields :class:`Problem` s, each naming the key to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.config.engines import GATEWAYS
from components.config.errors import Problem
from components.config.kinds import join, parse_quantity
from components.config.model import ModelConfig
from components.config.pool import GpuPoolConfig, KarpenterConfig
from components.config.routing import CanaryConfig, RoutingConfig, ServiceConfig
from components.config.scaling import KEDA_ONLY, Autoscaling, Metric
from components.config.workload import TMP_SIZE, ImageBuildConfig, ImageConfig, PriorityClassConfig, Rollout, Toleration


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


def existing_priority_class_is_named(priority: PriorityClassConfig, at: At) -> Iterator[Problem]:
    if not priority.create and not at.given("name"):
        yield Problem(at.key("name"), "is required when create is false (the class the cluster has)")


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
    PriorityClassConfig: (existing_priority_class_is_named,),
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
