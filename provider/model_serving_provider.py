"""The components as seen from other languages: ``GpuNodePool`` and ``ModelService`` served by Pulumi's
component provider host (``__main__.py``), so a YAML or TypeScript stack can ``pulumi package add`` them.

The host infers the package schema from type annotations. The library's own args are dataclasses of
validated config (``ModelConfig``, ``GpuPoolConfig``), which it cannot describe, so this module gives
each component a TypedDict of its inputs whose keys are exactly the stack-config keys (``models[i]``,
``gpuPool``). The subclasses turn those raw inputs into typed config with ``parse_stack_config`` (the
same validation and error messages as ``stacks/*.yaml``) and then run the library component's own
``__init__``: the same type token, the same children, the same outputs. There is no other logic here.

No ``from __future__ import annotations``: the host reads the annotations at run time, so they must be
real types, not strings. The output annotations are repeated from the library classes for that reason.
"""

from typing import Any, Required, TypedDict

import pulumi

import components
from components import specs
from components.config import ConfigError, GpuPoolConfig, ModelConfig, parse_stack_config

PACKAGE = "model-serving"  # type tokens model-serving:index:<Name>, as in the library
VERSION = "0.1.0"  # pyproject.toml's version

# ---------------------------------------------------------------------------------------------------
# gpuPool


class Taint(TypedDict, total=False):
    """The taint that keeps other pods off GPU nodes; GPU pods tolerate it."""

    key: str
    """Default nvidia.com/gpu."""
    value: str
    """Default present."""
    effect: str
    """NoSchedule (default), PreferNoSchedule or NoExecute."""


class DevicePlugin(TypedDict, total=False):
    """The NVIDIA device plugin DaemonSet that advertises the GPUs."""

    enabled: bool
    """Deploy it (default true); false where the cluster already runs one."""
    image: str
    """Pinned plugin image (default: a digest-pinned k8s-device-plugin release)."""
    namespace: str
    """Its namespace (default nvidia-device-plugin; pod security privileged)."""
    timeSlicingReplicas: int
    """Time-slicing: pods per physical GPU (1 = off)."""
    migStrategy: str
    """none (default), single or mixed."""


class NodeClassRef(TypedDict, total=False):
    """The Karpenter node class the NodePool launches from."""

    group: str
    kind: str
    name: str


class Karpenter(TypedDict, total=False):
    """A Karpenter NodePool for GPU nodes (needs gpuBudget)."""

    nodeClassRef: NodeClassRef
    instanceTypes: list[str]
    """Allowed instance types (this or gpuProducts is required)."""
    gpuProducts: list[str]
    """Allowed GPU names, e.g. h100."""
    capacityTypes: list[str]
    """on-demand (default), spot, reserved."""
    consolidationPolicy: str
    """WhenEmpty (default) or WhenEmptyOrUnderutilized."""
    consolidateAfter: str
    expireAfter: str
    disruptionBudgetNodes: str
    """Nodes Karpenter may disrupt at once: a count or a percentage (default 10%)."""


class GpuPool(TypedDict, total=False):
    """The stack config's gpuPool block: how GPU nodes are provided and how workloads land on them."""

    name: str
    """Name of the Karpenter NodePool (default gpu)."""
    gpuResourceName: str
    """Extended resource the device plugin advertises (default nvidia.com/gpu)."""
    nodeSelector: dict[str, str]
    """Labels of GPU nodes (default nvidia.com/gpu.present: "true")."""
    taint: Taint
    runtimeClass: str
    """RuntimeClass GPU pods use (default nvidia)."""
    gpuBudget: int
    """GPUs the pool may hold; the models' peak demand must fit."""
    gpuMemory: str
    """Memory of one GPU, for sizing models from their architecture (default 80Gi)."""
    devicePlugin: DevicePlugin
    karpenter: Karpenter


# ---------------------------------------------------------------------------------------------------
# models[i]


class Registry(TypedDict, total=False):
    """Registry login for pushes (the password is the registryPassword input)."""

    server: str
    username: str


