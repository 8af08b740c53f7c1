"""Input types of the model-serving components, generated from the schema in components/config/ by
``python -m components.config.docs --write`` (do not edit). The component provider host reads these annotations and
docstrings to infer the package schema.

No ``from __future__ import annotations``: the host needs the annotations as real types.
"""

from typing import Any, Required, TypedDict

import pulumi


class Taint(TypedDict, total=False):
    """The taint that keeps other pods off GPU nodes; GPU pods tolerate it."""

    key: str
    """Taint key. Default: nvidia.com/gpu."""
    value: str
    """Taint value. Default: present."""
    effect: str
    """Taint effect. Default: NoSchedule."""


class DevicePlugin(TypedDict, total=False):
    """The NVIDIA device plugin DaemonSet that advertises the GPUs."""

    enabled: bool
    """Deploy it; false where the cluster already runs one. Default: true."""
    image: str
    (
        "The plugin image, pinned: it runs as root on every GPU node. Default: "
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.1@sha256:af31e2b7c7f89834c4e5219860def7ac2e49a207b3d4e8610d5a26772b7738e5."
    )
    namespace: str
    """Its namespace (pod security `privileged`: it needs a hostPath). Default: nvidia-device-plugin."""
    timeSlicingReplicas: int
    """Time-slicing: pods per physical GPU (1 = off). Default: 1."""
    migStrategy: str
    """MIG strategy. Default: none."""


class DcgmExporter(TypedDict, total=False):
    """NVIDIA's DCGM exporter on the GPU nodes, and its ServiceMonitor (prometheus-operator)."""

    enabled: bool
    """Deploy it (and its ServiceMonitor). Default: false."""
    image: str
    (
        "The exporter image, pinned: it runs as root on every GPU node. Default: "
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless@sha256:60d3b00ac80b4ae77f94dae2f943685605585ad9e92fdccda3154d009ae317cc."
    )
    namespace: str
    (
        "Its namespace (pod security `privileged`: it reads the kubelet's pod resources socket through a hostPath). "
        "Default: nvidia-dcgm-exporter."
    )


class NodeClassRef(TypedDict, total=False):
    """The nodeClassRef keys of Karpenter."""

    group: str
    """API group of the node class. Default: karpenter.k8s.aws."""
    kind: str
    """Kind of the node class. Default: EC2NodeClass."""
    name: str
    """The node class the NodePool launches from. Default: gpu."""


class Karpenter(TypedDict, total=False):
    """A Karpenter NodePool for GPU nodes (needs gpuBudget, its limit)."""

    nodeClassRef: NodeClassRef
    """NodeClassRef of this object."""
    instanceTypes: list[str]
    """Allowed instance types (this or `gpuProducts` is required). Default: []."""
    gpuProducts: list[str]
    """Allowed GPU names (`karpenter.k8s.aws/instance-gpu-name`, e.g. `h100`). Default: []."""
    capacityTypes: list[str]
    """`on-demand`, `spot` or `reserved` (an empty list: the default). Default: [on-demand]."""
    consolidationPolicy: str
    """Which nodes Karpenter may consolidate. Default: WhenEmpty."""
    consolidateAfter: str
    """How long a node idles before that. Default: 30m."""
    disruptionBudgetNodes: str
    """Nodes Karpenter may disrupt at once. Default: 10%."""
    expireAfter: str
    """Node lifetime before replacement. Default: 720h."""


class GpuPool(TypedDict, total=False):
    """The stack's GPU node pool: how GPU nodes are provided and how workloads land on them."""

    name: str
    """Name of the Karpenter NodePool. Default: the resource name."""
    gpuResourceName: str
    """Extended resource the device plugin advertises. Default: nvidia.com/gpu."""
    nodeSelector: dict[str, str]
    (
        "Labels of GPU nodes (Karpenter nodes get them from the NodePool template). Default: {nvidia.com/gpu.present: "
        "'true'}."
    )
    taint: Taint
    """The taint keeping other pods off GPU nodes. Default: each key's default."""
    runtimeClass: str
    """RuntimeClass (handler `nvidia`) GPU pods use. Default: nvidia."""
    gpuBudget: int
    (
        "GPUs the pool may hold; the models' peak `(maxReplicas + maxSurge) × gpus` must fit. Default: none (required "
        "with karpenter)."
    )
    gpuMemory: str
    """Memory of one GPU, for sizing models from their architecture. Default: 80Gi."""
    gpusPerNode: int
    (
        "GPUs on one node: a model that needs more runs each replica over several nodes (a LeaderWorkerSet, tensor "
        "parallel within a node, pipeline parallel across). Default: one node holds any model (up to 8 GPUs)."
    )
    devicePlugin: DevicePlugin
    """The NVIDIA device plugin. Default: each key's default."""
    dcgmExporter: DcgmExporter
    """The NVIDIA DCGM exporter. Default: each key's default."""
    karpenter: Karpenter
    """A Karpenter NodePool for the GPU nodes. Default: none."""


