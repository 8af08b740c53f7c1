"""Typed stack configuration and its validation.

Everything under the ``model-serving:`` config namespace is read here, checked, and turned into
frozen dataclasses. Any mistake raises one :class:`ConfigError` whose message starts with the key
path (``models[1].resources.gpus``), before a single resource is registered.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast

from kubernetes.utils.quantity import parse_quantity as _untyped_parse_quantity

from components import sizing

# The official client's parser (the same one the policy pack uses), given a type.
parse_quantity = cast(Callable[[str], Decimal], _untyped_parse_quantity)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Reference: [registry[:port]/]path[:tag][@sha256:<64 hex>]
IMAGE_REF = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes quantity grammar: signed decimal number, then a binary/decimal SI suffix or an exponent.
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")

Engine = Literal["server", "vllm"]
ENGINES: tuple[Engine, ...] = ("server", "vllm")
TMP_SIZE = "2Gi"  # the writable /tmp emptyDir of every model pod
SERVICE_TYPES = ("LoadBalancer", "ClusterIP", "NodePort")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MIG_STRATEGIES = ("none", "single", "mixed")
METRIC_TYPES = ("cpu", "pods", "external")
CACHE_TYPES = ("emptyDir", "pvc")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany", "ReadOnlyMany")
CONSOLIDATION_POLICIES = ("WhenEmpty", "WhenEmptyOrUnderutilized")
CAPACITY_TYPES = ("on-demand", "spot", "reserved")

# Where each engine listens and answers its probes; the app/ server follows the same contract.
ENGINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "server": {"port": 8000, "liveness": "/healthz", "readiness": "/readyz", "modelLoadSeconds": 600},
    "vllm": {"port": 8000, "liveness": "/health", "readiness": "/health", "modelLoadSeconds": 1800},
}


class ConfigError(ValueError):
    """A stack-config mistake; the message starts with the offending key path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path} {message}")
        self.path = path


T = TypeVar("T")