class ImageBuild(TypedDict, total=False):
    """Build the model server image with Docker (needs the docker provider plugin)."""

    imageName: Required[str]
    context: str
    dockerfile: str
    args: dict[str, str]
    platform: str
    cacheFrom: list[str]
    push: bool
    registry: Registry


class Image(TypedDict, total=False):
    """Exactly one of ref (a prebuilt image: a tag other than latest, or a digest) or build."""

    ref: str
    build: ImageBuild


class Resources(TypedDict, total=False):
    """Per pod; requests equal limits. Defaults come from the architecture's sizing when given."""

    cpu: str
    memory: str
    ephemeralStorage: str
    gpus: int
    """Whole GPUs per pod (0-16)."""


class Architecture(TypedDict, total=False):
    """The model's shape: sizes GPUs, memory, /dev/shm and vLLM's arguments against gpuPool.gpuMemory."""

    params: Required[float]
    layers: Required[int]
    heads: Required[int]
    kvHeads: Required[int]
    headDim: Required[int]
    dtype: str
    """fp32, bf16 (default), fp16, fp8, int8 or int4."""
    maxModelLen: int
    maxNumSeqs: int
    gpuMemoryUtilization: float


class Probes(TypedDict, total=False):
    modelLoadSeconds: int
    """Startup budget for loading the model (default 600 server, 1800 vLLM)."""
    periodSeconds: int


class ModelCache(TypedDict, total=False):
    """Where the model hub cache (/cache) lives."""

    type: str
    """emptyDir (default) or pvc."""
    size: str
    storageClass: str
    accessMode: str


class Metric(TypedDict, total=False):
    """What the HPA scales on."""

    type: str
    """cpu (default), pods or external."""
    targetUtilization: int
    name: str
    targetAverageValue: str
    targetValue: str
    selector: dict[str, str]


class Autoscaling(TypedDict, total=False):
    minReplicas: int
    maxReplicas: Required[int]
    metric: Metric
    scaleUpWindowSeconds: int
    scaleDownWindowSeconds: int


class Rollout(TypedDict, total=False):
    maxSurge: int
    maxUnavailable: int


class Service(TypedDict, total=False):
    """The model's Service (and its NetworkPolicy)."""

    type: str
    """LoadBalancer (default), ClusterIP or NodePort."""
    port: int
    annotations: dict[str, str]
    sourceRanges: list[str]
    externalTrafficPolicy: str
    sessionAffinity: str
    allowFrom: list[str]


class ModelServiceArgs(TypedDict, total=False):
    """One entry of the stack config's models list, plus the pool it runs on and its secrets."""

    name: str
    """Model name (a DNS label); defaults to the resource name."""
    namespace: str
    """The model's own namespace (default models-<name>)."""
    engine: str
    """server (the project's image, default) or vllm."""
    modelId: Required[str]
    """Hub id of the model."""
    image: Required[Image]
    resources: Resources
    architecture: Architecture
    port: int
    args: list[str]
    env: dict[str, str]
    replicas: int
    probes: Probes
    modelCache: ModelCache
    shmSize: str
    autoscaling: Autoscaling
    rollout: Rollout
    service: Service
    containerPatch: Any
    """A JSON merge patch applied to the container (escape hatch)."""
    modelDir: str
    """Absolute path where the image holds the model's files (MODEL_DIR); default: the hub cache under /cache."""
    gpuPool: GpuPool
    """The pool the model is scheduled on: pass the same block as to GpuNodePool (default: the defaults)."""
    hubToken: pulumi.Input[str]
    """Secret model hub token; when set it is mounted as /var/run/secrets/model-hub/token."""
    registryPassword: pulumi.Input[str]
    """Secret password of image.build.registry, for pushes."""


_NOT_CONFIG = ("gpuPool", "hubToken", "registryPassword")