class Monitoring(TypedDict, total=False):
    """Prometheus (prometheus-operator) monitoring of the models, and the Prometheus KEDA's triggers query."""

    enabled: bool
    (
        "Per model a ServiceMonitor, a PrometheusRule of serving alerts and a Grafana dashboard ConfigMap (needs "
        "prometheus-operator's CRDs). Default: false."
    )
    prometheusUrl: str
    (
        "The Prometheus KEDA's triggers query, e.g. `http://prometheus-operated.monitoring:9090` (driver keda). "
        "Default: none."
    )
    namespace: str
    """Where Prometheus runs: the models' NetworkPolicies admit its scrapes from there. Default: monitoring."""
    labels: dict[str, str]
    (
        "Labels of the ServiceMonitors and PrometheusRules, for Prometheus' selectors (e.g. `release: prometheus`). "
        "Default: {}."
    )
    scrapeInterval: str
    """How often Prometheus scrapes. Default: 30s."""


class Gateway(TypedDict, total=False):
    """The Gateway (Gateway API) the models' HTTPRoutes attach to (routing.mode gateway or inference-pool)."""

    name: str
    """The Gateway's name. Default: inference-gateway."""
    namespace: str
    """Its namespace; its pods reach the models from there. Default: gateway."""
    gatewayClassName: str
    (
        "Set: the stack creates the Gateway (and its namespace) with this GatewayClass, one HTTP listener admitting "
        "routes from the stack's model namespaces. Default: the Gateway exists already."
    )
    port: int
    """The created Gateway's HTTP listener port. Default: 80."""
    proxyNamespace: str
    (
        "Where the gateway's proxy pods run, if not in its own namespace (e.g. `envoy-gateway-system`): the models' "
        "NetworkPolicies admit requests from there. Default: namespace."
    )


class Registry(TypedDict, total=False):
    """The registry keys of ImageBuild."""

    server: str
    """Registry to log in to for pushes (password: secret `registryPassword`). Default: none."""
    username: str
    """User of that registry. Default: none."""


class ImageBuild(TypedDict, total=False):
    """Build the model server image with Docker (needs the docker provider plugin)."""

    imageName: Required[str]
    """Name (and tag) to build."""
    context: str
    """Build context. Default: app."""
    dockerfile: str
    """Dockerfile. Default: app/Dockerfile."""
    args: dict[str, str]
    """Build arguments (e.g. `MODEL_DIR`). Default: {}."""
    platform: str
    """Target platform. Default: linux/amd64."""
    cacheFrom: list[str]
    """Cache sources. Default: []."""
    push: bool
    """Push; the image reference becomes the pushed digest. Default: false."""
    registry: Registry
    """Registry of this object."""


class Image(TypedDict, total=False):
    """Exactly one of ref (a prebuilt image: a tag other than latest, or a digest) or build."""

    ref: str
    """Prebuilt image; a tag other than `latest` or a digest is required (`imageLock` may pin it). Default: none."""
    build: ImageBuild
    """Build the image from a Docker context. Default: none."""


