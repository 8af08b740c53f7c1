"""The ``model-serving:`` config schema: every key declared once, with its kind, default and one line of docs.

The reader (:mod:`.reader`) checks a stack's config against it, the docs table (``docs/config.md``) and the
component provider's input types (``provider/model_serving_types.py``) are generated from it
(:mod:`.docs`). Rules across keys live in :mod:`.rules`; defaults that depend on other keys in :mod:`.derive`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from components import sizing
from components.config import derive
from components.config.declare import EMPTY, REQUIRED, Block, BlockList, Derived, Secret, computed, key
from components.config.engines import ENGINES, GATEWAYS, Engine, EngineSpec
from components.config.kinds import (
    DURATION,
    ENV_NAME,
    HTTP_URL,
    LABEL_KEY,
    PROM_DURATION,
    TAINT_EFFECTS,
    Choice,
    DnsLabel,
    Flag,
    ImageRef,
    Int,
    LabelKey,
    Number,
    Patch,
    Quantity,
    StringMap,
    Strings,
    Text,
    check_cidr,
    check_dns_label,
    check_image,
    check_label_value,
    check_memory_size,
    one_of,
)
from components.sizing import LlamaCppSizing

_key = key
TMP_SIZE = "2Gi"  # the writable /tmp emptyDir of every model pod

# Namespaces a stack or a model must not take over.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _stack_namespace(value: str) -> str | None:
    message = check_dns_label(value)
    if message is None and value in SYSTEM_NAMESPACES:
        message = f"must not be a system namespace (got {value!r})"
    return message


def _model_namespace(value: str) -> str | None:
    message = check_dns_label(value)
    if message is None and (value == "default" or value.startswith("kube-")):
        message = f"must not be a system namespace (got {value!r})"
    return message


# ---------------------------------------------------------------------------------------------
# gpuPool
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Taint:
    """The taint that keeps other pods off GPU nodes; GPU pods tolerate it."""

    # (``_key``: the field ``key`` hides the function in the class body.)
    key: str = _key(LabelKey(), "nvidia.com/gpu", "taint key")
    value: str = _key(Text(), "present", "taint value")
    effect: str = _key(Choice(TAINT_EFFECTS), "NoSchedule", "taint effect")


@dataclass(frozen=True, kw_only=True)
class DevicePluginConfig:
    """The NVIDIA device plugin DaemonSet that advertises the GPUs."""

    type_name: ClassVar[str] = "DevicePlugin"
    enabled: bool = key(Flag(), True, "deploy it; false where the cluster already runs one")
    # Pinned by digest: the plugin runs as root on every GPU node.
    image: str = key(
        ImageRef(),
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
        "@sha256:af31e2b7c7f89834c4e5219860def7ac2e49a207b3d4e8610d5a26772b7738e5",
        "the plugin image, pinned: it runs as root on every GPU node",
    )
    namespace: str = key(
        DnsLabel(), "nvidia-device-plugin", "its namespace (pod security `privileged`: it needs a hostPath)"
    )
    time_slicing_replicas: int = key(Int(1, 64), 1, "time-slicing: pods per physical GPU (1 = off)")
    mig_strategy: str = key(Choice(("none", "single", "mixed")), "none", "MIG strategy")


@dataclass(frozen=True, kw_only=True)
class DcgmExporterConfig:
    """NVIDIA's DCGM exporter on the GPU nodes, and its ServiceMonitor (prometheus-operator).

    GPU utilization and memory per pod."""

    type_name: ClassVar[str] = "DcgmExporter"
    enabled: bool = key(Flag(), False, "deploy it (and its ServiceMonitor)")
    # Pinned by digest: it runs as root on every GPU node.
    image: str = key(
        ImageRef(),
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"
        "@sha256:60d3b00ac80b4ae77f94dae2f943685605585ad9e92fdccda3154d009ae317cc",
        "the exporter image, pinned: it runs as root on every GPU node",
    )
    namespace: str = key(
        DnsLabel(),
        "nvidia-dcgm-exporter",
        "its namespace (pod security `privileged`: it reads the kubelet's pod resources socket through a hostPath)",
    )


@dataclass(frozen=True, kw_only=True)
class KarpenterConfig:
    """A Karpenter NodePool for GPU nodes (needs gpuBudget, its limit)."""

    type_name: ClassVar[str] = "Karpenter"
    node_class_group: str = key(Text(), "karpenter.k8s.aws", "API group of the node class", name="nodeClassRef.group")
    node_class_kind: str = key(Text(), "EC2NodeClass", "kind of the node class", name="nodeClassRef.kind")
    node_class_name: str = key(DnsLabel(), "gpu", "the node class the NodePool launches from", name="nodeClassRef.name")
    instance_types: tuple[str, ...] = key(Strings(), (), "allowed instance types (this or `gpuProducts` is required)")
    gpu_products: tuple[str, ...] = key(
        Strings(), (), "allowed GPU names (`karpenter.k8s.aws/instance-gpu-name`, e.g. `h100`)"
    )
    capacity_types: tuple[str, ...] = key(
        Strings(check=one_of(("on-demand", "spot", "reserved"))),
        ("on-demand",),
        "`on-demand`, `spot` or `reserved` (an empty list: the default)",
    )
    consolidation_policy: str = key(
        Choice(("WhenEmpty", "WhenEmptyOrUnderutilized")), "WhenEmpty", "which nodes Karpenter may consolidate"
    )
    consolidate_after: str = key(Text("duration", pattern=DURATION), "30m", "how long a node idles before that")
    disruption_budget_nodes: str = key(
        Text("count or %", pattern=re.compile(r"^[0-9]+$|^(100|[1-9]?[0-9])%$")),
        "10%",
        "nodes Karpenter may disrupt at once",
    )
    expire_after: str = key(Text("duration", pattern=DURATION), "720h", "node lifetime before replacement")


@dataclass(frozen=True, kw_only=True)
class GpuPoolConfig:
    """The stack's GPU node pool: how GPU nodes are provided and how workloads land on them."""

    type_name: ClassVar[str] = "GpuPool"
    name: str = key(DnsLabel(), "gpu", "name of the Karpenter NodePool", resource_name=True)
    gpu_resource_name: str = key(
        LabelKey("resource name"), "nvidia.com/gpu", "extended resource the device plugin advertises"
    )
    node_selector: Mapping[str, str] = key(
        StringMap(LABEL_KEY),
        {"nvidia.com/gpu.present": "true"},
        "labels of GPU nodes (Karpenter nodes get them from the NodePool template)",
    )
    taint: Taint = key(Block(Taint), EMPTY, "the taint keeping other pods off GPU nodes")
    runtime_class: str = key(DnsLabel(), "nvidia", "RuntimeClass (handler `nvidia`) GPU pods use")
    gpu_budget: int | None = key(
        Int(1),
        None,
        "GPUs the pool may hold; the models' peak `(maxReplicas + maxSurge) × gpus` must fit",
        unset="none (required with `karpenter`)",
    )
    gpu_memory: str = key(
        Text("size", check=check_memory_size), "80Gi", "memory of one GPU, for sizing models from their architecture"
    )
    gpus_per_node: int | None = key(
        Int(1, 64),
        None,
        "GPUs on one node: a model that needs more runs each replica over several nodes (a LeaderWorkerSet, "
        "tensor parallel within a node, pipeline parallel across)",
        unset="one node holds any model (up to 8 GPUs)",
    )
    device_plugin: DevicePluginConfig = key(Block(DevicePluginConfig), EMPTY, "the NVIDIA device plugin")
    dcgm_exporter: DcgmExporterConfig = key(Block(DcgmExporterConfig), EMPTY, "the NVIDIA DCGM exporter")
    karpenter: KarpenterConfig | None = key(Block(KarpenterConfig), None, "a Karpenter NodePool for the GPU nodes")