class _Node:
    """A config mapping at a key path, with typed getters that name the key on error."""

    def __init__(self, path: str, raw: object, known: Sequence[str]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"must be an object (got {_kind(raw)})")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(_join(path, str(unknown[0])), f"is not a known key (known: {', '.join(known)})")
        self.path = path
        self.raw: Mapping[str, object] = raw

    def key(self, name: str) -> str:
        return _join(self.path, name)

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def child(self, name: str, known: Sequence[str]) -> _Node:
        value = self.raw.get(name)
        return _Node(self.key(name), {} if value is None else value, known)

    def string(self, name: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None) -> str:
        value = self.raw.get(name, default)
        if value is None:
            raise ConfigError(self.key(name), "is required")
        if not isinstance(value, str) or not value:
            raise ConfigError(self.key(name), f"must be a non-empty string (got {_kind(value)})")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(self.key(name), f"is not valid (got {value!r})")
        return value

    def opt_string(self, name: str, *, pattern: re.Pattern[str] | None = None) -> str | None:
        return self.string(name, pattern=pattern) if self.has(name) else None

    def name(self, name: str, default: str | None = None) -> str:
        value = self.string(name, default)
        if len(value) > 63 or not DNS1123_LABEL.match(value):
            raise ConfigError(
                self.key(name),
                f"must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 (got {value!r})",
            )
        return value

    def choice(self, name: str, choices: Sequence[T], default: T | None = None) -> T:
        value = self.raw.get(name, default)
        if value not in choices:
            raise ConfigError(self.key(name), f"must be one of {', '.join(map(str, choices))} (got {value!r})")
        return value  # type: ignore[return-value]

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false (got {value!r})")
        return value

    def integer(self, name: str, default: int | None = None, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.raw.get(name, default)
        if value is None:
            raise ConfigError(self.key(name), "is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be a whole number (got {value!r})")
        if value < minimum:
            raise ConfigError(self.key(name), f"must be >= {minimum} (got {value})")
        if maximum is not None and value > maximum:
            raise ConfigError(self.key(name), f"must be <= {maximum} (got {value})")
        return value

    def number(self, name: str, default: float | None = None, *, low: float, high: float) -> float:
        value = self.raw.get(name, default)
        if value is None:
            raise ConfigError(self.key(name), "is required")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(self.key(name), f"must be a number (got {value!r})")
        if not low < value <= high:
            raise ConfigError(self.key(name), f"must be in ({low}, {high}] (got {value})")
        return float(value)

    def quantity(self, name: str, default: str | None = None) -> str:
        value = self.raw.get(name, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a Kubernetes quantity such as '4' or '16Gi' (got {value!r})")
        try:
            # Python's Decimal also takes 'NaN', 'Infinity' and non-ASCII digits; Kubernetes does not.
            if not QUANTITY.match(value):
                raise ValueError(value)
            parsed = parse_quantity(value)
        except ValueError:
            raise ConfigError(self.key(name), f"is not a Kubernetes quantity (got {value!r})") from None
        if parsed <= 0:
            raise ConfigError(self.key(name), f"must be positive (got {value!r})")
        return value

    def strings(self, name: str, check: Callable[[str, str], None] | None = None) -> tuple[str, ...]:
        value = self.raw.get(name)
        value = [] if value is None else value
        if not isinstance(value, list):
            raise ConfigError(self.key(name), f"must be a list (got {_kind(value)})")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise ConfigError(f"{self.key(name)}[{i}]", f"must be a non-empty string (got {item!r})")
            if check is not None:
                check(f"{self.key(name)}[{i}]", item)
        return tuple(value)

    def string_map(self, name: str, *, key_pattern: re.Pattern[str] | None = None) -> dict[str, str]:
        value = self.raw.get(name)
        value = {} if value is None else value
        if not isinstance(value, Mapping):
            raise ConfigError(self.key(name), f"must be an object of strings (got {_kind(value)})")
        for k, v in value.items():
            if key_pattern is not None and not key_pattern.match(str(k)):
                raise ConfigError(_join(self.key(name), str(k)), "is not a valid name")
            if not isinstance(v, str):
                raise ConfigError(_join(self.key(name), str(k)), f"must be a string (got {v!r}; quote it)")
        return dict(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__ if value is not None else "nothing"
    )


def _check_cidr(path: str, value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ConfigError(path, f"must be a CIDR such as 10.0.0.0/8 (got {value!r})") from None


def _check_image(path: str, value: str) -> None:
    if not IMAGE_REF.match(value):
        raise ConfigError(path, f"is not an image reference (got {value!r})")
    match = IMAGE_REF.match(value)
    assert match is not None
    if match["tag"] in (None, "latest") and not match["digest"]:
        raise ConfigError(path, f"must pin a tag other than 'latest' or a digest (got {value!r})")


def _check_label_key(path: str, value: str) -> None:
    if not LABEL_KEY.match(value):
        raise ConfigError(path, f"is not a Kubernetes label key (got {value!r})")


# ---------------------------------------------------------------------------------------------
# Typed config
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Taint:
    key: str = "nvidia.com/gpu"
    value: str = "present"
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class DevicePluginConfig:
    enabled: bool = True
    # Pinned by digest: the plugin runs as root on every GPU node.
    image: str = (
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
        "@sha256:af31e2b7c7f89834c4e5219860def7ac2e49a207b3d4e8610d5a26772b7738e5"
    )
    namespace: str = "nvidia-device-plugin"
    time_slicing_replicas: int = 1
    mig_strategy: str = "none"


@dataclass(frozen=True)
class KarpenterConfig:
    node_class_group: str = "karpenter.k8s.aws"
    node_class_kind: str = "EC2NodeClass"
    node_class_name: str = "gpu"
    instance_types: tuple[str, ...] = ()
    gpu_products: tuple[str, ...] = ()
    capacity_types: tuple[str, ...] = ("on-demand",)
    consolidation_policy: str = "WhenEmpty"
    consolidate_after: str = "30m"
    disruption_budget_nodes: str = "10%"
    expire_after: str = "720h"


@dataclass(frozen=True)
class GpuPoolConfig:
    name: str = "gpu"
    gpu_resource_name: str = "nvidia.com/gpu"
    node_selector: Mapping[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    taint: Taint = field(default_factory=Taint)
    runtime_class: str = "nvidia"
    gpu_budget: int | None = None
    gpu_memory: str = "80Gi"
    device_plugin: DevicePluginConfig = field(default_factory=DevicePluginConfig)
    karpenter: KarpenterConfig | None = None


@dataclass(frozen=True)
class ImageBuildConfig:
    image_name: str
    context: str = "app"
    dockerfile: str = "app/Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)
    platform: str = "linux/amd64"
    cache_from: tuple[str, ...] = ()
    push: bool = False
    registry_server: str | None = None
    registry_username: str | None = None


@dataclass(frozen=True)
class ImageConfig:
    ref: str | None = None
    build: ImageBuildConfig | None = None


@dataclass(frozen=True)
class Resources:
    cpu: str
    memory: str
    ephemeral_storage: str
    gpus: int


@dataclass(frozen=True)
class Architecture:
    """A model's shape, from which GPUs, memory and vLLM arguments are derived."""

    params: float
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    dtype: str = "bf16"
    max_model_len: int = 4096
    max_num_seqs: int = 16
    gpu_memory_utilization: float = 0.9


@dataclass(frozen=True)
class Probes:
    model_load_seconds: int
    period_seconds: int = 10


@dataclass(frozen=True)
class ModelCache:
    type: str = "emptyDir"
    size: str = "8Gi"
    storage_class: str | None = None
    access_mode: str = "ReadWriteOnce"


@dataclass(frozen=True)
class Metric:
    type: str = "cpu"
    target_utilization: int = 70
    name: str | None = None
    target_average_value: str | None = None
    target_value: str | None = None
    selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    metric: Metric
    scale_up_window_seconds: int = 0
    scale_down_window_seconds: int = 600


@dataclass(frozen=True)
class Rollout:
    max_surge: int = 0
    max_unavailable: int = 1


@dataclass(frozen=True)
class ServiceConfig:
    type: str = "LoadBalancer"
    port: int = 80
    annotations: Mapping[str, str] = field(default_factory=dict)
    source_ranges: tuple[str, ...] = ()
    external_traffic_policy: str = "Local"
    session_affinity: str = "None"
    allow_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    name: str
    namespace: str
    engine: Engine
    model_id: str
    image: ImageConfig
    resources: Resources
    port: int
    args: tuple[str, ...]
    env: Mapping[str, str]
    replicas: int
    probes: Probes
    cache: ModelCache
    shm_size: str
    hub_token: bool
    autoscaling: Autoscaling | None
    rollout: Rollout
    service: ServiceConfig
    architecture: Architecture | None = None
    sizing: sizing.SizingResult | None = None
    # JSON merge patch (RFC 7386) over the server container: the escape hatch for fields the
    # config does not cover. null deletes a key; the policy pack still checks the result.
    container_patch: Mapping[str, Any] = field(default_factory=dict)
    # Where the image holds the model's files (MODEL_DIR); unset: the hub cache under /cache.
    model_dir: str | None = None

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.replicas

    @property
    def min_replicas(self) -> int:
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas

    @property
    def liveness_path(self) -> str:
        return str(ENGINE_DEFAULTS[self.engine]["liveness"])

    @property
    def readiness_path(self) -> str:
        return str(ENGINE_DEFAULTS[self.engine]["readiness"])


@dataclass(frozen=True)
class StackConfig:
    namespace: str
    models: tuple[ModelConfig, ...]
    gpu_pool: GpuPoolConfig
    render_directory: str | None = None
    kube_context: str | None = None


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

TOP_KEYS = ("namespace", "gpuPool", "models", "renderDirectory", "kubeContext", "imageRefOverride")
POOL_KEYS = (
    "name",
    "gpuResourceName",
    "nodeSelector",
    "taint",
    "runtimeClass",
    "gpuBudget",
    "gpuMemory",
    "devicePlugin",
    "karpenter",
)
MODEL_KEYS = (
    "name",
    "namespace",
    "engine",
    "modelId",
    "image",
    "resources",
    "architecture",
    "port",
    "args",
    "env",
    "replicas",
    "probes",
    "modelCache",
    "shmSize",
    "hubToken",
    "autoscaling",
    "rollout",
    "service",
    "containerPatch",
    "modelDir",
)


def parse_stack_config(
    raw: Mapping[str, object], *, has_hub_token: bool = False, has_registry_password: bool = False
) -> StackConfig:
    """Validate the raw ``model-serving:`` config and return it typed, or raise ConfigError."""
    top = _Node("", raw, TOP_KEYS)
    namespace = top.name("namespace", "models")
    if namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
        raise ConfigError("namespace", f"must not be a system namespace (got {namespace!r})")
    pool = _parse_pool(top.child("gpuPool", POOL_KEYS))
    override = top.opt_string("imageRefOverride")
    if override is not None:
        _check_image("imageRefOverride", override)

    models_raw = raw.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise ConfigError("models", f"must be a non-empty list of models (got {_kind(models_raw)})")
    models: list[ModelConfig] = []
    for i, item in enumerate(models_raw):
        model = _parse_model(_Node(f"models[{i}]", item, MODEL_KEYS), namespace, pool, override)
        for j, other in enumerate(models):
            if other.name == model.name:
                raise ConfigError(f"models[{i}].name", f"duplicates models[{j}].name ({model.name!r})")
            if other.namespace == model.namespace:
                raise ConfigError(f"models[{i}].namespace", f"duplicates models[{j}] ({model.namespace!r})")
        if pool.device_plugin.enabled and model.namespace == pool.device_plugin.namespace:
            # Two Namespace resources (restricted and privileged) would fight over one object.
            raise ConfigError(
                f"models[{i}].namespace", f"must differ from gpuPool.devicePlugin.namespace ({model.namespace!r})"
            )
        if model.hub_token and not has_hub_token:
            raise ConfigError(
                f"models[{i}].hubToken",
                "needs the secret model-serving:hubToken (pulumi config set --secret model-serving:hubToken …)",
            )
        build = model.image.build
        if build is not None and build.push and build.registry_server and not has_registry_password:
            raise ConfigError(
                f"models[{i}].image.build.registry",
                "needs the secret model-serving:registryPassword (pulumi config set --secret …)",
            )
        models.append(model)

    if pool.gpu_budget is not None:
        demand = sum((m.max_replicas + m.rollout.max_surge) * m.resources.gpus for m in models)
        if demand > pool.gpu_budget:
            raise ConfigError(
                "gpuPool.gpuBudget",
                f"is too small: the models may run {demand} GPUs at peak "
                f"((max replicas + maxSurge) × GPUs, summed) but the budget is {pool.gpu_budget}",
            )
    return StackConfig(
        namespace=namespace,
        models=tuple(models),
        gpu_pool=pool,
        render_directory=top.opt_string("renderDirectory"),
        kube_context=top.opt_string("kubeContext"),
    )


def _parse_pool(node: _Node) -> GpuPoolConfig:
    taint_node = node.child("taint", ("key", "value", "effect"))
    taint = Taint(
        key=taint_node.string("key", Taint.key),
        value=taint_node.string("value", Taint.value),
        effect=taint_node.choice("effect", TAINT_EFFECTS, Taint.effect),
    )
    _check_label_key(taint_node.key("key"), taint.key)
    dp_node = node.child("devicePlugin", ("enabled", "image", "namespace", "timeSlicingReplicas", "migStrategy"))
    defaults = DevicePluginConfig()
    device_plugin = DevicePluginConfig(
        enabled=dp_node.flag("enabled", defaults.enabled),
        image=dp_node.string("image", defaults.image),
        namespace=dp_node.name("namespace", defaults.namespace),
        time_slicing_replicas=dp_node.integer("timeSlicingReplicas", 1, minimum=1, maximum=64),
        mig_strategy=dp_node.choice("migStrategy", MIG_STRATEGIES, "none"),
    )
    _check_image(dp_node.key("image"), device_plugin.image)
    karpenter = None
    if node.has("karpenter"):
        karpenter = _parse_karpenter(
            node.child(
                "karpenter",
                (
                    "nodeClassRef",
                    "instanceTypes",
                    "gpuProducts",
                    "capacityTypes",
                    "consolidationPolicy",
                    "consolidateAfter",
                    "disruptionBudgetNodes",
                    "expireAfter",
                ),
            )
        )
    node_selector = node.string_map("nodeSelector", key_pattern=LABEL_KEY) if node.has("nodeSelector") else None
    budget = node.integer("gpuBudget", minimum=1) if node.has("gpuBudget") else None
    if karpenter is not None and budget is None:
        raise ConfigError(node.key("gpuBudget"), "is required with gpuPool.karpenter (it becomes the NodePool limit)")
    gpu_memory = node.string("gpuMemory", GpuPoolConfig.gpu_memory)
    try:
        sizing.parse_memory(gpu_memory)
    except ValueError:
        raise ConfigError(node.key("gpuMemory"), f"is not a memory size such as 80Gi (got {gpu_memory!r})") from None
    pool = GpuPoolConfig(
        name=node.name("name", GpuPoolConfig.name),
        gpu_resource_name=node.string("gpuResourceName", GpuPoolConfig.gpu_resource_name),
        taint=taint,
        runtime_class=node.name("runtimeClass", GpuPoolConfig.runtime_class),
        gpu_budget=budget,
        gpu_memory=gpu_memory,
        device_plugin=device_plugin,
        karpenter=karpenter,
    )
    _check_label_key(node.key("gpuResourceName"), pool.gpu_resource_name)
    if node_selector is not None:
        if not node_selector:
            raise ConfigError(node.key("nodeSelector"), "must select GPU nodes with at least one label")
        pool = dataclasses.replace(pool, node_selector=node_selector)
    return pool


DURATION = re.compile(r"^([0-9]+(s|m|h))+$|^Never$")


def _parse_karpenter(node: _Node) -> KarpenterConfig:
    ref = node.child("nodeClassRef", ("group", "kind", "name"))
    defaults = KarpenterConfig()
    config = KarpenterConfig(
        node_class_group=ref.string("group", defaults.node_class_group),
        node_class_kind=ref.string("kind", defaults.node_class_kind),
        node_class_name=ref.name("name", defaults.node_class_name),
        instance_types=node.strings("instanceTypes"),
        gpu_products=node.strings("gpuProducts"),
        capacity_types=node.strings("capacityTypes") or defaults.capacity_types,
        consolidation_policy=node.choice("consolidationPolicy", CONSOLIDATION_POLICIES, defaults.consolidation_policy),
        consolidate_after=node.string("consolidateAfter", defaults.consolidate_after, pattern=DURATION),
        disruption_budget_nodes=node.string(
            "disruptionBudgetNodes",
            defaults.disruption_budget_nodes,
            pattern=re.compile(r"^[0-9]+$|^(100|[1-9]?[0-9])%$"),
        ),
        expire_after=node.string("expireAfter", defaults.expire_after, pattern=DURATION),
    )
    for i, capacity in enumerate(config.capacity_types):
        if capacity not in CAPACITY_TYPES:
            raise ConfigError(f"{node.key('capacityTypes')}[{i}]", f"must be one of {', '.join(CAPACITY_TYPES)}")
    if not config.instance_types and not config.gpu_products:
        raise ConfigError(node.key("instanceTypes"), "or gpuProducts must name the GPU instances Karpenter may launch")
    return config


def _parse_model(node: _Node, namespace: str, pool: GpuPoolConfig, override: str | None) -> ModelConfig:
    name = node.name("name")
    engine = node.choice("engine", ENGINES, "server")
    engine_defaults = ENGINE_DEFAULTS[engine]
    model_ns = node.name("namespace", f"{namespace}-{name}"[:63].rstrip("-"))
    if model_ns == "default" or model_ns.startswith("kube-"):
        raise ConfigError(node.key("namespace"), f"must not be a system namespace (got {model_ns!r})")

    image = _parse_image(node.child("image", ("ref", "build")), override)
    architecture = _parse_architecture(node) if node.has("architecture") else None
    sized = None
    res_node = node.child("resources", ("cpu", "memory", "ephemeralStorage", "gpus"))
    if architecture is not None:
        sized = _size(node, architecture, pool, res_node)
    gpus_default = sized.gpus_per_replica if sized else None
    memory_default = _gibibytes(sized.host_memory_bytes) if sized else None
    resources = Resources(
        cpu=res_node.quantity("cpu", "4"),
        memory=res_node.quantity("memory", memory_default or "16Gi"),
        ephemeral_storage=res_node.quantity("ephemeralStorage", "10Gi"),
        gpus=res_node.integer("gpus", gpus_default if gpus_default is not None else 1, minimum=0, maximum=16),
    )

    replicas = node.integer("replicas", 1, minimum=1, maximum=1000)
    autoscaling = _parse_autoscaling(node) if node.has("autoscaling") else None
    if autoscaling is not None and node.has("replicas"):
        raise ConfigError(node.key("replicas"), "conflicts with autoscaling: the HPA owns the replica count")

    rollout_node = node.child("rollout", ("maxSurge", "maxUnavailable"))
    rollout = Rollout(
        max_surge=rollout_node.integer("maxSurge", 0, maximum=100),
        max_unavailable=rollout_node.integer("maxUnavailable", 1, maximum=100),
    )
    if rollout.max_surge == 0 and rollout.max_unavailable == 0:
        raise ConfigError(
            rollout_node.key("maxUnavailable"), "must be >= 1 when maxSurge is 0, or a rollout never starts"
        )

    probe_node = node.child("probes", ("modelLoadSeconds", "periodSeconds"))
    probes = Probes(
        model_load_seconds=probe_node.integer(
            "modelLoadSeconds", int(engine_defaults["modelLoadSeconds"]), minimum=10, maximum=4 * 3600
        ),
        period_seconds=probe_node.integer("periodSeconds", 10, minimum=1, maximum=300),
    )

    cache_node = node.child("modelCache", ("type", "size", "storageClass", "accessMode"))
    cache = ModelCache(
        type=cache_node.choice("type", CACHE_TYPES, "emptyDir"),
        size=cache_node.quantity("size", "8Gi"),
        storage_class=cache_node.opt_string("storageClass"),
        access_mode=cache_node.choice("accessMode", ACCESS_MODES, "ReadWriteOnce"),
    )
    if cache.type == "emptyDir":
        # An emptyDir cache and /tmp count against the pod's ephemeral storage: the kubelet evicts
        # the pod once a download outgrows the limit, long before the cache's own sizeLimit.
        needed = parse_quantity(cache.size) + parse_quantity(TMP_SIZE)
        if parse_quantity(resources.ephemeral_storage) < needed:
            raise ConfigError(
                res_node.key("ephemeralStorage"),
                f"must hold modelCache.size plus {TMP_SIZE} of /tmp (got {resources.ephemeral_storage} "
                f"< {cache.size} + {TMP_SIZE}); raise it or use modelCache.type pvc",
            )
    max_replicas = autoscaling.max_replicas if autoscaling else replicas
    if (
        cache.type == "pvc"
        and max_replicas + rollout.max_surge > 1
        and cache.access_mode not in ("ReadWriteMany", "ReadOnlyMany")
    ):
        raise ConfigError(
            cache_node.key("accessMode"),
            f"must be ReadWriteMany or ReadOnlyMany when more than one pod shares the cache (got {cache.access_mode})",
        )

    port = node.integer("port", int(engine_defaults["port"]), minimum=1, maximum=65535)
    service = _parse_service(node.child("service", SERVICE_KEYS))
    env = node.string_map("env", key_pattern=ENV_NAME)
    args = node.strings("args")
    shm_default = _gibibytes(sized.shm_bytes) if sized else ("8Gi" if resources.gpus > 1 else "1Gi")
    model = ModelConfig(
        name=name,
        namespace=model_ns,
        engine=engine,
        model_id=node.string("modelId"),
        image=image,
        resources=resources,
        port=port,
        args=args,
        env=env,
        replicas=replicas,
        probes=probes,
        cache=cache,
        shm_size=node.quantity("shmSize", shm_default),
        hub_token=node.flag("hubToken", False),
        container_patch=_parse_patch(node),
        model_dir=node.opt_string("modelDir", pattern=re.compile(r"^/[^\0]*$")),
        autoscaling=autoscaling,
        rollout=rollout,
        service=service,
        architecture=architecture,
        sizing=sized,
    )
    if sized is not None and res_node.has("gpus") and model.resources.gpus < sized.gpus_per_replica:
        raise ConfigError(
            res_node.key("gpus"),
            f"is {model.resources.gpus} but {node.key('architecture')} needs {sized.gpus_per_replica} GPUs "
            f"({sized.reason or 'weights, KV cache and overhead exceed one GPU'})",
        )
    return model


def _parse_patch(node: _Node) -> dict[str, Any]:
    patch = node.raw.get("containerPatch")
    patch = {} if patch is None else patch
    if not isinstance(patch, Mapping):
        raise ConfigError(node.key("containerPatch"), f"must be an object (a JSON merge patch; got {_kind(patch)})")
    for protected in ("name", "image"):
        if protected in patch:
            raise ConfigError(
                f"{node.key('containerPatch')}.{protected}", "is set by the program and cannot be patched"
            )
    return dict(patch)


def _gibibytes(value: int) -> str:
    return f"{max(1, math.ceil(value / 2**30))}Gi"


def _parse_image(node: _Node, override: str | None) -> ImageConfig:
    if override is not None:
        return ImageConfig(ref=override)
    if node.has("ref") == node.has("build"):
        raise ConfigError(node.path, "must set exactly one of ref (a prebuilt image) or build")
    if node.has("ref"):
        ref = node.string("ref")
        _check_image(node.key("ref"), ref)
        return ImageConfig(ref=ref)
    build = node.child(
        "build", ("imageName", "context", "dockerfile", "args", "platform", "cacheFrom", "push", "registry")
    )
    image_name = build.string("imageName")
    _check_image(build.key("imageName"), image_name)
    registry = build.child("registry", ("server", "username"))
    cache_from = build.strings("cacheFrom", _check_image)
    push = build.flag("push", False)
    if push and not registry.has("server"):
        raise ConfigError(registry.key("server"), "is required when push is true")
    return ImageConfig(
        build=ImageBuildConfig(
            image_name=image_name,
            context=build.string("context", "app"),
            dockerfile=build.string("dockerfile", "app/Dockerfile"),
            args=build.string_map("args", key_pattern=ENV_NAME),
            platform=build.choice("platform", ("linux/amd64", "linux/arm64"), "linux/amd64"),
            cache_from=cache_from,
            push=push,
            registry_server=registry.opt_string("server"),
            registry_username=registry.opt_string("username"),
        )
    )


ARCH_KEYS = (
    "params",
    "layers",
    "heads",
    "kvHeads",
    "headDim",
    "dtype",
    "maxModelLen",
    "maxNumSeqs",
    "gpuMemoryUtilization",
)


def _parse_architecture(node: _Node) -> Architecture:
    arch = node.child("architecture", ARCH_KEYS)
    params = arch.number("params", low=0, high=1e13)
    return Architecture(
        params=params,
        layers=arch.integer("layers", minimum=1, maximum=1000),
        heads=arch.integer("heads", minimum=1, maximum=1024),
        kv_heads=arch.integer("kvHeads", minimum=1, maximum=1024),
        head_dim=arch.integer("headDim", minimum=1, maximum=4096),
        dtype=arch.choice("dtype", tuple(sizing.DTYPE_BYTES), "bf16"),
        max_model_len=arch.integer("maxModelLen", 4096, minimum=16, maximum=10_000_000),
        max_num_seqs=arch.integer("maxNumSeqs", 16, minimum=1, maximum=100_000),
        gpu_memory_utilization=arch.number("gpuMemoryUtilization", 0.9, low=0.05, high=1),
    )


# Sizing's field names and the config keys they come from.
_ARCH_FIELD_KEYS = {
    "kv_heads": "kvHeads",
    "head_dim": "headDim",
    "max_model_len": "maxModelLen",
    "max_num_seqs": "maxNumSeqs",
    "gpu_memory_utilization": "gpuMemoryUtilization",
}


def _size(node: _Node, arch: Architecture, pool: GpuPoolConfig, res_node: _Node) -> sizing.SizingResult:
    gpus = res_node.raw.get("gpus")
    request = sizing.SizingRequest(
        architecture=sizing.ModelArchitecture(
            params=arch.params, layers=arch.layers, heads=arch.heads, kv_heads=arch.kv_heads, head_dim=arch.head_dim
        ),
        dtype=arch.dtype,
        max_model_len=arch.max_model_len,
        max_num_seqs=arch.max_num_seqs,
        gpu_memory_bytes=sizing.parse_memory(pool.gpu_memory),
        gpu_memory_utilization=arch.gpu_memory_utilization,
        gpus=gpus if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 0 else None,
    )
    try:
        result = sizing.size_model(request)
    except sizing.SizingError as error:
        if error.field == "gpus":
            key = res_node.key("gpus")
        elif error.field == "gpu_memory_bytes":
            key = "gpuPool.gpuMemory"
        else:
            key = node.key(f"architecture.{_ARCH_FIELD_KEYS.get(error.field, error.field)}")
        raise ConfigError(key, str(error).split(" ", 1)[1]) from None
    if not result.fits:
        if request.gpus is not None:
            raise ConfigError(
                res_node.key("gpus"),
                f"is {request.gpus} but {node.key('architecture')} does not fit on {request.gpus} GPU(s) "
                f"of gpuPool.gpuMemory {pool.gpu_memory}: {result.reason}",
            )
        raise ConfigError(
            node.key("architecture"), f"does not fit gpuPool.gpuMemory {pool.gpu_memory}: {result.reason}"
        )
    return result


SERVICE_KEYS = (
    "type",
    "port",
    "annotations",
    "sourceRanges",
    "externalTrafficPolicy",
    "sessionAffinity",
    "allowFrom",
)


def _parse_service(node: _Node) -> ServiceConfig:
    service = ServiceConfig(
        type=node.choice("type", SERVICE_TYPES, "LoadBalancer"),
        port=node.integer("port", 80, minimum=1, maximum=65535),
        annotations=node.string_map("annotations", key_pattern=LABEL_KEY),
        source_ranges=node.strings("sourceRanges", _check_cidr),
        external_traffic_policy=node.choice("externalTrafficPolicy", ("Local", "Cluster"), "Local"),
        session_affinity=node.choice("sessionAffinity", ("None", "ClientIP"), "None"),
        allow_from=node.strings("allowFrom", _check_cidr),
    )
    if service.type != "LoadBalancer" and service.source_ranges:
        raise ConfigError(node.key("sourceRanges"), f"only applies to type LoadBalancer (type is {service.type})")
    return service


def _parse_autoscaling(node: _Node) -> Autoscaling:
    auto = node.child(
        "autoscaling", ("minReplicas", "maxReplicas", "metric", "scaleUpWindowSeconds", "scaleDownWindowSeconds")
    )
    low = auto.integer("minReplicas", 1, minimum=1, maximum=1000)
    high = auto.integer("maxReplicas", minimum=1, maximum=1000)
    if high < low:
        raise ConfigError(auto.key("maxReplicas"), f"must be >= minReplicas (got {high} < {low})")
    m = auto.child("metric", ("type", "targetUtilization", "name", "targetAverageValue", "targetValue", "selector"))
    kind = m.choice("type", METRIC_TYPES, "cpu")
    if kind == "cpu":
        metric = Metric(type="cpu", target_utilization=m.integer("targetUtilization", 70, minimum=1, maximum=100))
    else:
        name = m.string("name", pattern=re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"))
        value_key = "targetAverageValue" if kind == "pods" else "targetValue"
        if not m.has(value_key):
            raise ConfigError(m.key(value_key), f"is required for a {kind} metric")
        metric = Metric(
            type=kind,
            name=name,
            target_average_value=m.quantity("targetAverageValue") if kind == "pods" else None,
            target_value=m.quantity("targetValue") if kind == "external" else None,
            selector=m.string_map("selector", key_pattern=LABEL_KEY),
        )
    return Autoscaling(
        min_replicas=low,
        max_replicas=high,
        metric=metric,
        scale_up_window_seconds=auto.integer("scaleUpWindowSeconds", 0, maximum=3600),
        scale_down_window_seconds=auto.integer("scaleDownWindowSeconds", 600, maximum=3600),
    )


def quantity(value: str) -> Decimal:
    """Parse a Kubernetes quantity (for callers outside this module)."""
    return Decimal(parse_quantity(value))