class Architecture(TypedDict, total=False):
    """A model's shape, from which GPUs, memory, /dev/shm and vLLM arguments are derived (GPU engines)."""

    params: Required[float]
    """Parameter count, e.g. `8.03e9`."""
    layers: Required[int]
    """Hidden layers."""
    heads: Required[int]
    """Attention heads."""
    kvHeads: Required[int]
    """Key/value heads (fewer than heads with GQA)."""
    headDim: Required[int]
    """Dimension of one head."""
    dtype: str
    """Weight dtype. Default: bf16."""
    maxModelLen: int
    """Longest sequence served (`--max-model-len`). Default: 4096."""
    maxNumSeqs: int
    """Sequences served at once (`--max-num-seqs`). Default: 16."""
    gpuMemoryUtilization: float
    """Share of GPU memory vLLM may use (`--gpu-memory-utilization`). Default: 0.9."""


class LlamaCpp(TypedDict, total=False):
    """How llama-server serves the model (engine `llamacpp`): its slots, their context and the GGUF it loads."""

    ctxSize: int
    """Context tokens of one slot: prompt and answer (`--ctx-size` is this × parallel). Default: 4096."""
    parallel: int
    (
        "Slots decoded at once (`--parallel`, continuous batching); more requests wait (`llamacpp:requests_deferred`). "
        "Default: 4."
    )
    maxTokens: int
    (
        "Tokens an answer generates when its request sets no `max_tokens` (`--n-predict`): a base model may not stop. "
        "Default: 512."
    )
    modelFile: str
    """The GGUF in `modelDir` (`--model`). Default: model.gguf."""
    ggufBytes: int
    (
        "The GGUF's size in bytes (`python -m components.sizing --gguf FILE` prints it): with `architecture`, "
        "`resources.memory` is sized from it. Default: resources.memory as given or its default."
    )
    chatTemplate: str
    (
        "`--chat-template`: one of llama.cpp's built-in templates by name (e.g. `gemma`), for a GGUF that carries none "
        "(served with `--no-jinja`). Default: the GGUF's own."
    )
    promptCacheMib: int
    """MiB of host memory for cached prompts (`--cache-ram`; 0: off); counted in sizing. Default: 256."""


class Resources(TypedDict, total=False):
    """Per pod; requests equal limits."""

    cpu: str
    """CPU. Default: 4."""
    memory: str
    """Memory. Default: 16Gi; with an architecture, from sizing (llamacpp: also needs llamacpp.ggufBytes)."""
    ephemeralStorage: str
    """Ephemeral storage: `/tmp`, an emptyDir model cache, logs. Default: 10Gi."""
    gpus: int
    (
        "Whole GPUs per pod, in limits and requests. Default: 0 for server, 1 for vllm, 0 for llamacpp; with an "
        "architecture, from sizing (per pod: a replica over several nodes has one pod per node)."
    )


class Probes(TypedDict, total=False):
    """How long the model may take to load, and how often the startup probe asks."""

    modelLoadSeconds: int
    """Startup budget for loading the model. Default: server: 600; vllm: 1800; llamacpp: 300."""
    periodSeconds: int
    """Startup probe period. Default: 10."""


class ModelCache(TypedDict, total=False):
    """Where the model hub cache (/cache) lives."""

    type: str
    """An emptyDir, or a PVC that outlives the pods. Default: emptyDir."""
    size: str
    """Its size; an emptyDir plus 2Gi of `/tmp` must fit ephemeralStorage. Default: 8Gi."""
    storageClass: str
    """The PVC's storage class. Default: the cluster's default."""
    accessMode: str
    """The PVC's; `ReadWriteMany` or `ReadOnlyMany` when several pods share it. Default: ReadWriteOnce."""
    prestage: bool
    (
        "Download `modelRevision` once into the PVC with a Job before any pod starts; the pods mount it read-only and "
        "stay offline (type `pvc`, `ReadWriteMany`, engine `vllm`). Default: false."
    )
    prestageDeadlineSeconds: int
    """How long the download Job may take, retries included. Default: 7200."""
    prestageImage: str
    (
        "The image the pre-stage Job runs: Python 3 with huggingface_hub (`imageLock` may pin it). Default: the "
        "model's image (vLLM's has both)."
    )