# ---------------------------------------------------------------------------------------------
# models[i]
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ImageBuildConfig:
    """Build the model server image with Docker (needs the docker provider plugin)."""

    type_name: ClassVar[str] = "ImageBuild"
    image_name: str = key(ImageRef(), REQUIRED, "name (and tag) to build")
    context: str = key(Text("path"), "app", "build context")
    dockerfile: str = key(Text("path"), "app/Dockerfile", "Dockerfile")
    args: Mapping[str, str] = key(StringMap(ENV_NAME), {}, "build arguments (e.g. `MODEL_DIR`)")
    platform: str = key(Choice(("linux/amd64", "linux/arm64")), "linux/amd64", "target platform")
    cache_from: tuple[str, ...] = key(Strings("list of refs", check_image), (), "cache sources")
    push: bool = key(Flag(), False, "push; the image reference becomes the pushed digest")
    registry_server: str | None = key(
        Text(), None, "registry to log in to for pushes (password: secret `registryPassword`)", name="registry.server"
    )
    registry_username: str | None = key(Text(), None, "user of that registry", name="registry.username")


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """Exactly one of ref (a prebuilt image: a tag other than latest, or a digest) or build."""

    type_name: ClassVar[str] = "Image"
    ref: str | None = key(
        ImageRef(), None, "prebuilt image; a tag other than `latest` or a digest is required (`imageLock` may pin it)"
    )
    build: ImageBuildConfig | None = key(Block(ImageBuildConfig), None, "build the image from a Docker context")


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """A model's shape, from which GPUs, memory, /dev/shm and vLLM arguments are derived (GPU engines)."""

    params: float = key(Number(0, 1e13), REQUIRED, "parameter count, e.g. `8.03e9`")
    layers: int = key(Int(1, 1000), REQUIRED, "hidden layers")
    heads: int = key(Int(1, 1024), REQUIRED, "attention heads")
    kv_heads: int = key(Int(1, 1024), REQUIRED, "key/value heads (fewer than heads with GQA)")
    head_dim: int = key(Int(1, 4096), REQUIRED, "dimension of one head")
    dtype: str = key(Choice(tuple(sizing.DTYPE_BYTES)), "bf16", "weight dtype")
    max_model_len: int = key(Int(16, 10_000_000), 4096, "longest sequence served (`--max-model-len`)")
    max_num_seqs: int = key(Int(1, 100_000), 16, "sequences served at once (`--max-num-seqs`)")
    gpu_memory_utilization: float = key(
        Number(0.05, 1), 0.9, "share of GPU memory vLLM may use (`--gpu-memory-utilization`)"
    )