def _plain(value: Any) -> Any:
    """Config as the stack file would give it: no unset keys, and whole numbers as int.

    The engine sends every number as a float (8000.0); the config's integer keys rightly reject floats,
    and its number keys (params, gpuMemoryUtilization) take ints as well.
    """
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def model_config(name: str, args: ModelServiceArgs) -> tuple[ModelConfig, GpuPoolConfig]:
    """Validate ``args`` as a one-model stack config; errors name the input (``model.resources.gpus``)."""
    raw: dict[str, Any] = _plain({k: v for k, v in args.items() if k not in _NOT_CONFIG})
    raw.setdefault("name", name)
    if args.get("hubToken") is not None:
        raw["hubToken"] = True  # the stack config's flag; here the token itself says "mount it"
    config: dict[str, object] = {"models": [raw]}
    if args.get("gpuPool") is not None:
        config["gpuPool"] = _plain(args["gpuPool"])
    try:
        stack = parse_stack_config(
            config,
            has_hub_token=args.get("hubToken") is not None,
            has_registry_password=args.get("registryPassword") is not None,
        )
    except ConfigError as error:
        message = str(error)
        if message.startswith("models[0]"):
            message = "model" + message[len("models[0]") :]
        raise ValueError(f"invalid ModelService {name!r}: {message}") from None
    return stack.models[0], stack.gpu_pool


def gpu_pool_config(name: str, args: GpuPool) -> GpuPoolConfig:
    """Validate ``args`` as the stack config's gpuPool block; errors name the key (``gpuPool.gpuBudget``)."""
    raw: dict[str, Any] = _plain(dict(args))
    raw.setdefault("name", name)
    # parse_stack_config validates a whole stack: a placeholder model (no GPU, so no budget use) completes it.
    placeholder = {"name": "placeholder", "modelId": "-", "image": {"ref": "placeholder:v0"}, "resources": {"gpus": 0}}
    try:
        return parse_stack_config({"gpuPool": raw, "models": [placeholder]}).gpu_pool
    except ConfigError as error:
        raise ValueError(f"invalid GpuNodePool {name!r}: {error}") from None


# ---------------------------------------------------------------------------------------------------
# Components


class Toleration(TypedDict):
    key: str
    operator: str
    effect: str


class GpuScheduling(TypedDict):
    """How a workload lands on the pool: what ModelService sets on its pods."""

    nodeSelector: dict[str, str]
    tolerations: list[Toleration]
    runtimeClassName: str
    gpuResourceName: str


class GpuNodePool(components.GpuNodePool):
    """GPU nodes of a stack: device plugin, RuntimeClass, optional Karpenter NodePool. Inputs: the gpuPool keys."""

    scheduling: pulumi.Output[GpuScheduling]  # type: ignore[assignment]  # the wire form, see below
    """Node selector, tolerations, runtime class and GPU resource name of the pool."""
    gpu_budget: pulumi.Output[int] | None  # type: ignore[assignment]
    """GPUs the pool may hold, when a budget is set."""

    def __init__(self, name: str, args: GpuPool, opts: pulumi.ResourceOptions | None = None) -> None:
        pool = gpu_pool_config(name, args)
        super().__init__(name, components.GpuNodePoolArgs(pool=pool), opts)
        # The library keeps scheduling as a dataclass for Python callers (ModelServiceArgs.scheduling);
        # other languages get it as an output object of the same fields.
        wire = specs.gpu_scheduling(pool)
        self.scheduling = pulumi.Output.from_input(
            GpuScheduling(
                nodeSelector=dict(wire.node_selector),
                tolerations=[
                    Toleration(key=t["key"], operator=t["operator"], effect=t["effect"]) for t in wire.tolerations
                ],
                runtimeClassName=wire.runtime_class_name,
                gpuResourceName=wire.gpu_resource_name,
            )
        )


class ModelService(components.ModelService):
    """One model served in its own namespace. Inputs: one entry of models, the gpuPool it runs on, its secrets."""

    endpoint: pulumi.Output[str]
    """In-cluster URL of the model's Service."""
    image_ref: pulumi.Output[str]
    """The image the pods run (the pushed digest when built and pushed)."""
    namespace: pulumi.Output[str]
    """The model's namespace."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        model, pool = model_config(name, args)
        super().__init__(
            name,
            components.ModelServiceArgs(
                model=model,
                scheduling=specs.gpu_scheduling(pool),
                hub_token=args.get("hubToken"),
                registry_password=args.get("registryPassword"),
            ),
            opts,
        )


COMPONENTS: list[type[pulumi.ComponentResource]] = [GpuNodePool, ModelService]