class Metric(TypedDict, total=False):
    """What the autoscaler scales on."""

    type: str
    """A resource, a per-pod or an external metric. Default: cpu."""
    targetUtilization: int
    """For `cpu`: target average utilization (%). Default: 70."""
    name: str
    (
        "For `pods` / `external` (required): a metric the model's engine exports (config reference: Metrics); `pods` "
        "averages it per pod, `external` sums it over the model. Default: none."
    )
    targetAverageValue: str
    """For `pods` (required): target average per pod (KEDA: the trigger's threshold). Default: none."""
    targetValue: str
    """For `external` (required): target value (KEDA: the trigger's threshold). Default: none."""
    selector: dict[str, str]
    """For `pods` / `external`: metric label selector (KEDA: more labels in the query). Default: {}."""


class Autoscaling(TypedDict, total=False):
    """An autoscaler owns the replica count: an HPA, or a KEDA ScaledObject (which may scale to zero)."""

    driver: str
    (
        "`hpa`: an autoscaling/v2 HPA (pods/external metrics through an adapter); `keda`: a KEDA ScaledObject with a "
        "Prometheus trigger (needs monitoring.enabled and monitoring.prometheusUrl). Default: hpa."
    )
    minReplicas: int
    """Lower bound; 0 (scale to zero) only with driver keda and `wake`. Default: 1."""
    maxReplicas: Required[int]
    """Upper bound (`>= minReplicas`)."""
    metric: Metric
    (
        "What the autoscaler scales on. Default: server: {type: cpu}; vllm: {type: pods, name: "
        "vllm:num_requests_waiting, targetAverageValue: '5'}; llamacpp: {type: pods, name: llamacpp:requests_deferred, "
        "targetAverageValue: '2'}."
    )
    scaleUpWindowSeconds: int
    """Scale-up stabilization window. Default: 0."""
    scaleDownWindowSeconds: int
    """Scale-down stabilization window. Default: 600."""
    activationThreshold: str
    """Keda: the metric's value above which a model at minReplicas 0 wakes (KEDA's activationThreshold). Default: 0."""
    cooldownPeriod: int
    """Keda: seconds without activity before a model at minReplicas 0 goes back to zero. Default: 300."""
    pollingInterval: int
    """Keda: seconds between queries; a model at zero wakes within it. Default: 30."""
    fallbackReplicas: int
    """Keda: replicas to hold while Prometheus cannot be queried (3 failed polls). Default: minReplicas, at least 1."""
    wake: str
    (
        "Keda: the gateway in front of the model whose request counter wakes it from zero replicas (required with "
        "minReplicas 0; docs/scaling.md). Default: none: the model cannot scale to zero."
    )


class Alerts(TypedDict, total=False):
    """Thresholds of the model's alerts (monitoring.enabled)."""

    queueDepth: int
    """Waiting requests per pod, on average, that count as a backlog. Default: 10."""
    queueMinutes: int
    """Minutes the backlog lasts before its alert fires. Default: 5."""
    p95LatencySeconds: float
    """P95 request latency that fires an alert. Default: server: 2; vllm: 60; llamacpp: 60."""


class Rollout(TypedDict, total=False):
    """How a new version replaces the pods."""

    maxSurge: int
    """Extra pods during a rollout; 0 never asks for a GPU the pool lacks. Default: 0."""
    maxUnavailable: int
    """Pods a rollout may take down; not 0 when maxSurge is 0. Default: 1."""
    progressDeadlineSeconds: int
    (
        "A rollout making no progress this long fails (`up` reports the pods' reasons). Default: "
        "probes.modelLoadSeconds + 900, at least 600."
    )


class ModelToleration(TypedDict, total=False):
    """A taint the model's pods tolerate (a Kubernetes toleration)."""

    key: Required[str]
    """The taint's key."""
    operator: str
    """`Equal`: the taint's value is `value`; `Exists`: any. Default: Equal."""
    value: str
    """The taint's value, for `Equal` (not with `Exists`). Default: empty (a taint without a value)."""
    effect: Required[str]
    """The taint's effect."""


class PickerScorers(TypedDict, total=False):
    """Weights of the endpoint picker's scorers: each scores every pod, the weighted sum picks one (0: off)."""

    queue: int
    """Requests waiting on the pod (the engine's queue metric). Default: 2."""
    kvCache: int
    """The pod's KV-cache utilization (vLLM's `vllm:kv_cache_usage_perc`). Default: 2."""
    prefixCache: int
    """How much of the prompt's prefix the pod likely holds in its cache. Default: 3."""