@dataclass(frozen=True, kw_only=True)
class LlamaCppConfig:
    """How llama-server serves the model (engine `llamacpp`): its slots, their context and the GGUF it loads."""

    type_name: ClassVar[str] = "LlamaCpp"
    ctx_size: int = key(
        Int(64, 1_048_576), 4096, "context tokens of one slot: prompt and answer (`--ctx-size` is this × parallel)"
    )
    parallel: int = key(
        Int(1, 256),
        4,
        "slots decoded at once (`--parallel`, continuous batching); more requests wait (`llamacpp:requests_deferred`)",
    )
    max_tokens: int = key(
        Int(1, 1_048_576),
        512,
        "tokens an answer generates when its request sets no `max_tokens` (`--n-predict`): a base model may not stop",
    )
    model_file: str = key(
        Text("file name", pattern=re.compile(r"^[^/\0]+$")), "model.gguf", "the GGUF in `modelDir` (`--model`)"
    )
    gguf_bytes: int | None = key(
        Int(1),
        None,
        "the GGUF's size in bytes (`python -m components.sizing --gguf FILE` prints it): with `architecture`, "
        "`resources.memory` is sized from it",
        unset="`resources.memory` as given or its default",
    )
    chat_template: str | None = key(
        Text(),
        None,
        "`--chat-template`: one of llama.cpp's built-in templates by name (e.g. `gemma`), for a GGUF that carries "
        "none (served with `--no-jinja`)",
        unset="the GGUF's own",
    )
    prompt_cache_mib: int = key(
        Int(0, 1_048_576), 256, "MiB of host memory for cached prompts (`--cache-ram`; 0: off); counted in sizing"
    )


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Per pod; requests equal limits."""

    cpu: str = key(Quantity(), "4", "CPU")
    memory: str = key(Quantity(), derive.MEMORY_DEFAULT, "memory")
    ephemeral_storage: str = key(Quantity(), "10Gi", "ephemeral storage: `/tmp`, an emptyDir model cache, logs")
    gpus: int = key(Int(0, 16), derive.GPUS, "whole GPUs per pod, in limits and requests")


@dataclass(frozen=True, kw_only=True)
class Probes:
    """How long the model may take to load, and how often the startup probe asks."""

    model_load_seconds: int = key(
        Int(10, 4 * 3600), derive.engine_default("model_load_seconds"), "startup budget for loading the model"
    )
    period_seconds: int = key(Int(1, 300), 10, "startup probe period")


@dataclass(frozen=True, kw_only=True)
class ModelCache:
    """Where the model hub cache (/cache) lives."""

    type: str = key(Choice(("emptyDir", "pvc")), "emptyDir", "an emptyDir, or a PVC that outlives the pods")
    size: str = key(Quantity(), "8Gi", f"its size; an emptyDir plus {TMP_SIZE} of `/tmp` must fit ephemeralStorage")
    storage_class: str | None = key(Text(), None, "the PVC's storage class", unset="the cluster's default")
    access_mode: str = key(
        Choice(("ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany", "ReadOnlyMany")),
        "ReadWriteOnce",
        "the PVC's; `ReadWriteMany` or `ReadOnlyMany` when several pods share it",
    )
    prestage: bool = key(
        Flag(),
        False,
        "download `modelRevision` once into the PVC with a Job before any pod starts; the pods mount it read-only "
        "and stay offline (type `pvc`, `ReadWriteMany`, engine `vllm`)",
    )
    prestage_deadline_seconds: int = key(
        Int(60, 24 * 3600), 7200, "how long the download Job may take, retries included"
    )


@dataclass(frozen=True, kw_only=True)
class Metric:
    """What the autoscaler scales on."""

    type: str = key(Choice(("cpu", "pods", "external")), "cpu", "a resource, a per-pod or an external metric")
    target_utilization: int = key(Int(1, 100), 70, "for `cpu`: target average utilization (%)")
    name: str | None = key(
        Text(pattern=re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")),
        None,
        "for `pods` / `external` (required): a metric the model's engine exports (config reference: Metrics); "
        "`pods` averages it per pod, `external` sums it over the model",
    )
    target_average_value: str | None = key(
        Quantity(), None, "for `pods` (required): target average per pod (KEDA: the trigger's threshold)"
    )
    target_value: str | None = key(
        Quantity(), None, "for `external` (required): target value (KEDA: the trigger's threshold)"
    )
    selector: Mapping[str, str] = key(
        StringMap(LABEL_KEY), {}, "for `pods` / `external`: metric label selector (KEDA: more labels in the query)"
    )


KEDA_ONLY = ("activationThreshold", "cooldownPeriod", "pollingInterval", "fallbackReplicas", "wake")


@dataclass(frozen=True, kw_only=True)
class Autoscaling:
    """An autoscaler owns the replica count: an HPA, or a KEDA ScaledObject (which may scale to zero)."""

    driver: str = key(
        Choice(("hpa", "keda")),
        "hpa",
        "`hpa`: an autoscaling/v2 HPA (pods/external metrics through an adapter); `keda`: a KEDA ScaledObject "
        "with a Prometheus trigger (needs monitoring.enabled and monitoring.prometheusUrl)",
    )
    min_replicas: int = key(Int(0, 1000), 1, "lower bound; 0 (scale to zero) only with driver keda and `wake`")
    max_replicas: int = key(Int(1, 1000), REQUIRED, "upper bound (`>= minReplicas`)")
    metric: Metric = key(Block(Metric), derive.engine_default("metric"), "what the autoscaler scales on")
    scale_up_window_seconds: int = key(Int(0, 3600), 0, "scale-up stabilization window")
    scale_down_window_seconds: int = key(Int(0, 3600), 600, "scale-down stabilization window")
    activation_threshold: str = key(
        Quantity(zero=True),
        "0",
        "keda: the metric's value above which a model at minReplicas 0 wakes (KEDA's activationThreshold)",
    )
    cooldown_period: int = key(
        Int(0, 86400), 300, "keda: seconds without activity before a model at minReplicas 0 goes back to zero"
    )
    polling_interval: int = key(Int(1, 3600), 30, "keda: seconds between queries; a model at zero wakes within it")
    fallback_replicas: int | None = key(
        Int(1, 1000),
        None,
        "keda: replicas to hold while Prometheus cannot be queried (3 failed polls)",
        unset="minReplicas, at least 1",
    )
    wake: str | None = key(
        Choice(tuple(GATEWAYS)),
        None,
        "keda: the gateway in front of the model whose request counter wakes it from zero replicas (required "
        "with minReplicas 0; docs/scaling.md)",
        unset="none: the model cannot scale to zero",
    )

    @property
    def fallback(self) -> int:
        return self.fallback_replicas if self.fallback_replicas is not None else max(1, self.min_replicas)


@dataclass(frozen=True, kw_only=True)
class Alerts:
    """Thresholds of the model's alerts (monitoring.enabled)."""

    queue_depth: int = key(Int(1, 100_000), 10, "waiting requests per pod, on average, that count as a backlog")
    queue_minutes: int = key(Int(1, 1440), 5, "minutes the backlog lasts before its alert fires")
    p95_latency_seconds: float = key(
        Number(0, 86400), derive.engine_default("p95_latency_seconds"), "p95 request latency that fires an alert"
    )


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """How a new version replaces the pods."""

    max_surge: int = key(Int(0, 100), 0, "extra pods during a rollout; 0 never asks for a GPU the pool lacks")
    max_unavailable: int = key(Int(0, 100), 1, "pods a rollout may take down; not 0 when maxSurge is 0")
    progress_deadline_seconds: int | None = key(
        Int(30),
        None,
        "a rollout making no progress this long fails (`up` reports the pods' reasons)",
        unset="`probes.modelLoadSeconds` + 900, at least 600",
    )


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


@dataclass(frozen=True, kw_only=True)
class Toleration:
    """A taint the model's pods tolerate (a Kubernetes toleration)."""

    type_name: ClassVar[str] = "ModelToleration"  # the provider's GpuScheduling output has a Toleration of its own
    key: str = _key(LabelKey("taint key"), REQUIRED, "the taint's key")
    operator: str = _key(Choice(("Equal", "Exists")), "Equal", "`Equal`: the taint's value is `value`; `Exists`: any")
    value: str | None = _key(
        Text("label value", check=check_label_value),
        None,
        "the taint's value, for `Equal` (not with `Exists`)",
        unset="empty (a taint without a value)",
    )
    effect: str = _key(Choice(TAINT_EFFECTS), REQUIRED, "the taint's effect")


ROUTING_MODES = ("service", "gateway", "inference-pool")
# The header the Inference Extension's body-based router sets from an OpenAI request's `model` field.
MODEL_HEADER = "X-Gateway-Model-Name"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def check_revision(value: str) -> str | None:
    if not COMMIT.match(value):
        return f"must be a full commit hash, 40 lower-case hex digits (got {value!r})"
    return None


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


# What the program sets on the server container: never patched, or never removed by a patch.
PATCH_FIXED = ("name", "image")
PATCH_KEPT = ("resources", "securityContext", "startupProbe", "readinessProbe", "livenessProbe")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """One entry of the stack config's models list."""

    type_name: ClassVar[str] = "ModelServiceArgs"
    name: str = key(DnsLabel(), REQUIRED, "model name; names the namespace suffix and every object", resource_name=True)
    namespace: str = key(Text("DNS label", check=_model_namespace), derive.NAMESPACE, "the model's own namespace")
    engine: Engine = key(
        Choice(tuple(ENGINES)), "server", "; ".join(f"`{name}`: {e.doc}" for name, e in ENGINES.items())
    )
    model_id: str = key(Text(), REQUIRED, "hub id of the model (`--model` for vLLM, `MODEL_ID` for the server)")
    model_revision: str | None = key(
        Text("commit", check=check_revision),
        None,
        "the hub commit the model is served at (`--revision` for vLLM, `MODEL_REVISION` for the server)",
        unset="whatever the hub serves that day",
    )
    model_dir: str | None = key(
        Text("absolute path", pattern=re.compile(r"^/[^\0]*$")),
        None,
        "where the image holds the model's files (`MODEL_DIR`); `server` images bake them in (build arg `MODEL_DIR`)",
        unset="the hub cache under `/cache`",
    )
    image: ImageConfig = key(Block(ImageConfig), REQUIRED, "the server image", override=derive.image_override)
    architecture: Architecture | None = key(
        Block(Architecture),
        None,
        "the model's shape: sizes GPU engines (README: GPU sizing) and, with `llamacpp.ggufBytes`, llama.cpp's memory",
    )
    llamacpp: LlamaCppConfig = key(Block(LlamaCppConfig), EMPTY, "llama-server's settings (engine `llamacpp`)")
    sizing: sizing.SizingResult | None = computed(derive.size)
    cpu_sizing: LlamaCppSizing | None = computed(derive.size_llamacpp)
    resources: Resources = key(Block(Resources), EMPTY, "per pod; requests equal limits")
    port: int = key(Int(1, 65535), derive.engine_default("port"), "container port (named `http`)")
    args: tuple[str, ...] = key(Strings(), (), "extra container args")
    env: Mapping[str, str] = key(StringMap(ENV_NAME), {}, "extra environment variables")
    replicas: int = key(Int(1, 1000), 1, "fixed replica count (not with `autoscaling`)")
    probes: Probes = key(Block(Probes), EMPTY, "startup probe budget")
    cache: ModelCache = key(Block(ModelCache), EMPTY, "the model hub cache", name="modelCache")
    shm_size: str = key(Quantity(), derive.SHM_DEFAULT, "`/dev/shm`: a memory-backed emptyDir")
    hub_token: bool = key(Flag(), False, "mount the `hubToken` secret as `/var/run/secrets/model-hub/token`")
    autoscaling: Autoscaling | None = key(
        Block(Autoscaling), None, "an autoscaler (HPA or KEDA) instead of a fixed replica count"
    )
    alerts: Alerts = key(Block(Alerts), EMPTY, "alert thresholds (monitoring.enabled)")
    rollout: Rollout = key(Block(Rollout), EMPTY, "rolling update bounds")
    node_selector: Mapping[str, str] = key(
        StringMap(LABEL_KEY, check=check_label_value),
        {},
        "node labels the pods must land on; a GPU model's pods also get gpuPool.nodeSelector (a key both set "
        "must have the same value)",
    )
    tolerations: tuple[Toleration, ...] = key(
        BlockList(Toleration, "tolerations", may_be_empty=True),
        (),
        "taints the pods tolerate; a GPU model's pods also tolerate gpuPool.taint, a CPU model's must not",
    )
    routing: RoutingConfig = key(Block(RoutingConfig), EMPTY, "how requests reach the pods (docs/load-balancing.md)")
    canary: CanaryConfig | None = key(
        Block(CanaryConfig),
        None,
        "a canary Deployment taking a share of requests (routing.mode gateway or inference-pool)",
    )
    service: ServiceConfig = key(Block(ServiceConfig), EMPTY, "the model's Service")
    # JSON merge patch (RFC 7386) over the server container: the escape hatch for fields the config does not
    # cover. null deletes a key; the policy pack still checks the result.
    container_patch: Mapping[str, Any] = key(
        Patch(PATCH_FIXED, PATCH_KEPT, "the container keeps its resources, probes and security context"),
        {},
        "JSON merge patch over the server container for fields the config lacks; it may not set "
        "name or image, nor remove resources, probes or the security context",
    )

    # Not a config key: which of the model's Deployments this describes (:meth:`canary_track`).
    track: str = "stable"

    @property
    def engine_spec(self) -> EngineSpec:
        return ENGINES[self.engine]

    @property
    def instance(self) -> str:
        """The name of this track's Deployment, Service and PDB: the model's name, `<name>-canary` for the canary."""
        return self.name if self.track == "stable" else f"{self.name}-{self.track}"

    def canary_track(self) -> ModelConfig:
        """The model as its canary runs it: the canary's image, args and revision, its fixed replica count, no
        autoscaler and no canary of its own. Its objects are named by :attr:`instance`."""
        canary = self.canary
        if canary is None:
            raise ValueError(f"model {self.name!r} has no canary")
        return dataclasses.replace(
            self,
            track="canary",
            image=self.image if canary.image is None else ImageConfig(ref=canary.image),
            args=self.args if canary.args is None else canary.args,
            model_revision=self.model_revision if canary.model_revision is None else canary.model_revision,
            replicas=canary.replicas,
            autoscaling=None,
            canary=None,
        )

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else self.replicas

    @property
    def peak_pods(self) -> int:
        """Pods the model may run at once: every replica the autoscaler may run and the canary's, plus the pods
        a rollout surges (each Deployment surges on its own)."""
        surge = self.rollout.max_surge
        canary = self.canary.replicas + surge if self.canary is not None else 0
        return self.max_replicas + surge + canary

    @property
    def nodes_per_replica(self) -> int:
        """Nodes (pods) one replica spans: more than one when sizing splits the model over nodes."""
        return self.sizing.nodes_per_replica if self.sizing is not None else 1

    @property
    def multi_node(self) -> bool:
        """Whether each replica is a LeaderWorkerSet group of pods on several nodes, rather than one pod."""
        return self.nodes_per_replica > 1

    @property
    def peak_gpus(self) -> int:
        """GPUs the model may hold at once: :attr:`peak_pods` replicas (groups of :attr:`nodes_per_replica` pods
        when multi-node) of its GPUs each."""
        return self.peak_pods * self.nodes_per_replica * self.resources.gpus

    @property
    def min_replicas(self) -> int:
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas

    @property
    def keda(self) -> bool:
        """Whether a KEDA ScaledObject, rather than an HPA, owns the replica count."""
        return self.autoscaling is not None and self.autoscaling.driver == "keda"

    @property
    def liveness_path(self) -> str:
        return self.engine_spec.liveness

    @property
    def readiness_path(self) -> str:
        return self.engine_spec.readiness