class EndpointPicker(TypedDict, total=False):
    """The Inference Extension's endpoint picker (EPP) of an InferencePool: it chooses the pod for each request."""

    image: str
    (
        "The picker image (`registry.k8s.io/gateway-api-inference-extension/epp`), pinned by digest; required in mode "
        "`inference-pool`. Default: none."
    )
    replicas: int
    """Picker pods (more than one elect a leader). Default: 1."""
    cpu: str
    """CPU per picker pod (requests equal limits). Default: 1."""
    memory: str
    """Memory per picker pod. Default: 1Gi."""
    failureMode: str
    (
        "What the gateway does when the picker does not answer: refuse the request, or send it to any pod. Default: "
        "FailClose."
    )
    scorers: PickerScorers
    """Scorer weights. Default: each key's default."""


class Routing(TypedDict, total=False):
    """How requests reach the model's pods (docs/load-balancing.md)."""

    mode: str
    (
        "`service`: the model's Service balances connections; `gateway`: an HTTPRoute on the stack's `gateway` to the "
        "Service; `inference-pool`: an HTTPRoute to an InferencePool whose endpoint picker chooses a pod per request "
        "from its queue and caches. Default: service."
    )
    match: str
    (
        "`path`: requests under `path` (the prefix is stripped); `header`: requests whose `X-Gateway-Model-Name` "
        "header is the modelId (set from the body's `model` by the Inference Extension's body-based router). Default: "
        "path."
    )
    path: str
    """The path prefix routed to the model (match `path`); it ends in `/`. Default: /<name>/."""
    picker: EndpointPicker
    """The endpoint picker (mode `inference-pool`). Default: each key's default."""


class Canary(TypedDict, total=False):
    """A second Deployment of the model running a new image, args or revision, taking ``weight`` % of requests."""

    weight: Required[int]
    """The canary's share of requests in %; the stable pods take the rest (100: promoted)."""
    image: str
    """Prebuilt image the canary runs. Default: the model's."""
    args: list[str]
    """Container args the canary runs. Default: the model's."""
    modelRevision: str
    """Hub revision the canary serves. Default: the model's."""
    replicas: int
    """Canary pods (its GPUs count against gpuPool.gpuBudget). Default: 1."""


class Service(TypedDict, total=False):
    """The model's Service and the NetworkPolicy admitting its port."""

    type: str
    """Service type. Default: LoadBalancer; ClusterIP when routing.mode is not service."""
    port: int
    """Service port. Default: 80."""
    annotations: dict[str, str]
    """E.g. an internal-load-balancer annotation. Default: {}."""
    sourceRanges: list[str]
    """`loadBalancerSourceRanges` (type LoadBalancer only). Default: []."""
    externalTrafficPolicy: str
    """`Local` keeps client IPs. Default: Local."""
    sessionAffinity: str
    """Sticky clients. Default: None."""
    allowFrom: list[str]
    (
        "NetworkPolicy sources admitted to the serving port (`[]`: anywhere; behind a gateway, only the gateway's and "
        "the endpoint picker's pods). Default: []."
    )
    egressTo: list[str]
    (
        "Where the pods may open HTTPS connections (the model hub); DNS is always allowed, nothing else is. Default: "
        "[0.0.0.0/0] when the model downloads from the hub (no modelDir), else []."
    )


class PriorityClass(TypedDict, total=False):
    """The PriorityClass of the model's pods: serving outranks (and preempts) batch work on shared nodes."""

    name: str
    """The class's name. Default: the model's namespace."""
    value: int
    (
        "Its priority when the model creates it; pods without a class have 0 (or the cluster's default class). "
        "Default: 1000000."
    )
    create: bool
    (
        "The model creates the class (cluster-scoped, removed with the model); false: the cluster has it already (then "
        "`name` is required). Default: true."
    )