# ---------------------------------------------------------------------------------------------
# Top level
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    """Prometheus (prometheus-operator) monitoring of the models, and the Prometheus KEDA's triggers query."""

    type_name: ClassVar[str] = "Monitoring"
    enabled: bool = key(
        Flag(),
        False,
        "per model a ServiceMonitor, a PrometheusRule of serving alerts and a Grafana dashboard ConfigMap "
        "(needs prometheus-operator's CRDs)",
    )
    prometheus_url: str | None = key(
        Text("URL", pattern=HTTP_URL),
        None,
        "the Prometheus KEDA's triggers query, e.g. `http://prometheus-operated.monitoring:9090` (driver keda)",
    )
    namespace: str = key(
        DnsLabel(), "monitoring", "where Prometheus runs: the models' NetworkPolicies admit its scrapes from there"
    )
    labels: Mapping[str, str] = key(
        StringMap(LABEL_KEY, check=check_label_value),
        {},
        "labels of the ServiceMonitors and PrometheusRules, for Prometheus' selectors (e.g. `release: prometheus`)",
    )
    scrape_interval: str = key(Text("duration", pattern=PROM_DURATION), "30s", "how often Prometheus scrapes")


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """The Gateway (Gateway API) the models' HTTPRoutes attach to (routing.mode gateway or inference-pool)."""

    type_name: ClassVar[str] = "Gateway"
    name: str = key(DnsLabel(), "inference-gateway", "the Gateway's name")
    namespace: str = key(
        Text("DNS label", check=_stack_namespace), "gateway", "its namespace; its pods reach the models from there"
    )
    gateway_class_name: str | None = key(
        Text(),
        None,
        "set: the stack creates the Gateway (and its namespace) with this GatewayClass, one HTTP listener admitting "
        "routes from the stack's model namespaces",
        unset="the Gateway exists already",
    )
    port: int = key(Int(1, 65535), 80, "the created Gateway's HTTP listener port")
    proxy_namespace: str | None = key(
        DnsLabel(),
        None,
        "where the gateway's proxy pods run, if not in its own namespace (e.g. `envoy-gateway-system`): the models' "
        "NetworkPolicies admit requests from there",
        unset="`namespace`",
    )


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything under the ``model-serving:`` config namespace but the secrets."""

    namespace: str = key(
        Text("DNS label", check=_stack_namespace),
        "models",
        "prefix of the model namespaces: model `m` lives in `<namespace>-m`; never `default` or `kube-*`",
    )
    render_directory: str | None = key(
        Text("path"), None, "render manifests there instead of applying (`render`: `rendered/render`)"
    )
    kubeconfig: str | None = key(
        Text("path"),
        None,
        "kubeconfig file to deploy with, relative to the project (`local`, `e2e`: `.cluster/kubeconfig`)",
        unset="`KUBECONFIG`, else ~/.kube/config",
    )
    kube_context: str | None = key(Text(), None, "the kubeconfig context to deploy to", unset="kubeconfig's current")
    image_lock: str | None = key(
        Text("path"),
        None,
        "JSON file, relative to the project, mapping `image.ref` values to digest-pinned references "
        "(`repo@sha256:…`) the models deploy instead; refs it lacks stay as written "
        "(`local`: `.cluster/images.json`, which `make cluster-up` writes)",
        unset="none: every ref as written",
    )
    gpu_pool: GpuPoolConfig = key(
        Block(GpuPoolConfig),
        EMPTY,
        "the shared GPU node pool; its objects (RuntimeClass, device plugin, DCGM exporter, Karpenter NodePool) are "
        "deployed only when a model uses GPUs (`resources.gpus` > 0, given or derived) or `karpenter` is set: a "
        "CPU-only stack leaves them to the stacks that need them",
        name="gpuPool",
    )
    monitoring: MonitoringConfig = key(Block(MonitoringConfig), EMPTY, "Prometheus monitoring and KEDA's Prometheus")
    gateway: GatewayConfig = key(
        Block(GatewayConfig), EMPTY, "the Gateway of models routed through one (docs/load-balancing.md)"
    )
    image_ref_override: str | None = key(
        ImageRef(),
        None,
        "test/CI only: every model's image becomes this prebuilt reference (previews without a Docker engine)",
    )
    models: tuple[ModelConfig, ...] = key(BlockList(ModelConfig, "models"), REQUIRED, "the models to serve")

    @property
    def needs_gpu_pool(self) -> bool:
        """Whether the program registers the GpuNodePool (the rule the ``gpuPool`` key's doc states): some model
        uses GPUs, or the config asks for a Karpenter NodePool. Models get their scheduling from ``gpu_pool``
        either way."""
        return self.gpu_pool.karpenter is not None or any(m.resources.gpus > 0 for m in self.models)

    @property
    def routed_models(self) -> tuple[ModelConfig, ...]:
        """The models whose HTTPRoutes attach to ``gateway``."""
        return tuple(m for m in self.models if m.routing.mode != "service")


@dataclass(frozen=True, kw_only=True)
class StackSecrets:
    """Secrets: set with ``pulumi config set --secret``, never written in clear; the program reads them."""

    hub_token: str | None = key(
        Secret(),
        None,
        "model-hub token, mounted as a file into models that set `hubToken: true` (ModelService: when given)",
    )
    registry_password: str | None = key(Secret(), None, "password of `image.build.registry`, for pushes")