class ModelServiceArgs(TypedDict, total=False):
    """One entry of the stack config's models list."""

    name: str
    """Model name; names the namespace suffix and every object. Default: the resource name."""
    namespace: str
    """The model's own namespace. Default: <namespace>-<name>."""
    engine: str
    (
        "`server`: the project's image (`app/`): a CPU-bound encoder; `vllm`: vLLM's OpenAI server on GPUs (args from "
        "sizing, probes on `/health`); `llamacpp`: llama.cpp's `llama-server` on CPU: a GGUF baked into the image "
        "under `modelDir` (`llamacpp` block: context, slots, chat template). Default: server."
    )
    modelId: Required[str]
    """Hub id of the model (`--model` for vLLM, `MODEL_ID` for the server)."""
    modelRevision: str
    (
        "The hub commit the model is served at (`--revision` for vLLM, `MODEL_REVISION` for the server). Default: "
        "whatever the hub serves that day."
    )
    modelDir: str
    (
        "Where the image holds the model's files (`MODEL_DIR`); `server` images bake them in (build arg `MODEL_DIR`). "
        "Default: the hub cache under /cache."
    )
    image: Required[Image]
    """The server image."""
    architecture: Architecture
    (
        "The model's shape: sizes GPU engines (README: GPU sizing) and, with `llamacpp.ggufBytes`, llama.cpp's memory. "
        "Default: none."
    )
    llamacpp: LlamaCpp
    """Llama-server's settings (engine `llamacpp`). Default: each key's default."""
    resources: Resources
    """Per pod; requests equal limits. Default: each key's default."""
    port: int
    """Container port (named `http`). Default: 8000 (every engine)."""
    args: list[str]
    """Extra container args. Default: []."""
    env: dict[str, str]
    """Extra environment variables. Default: {}."""
    replicas: int
    """Fixed replica count (not with `autoscaling`). Default: 1."""
    probes: Probes
    """Startup probe budget. Default: each key's default."""
    modelCache: ModelCache
    """The model hub cache. Default: each key's default."""
    shmSize: str
    (
        "`/dev/shm`: a memory-backed emptyDir. Default: 1Gi (8Gi for more than one GPU); with an architecture, from "
        "sizing."
    )
    hubToken: pulumi.Input[str]
    (
        "Model-hub token, mounted as a file into models that set `hubToken: true` (ModelService: when given). Default: "
        "none."
    )
    hubEndpoint: str
    (
        "The model hub to download from, e.g. a mirror inside the network (`HF_ENDPOINT` of the server and of the "
        "pre-stage Job). Default: huggingface.co."
    )
    autoscaling: Autoscaling
    """An autoscaler (HPA or KEDA) instead of a fixed replica count. Default: none."""
    alerts: Alerts
    """Alert thresholds (monitoring.enabled). Default: each key's default."""
    rollout: Rollout
    """Rolling update bounds. Default: each key's default."""
    nodeSelector: dict[str, str]
    (
        "Node labels the pods must land on; a GPU model's pods also get gpuPool.nodeSelector (a key both set must have "
        "the same value). Default: {}."
    )
    tolerations: list[ModelToleration]
    """Taints the pods tolerate; a GPU model's pods also tolerate gpuPool.taint, a CPU model's must not. Default: []."""
    routing: Routing
    """How requests reach the pods (docs/load-balancing.md). Default: each key's default."""
    canary: Canary
    """A canary Deployment taking a share of requests (routing.mode gateway or inference-pool). Default: none."""
    service: Service
    """The model's Service. Default: each key's default."""
    quotas: bool
    (
        "In the model's namespace, a ResourceQuota at its peak (GPUs, CPU and memory of every replica, surge, canary "
        "and pre-stage Job) and a LimitRange giving containers without limits the server's; false where the cluster "
        "manages quotas. Default: true."
    )
    priorityClass: PriorityClass
    """The PriorityClass of the model's pods. Default: each key's default."""
    containerPatch: Any
    (
        "JSON merge patch over the server container for fields the config lacks; it may not set name or image, nor "
        "remove resources, probes or the security context. Default: {}."
    )
    registryPassword: pulumi.Input[str]
    """Password of `image.build.registry`, for pushes. Default: none."""
    gpuPool: GpuPool
    """The shared GPU node pool: give it the same block as its GpuNodePool. Default: each key's default."""
    monitoring: Monitoring
    """Prometheus monitoring and KEDA's Prometheus: the stack's monitoring block. Default: each key's default."""
    gateway: Gateway
    (
        "The Gateway of models routed through one (docs/load-balancing.md): the stack's gateway block. Default: each "
        "key's default."
    )
