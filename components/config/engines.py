"""The serving engines a model may run on: one declaration per engine of what it listens on, how it is probed,
whether it uses GPUs, what it scales on by default and which metrics it exports. The app/ server follows the
``server`` contract.

Beside them, every other exporter whose metric names the program writes into a trigger, an alert or a dashboard:
the DCGM exporter (``gpuPool.dcgmExporter``), kube-state-metrics and the gateways that can wake a model at zero
replicas. These lists are the one place metric names live: the config checks ``autoscaling.metric.name`` against
them, the policy pack's generated copy (``policy/model_serving_policy/exporters.py``) checks every HPA, KEDA
trigger and alert, and the DCGM exporter's counters file is written from its list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

Engine = Literal["server", "vllm", "llamacpp"]
Scope = Literal["pods", "nodes", "cluster"]


def histogram(name: str) -> tuple[str, ...]:
    """The series Prometheus stores for a histogram."""
    return (f"{name}_bucket", f"{name}_sum", f"{name}_count")


@dataclass(frozen=True)
class Exporter:
    """What one kind of scrape target exports on its metrics endpoint, as Prometheus stores the names (counters
    end in ``_total``; a histogram is its ``_bucket``, ``_sum`` and ``_count`` series).

    ``scope``: ``pods``, metrics of the exporter's own pods (a serving engine); ``nodes``, metrics of every pod on
    the nodes it runs on (DCGM); ``cluster``, run by the cluster's monitoring outside any stack (kube-state-metrics,
    a gateway).
    """

    name: str
    doc: str
    scope: Scope
    metrics: tuple[str, ...]


# prometheus_client's process and platform collectors (both engines are Python servers).
PYTHON_PROCESS = (
    "process_cpu_seconds_total",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
    "python_info",
)

# A workload's annotation naming the exporter its pods are (the policy pack reads it).
EXPORTER_ANNOTATION = "model-serving.dev/exporter"

# Prometheus adds these to every target it scrapes.
SCRAPE_METRICS = ("up", "scrape_duration_seconds", "scrape_samples_scraped")

SERVER = Exporter(
    "server",
    "the project's server (app/model_server/metrics.py)",
    "pods",
    (
        "model_server_requests_in_flight",
        "model_server_requests_waiting",
        "model_server_requests_total",
        *histogram("model_server_request_duration_seconds"),
        *histogram("model_server_inference_duration_seconds"),
        "model_server_model_load_seconds",
        "model_server_model_ready",
        "model_server_model_info",
        "model_server_inputs_total",
        "model_server_prompt_tokens_total",
        *histogram("model_server_batch_inputs"),
        *histogram("model_server_batch_tokens"),
        *histogram("model_server_batch_duration_seconds"),
        *PYTHON_PROCESS,
    ),
)

VLLM = Exporter(
    "vllm",
    "vLLM's OpenAI server (v1 engine metrics, the API server's HTTP metrics)",
    "pods",
    (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:num_preemptions_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:request_success_total",
        "vllm:cache_config_info",
        *histogram("vllm:request_prompt_tokens"),
        *histogram("vllm:request_generation_tokens"),
        *histogram("vllm:iteration_tokens_total"),
        *histogram("vllm:request_max_num_generation_tokens"),
        *histogram("vllm:request_params_n"),
        *histogram("vllm:request_params_max_tokens"),
        *histogram("vllm:time_to_first_token_seconds"),
        *histogram("vllm:time_per_output_token_seconds"),
        *histogram("vllm:e2e_request_latency_seconds"),
        *histogram("vllm:request_queue_time_seconds"),
        *histogram("vllm:request_inference_time_seconds"),
        *histogram("vllm:request_prefill_time_seconds"),
        *histogram("vllm:request_decode_time_seconds"),
        "http_requests_total",
        *histogram("http_request_duration_seconds"),
        *histogram("http_request_duration_highr_seconds"),
        "python_gc_collections_total",
        "python_gc_objects_collected_total",
        "python_gc_objects_uncollectable_total",
        *PYTHON_PROCESS,
    ),
)

LLAMACPP = Exporter(
    "llamacpp",
    "llama.cpp's `llama-server` with `--metrics` (no process metrics, no KV-cache gauge)",
    "pods",
    (
        "llamacpp:prompt_tokens_total",
        "llamacpp:prompt_tokens_cached_total",
        "llamacpp:prompt_seconds_total",
        "llamacpp:tokens_predicted_total",
        "llamacpp:tokens_predicted_seconds_total",
        "llamacpp:n_decode_total",
        "llamacpp:n_tokens_max",
        "llamacpp:prompt_tokens_seconds",
        "llamacpp:predicted_tokens_seconds",
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
        "llamacpp:n_busy_slots_per_decode",
        "llamacpp:spec_decode_num_draft_tokens_total",
        "llamacpp:spec_decode_num_accepted_tokens_total",
        "llamacpp:spec_decode_num_drafts_total",
    ),
)

# The DCGM exporter's counters (its counters file is written from this list): the device fields that need no
# profiling privilege (the DCP ``DCGM_FI_PROF_*`` fields need SYS_ADMIN, which the exporter does not get).
DCGM_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
)

DCGM = Exporter(
    "dcgm",
    "NVIDIA's DCGM exporter (gpuPool.dcgmExporter): per GPU, labelled with the pod using it",
    "nodes",
    tuple(name for name, _, _ in DCGM_COUNTERS),
)

KUBE_STATE_METRICS = Exporter(
    "kube-state-metrics",
    "kube-state-metrics, as kube-prometheus-stack runs it: the objects' state (replicas, pending pods)",
    "cluster",
    (
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas",
        "kube_deployment_status_replicas_available",
        "kube_statefulset_replicas",
        "kube_statefulset_status_replicas_ready",
        "kube_pod_status_phase",
        "kube_pod_status_unschedulable",
        "kube_pod_container_resource_requests",
    ),
)


@dataclass(frozen=True)
class Gateway:
    """A proxy in front of a model whose request counter Prometheus scrapes: it counts requests for the model's
    Service while no pod of the model runs, which no metric of the model's own pods can (``autoscaling.wake``).
    ``labels`` select the model's requests; ``{namespace}`` and ``{service}`` stand for the model's."""

    exporter: Exporter
    metric: str
    labels: Mapping[str, str]


ISTIO = Exporter("istio", "Istio's proxies (istio_requests_total)", "cluster", ("istio_requests_total",))
INGRESS_NGINX = Exporter(
    "ingress-nginx",
    "the ingress-nginx controller, scraped by a ServiceMonitor (its namespace and service labels become exported_*)",
    "cluster",
    ("nginx_ingress_controller_requests",),
)

GATEWAYS: Mapping[str, Gateway] = MappingProxyType(
    {
        "istio": Gateway(
            ISTIO,
            "istio_requests_total",
            {"destination_service_namespace": "{namespace}", "destination_service_name": "{service}"},
        ),
        "ingress-nginx": Gateway(
            INGRESS_NGINX,
            "nginx_ingress_controller_requests",
            {"exported_namespace": "{namespace}", "exported_service": "{service}"},
        ),
    }
)

EXPORTERS: Mapping[str, Exporter] = MappingProxyType(
    {e.name: e for e in (SERVER, VLLM, LLAMACPP, DCGM, KUBE_STATE_METRICS, ISTIO, INGRESS_NGINX)}
)


@dataclass(frozen=True)
class EngineSpec:
    name: Engine
    doc: str
    port: int
    liveness: str
    readiness: str
    model_load_seconds: int
    uses_gpus: bool
    """A GPU engine needs at least one GPU per pod (one by default); a CPU engine must ask for none."""
    metric: Mapping[str, Any]
    """``autoscaling.metric`` when a model autoscales without naming one (stack-config keys)."""
    exporter: Exporter
    """What its pods export on ``/metrics`` (the serving port)."""
    queue_metric: str
    """Requests waiting for a slot: what queue-depth scaling and the queue alert read."""
    running_metric: str
    """Requests being served now."""
    kv_cache_metric: str | None
    """The KV cache's utilization (0–1), which an endpoint picker scores pods on; None: the engine has none."""
    requests_metric: str | None
    """Requests finished (a counter); None: the engine counts none."""
    tokens_metric: str | None
    """Tokens generated (a counter); None: the engine generates none (an encoder)."""
    latency_metric: str | None
    """Request latency, a histogram (its base name); None: the engine exports none."""
    drains: bool
    """Whether its pods finish in-flight requests on SIGTERM within ``DRAIN_SECONDS`` (the env the program sets)."""
    p95_latency_seconds: float
    """``alerts.p95LatencySeconds`` by default: an embedding answers in milliseconds, a completion in seconds."""
    example: tuple[str, str]
    """A first request a user can send (path, JSON body): what ``make up`` prints for each model."""

    @property
    def gpus(self) -> int:
        """GPUs per pod when neither ``resources.gpus`` nor an architecture says."""
        return 1 if self.uses_gpus else 0


CHAT_EXAMPLE = ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "Say hello"}]}')

ENGINES: Mapping[str, EngineSpec] = MappingProxyType(
    {
        "server": EngineSpec(
            name="server",
            doc="the project's image (`app/`): a CPU-bound encoder",
            port=8000,
            liveness="/healthz",
            readiness="/readyz",
            model_load_seconds=600,
            uses_gpus=False,
            metric={"type": "cpu"},  # at Metric.targetUtilization's default
            exporter=SERVER,
            queue_metric="model_server_requests_waiting",
            running_metric="model_server_requests_in_flight",
            kv_cache_metric=None,  # an encoder keeps no KV cache between requests
            requests_metric="model_server_requests_total",
            tokens_metric=None,
            latency_metric="model_server_request_duration_seconds",
            drains=True,
            p95_latency_seconds=2,
            example=("/v1/embeddings", '{"input": "hello"}'),
        ),
        "vllm": EngineSpec(
            name="vllm",
            doc="vLLM's OpenAI server on GPUs (args from sizing, probes on `/health`)",
            port=8000,
            liveness="/health",
            readiness="/health",
            model_load_seconds=1800,
            uses_gpus=True,
            # Queue depth: requests waiting for a slot say more about GPU saturation than utilization does.
            metric={"type": "pods", "name": "vllm:num_requests_waiting", "targetAverageValue": "5"},
            exporter=VLLM,
            queue_metric="vllm:num_requests_waiting",
            running_metric="vllm:num_requests_running",
            kv_cache_metric="vllm:kv_cache_usage_perc",
            requests_metric="vllm:request_success_total",
            tokens_metric="vllm:generation_tokens_total",
            latency_metric="vllm:e2e_request_latency_seconds",
            drains=False,
            p95_latency_seconds=60,
            example=CHAT_EXAMPLE,
        ),
        "llamacpp": EngineSpec(
            name="llamacpp",
            doc="llama.cpp's `llama-server` on CPU: a GGUF baked into the image under `modelDir` "
            "(`llamacpp` block: context, slots, chat template)",
            port=8000,
            liveness="/health",
            readiness="/health",  # 503 while the model loads
            model_load_seconds=300,
            uses_gpus=False,  # until the image has a GPU build
            # Requests deferred: every slot (`--parallel`) is busy and they wait for one.
            metric={"type": "pods", "name": "llamacpp:requests_deferred", "targetAverageValue": "2"},
            exporter=LLAMACPP,
            queue_metric="llamacpp:requests_deferred",
            running_metric="llamacpp:requests_processing",
            kv_cache_metric=None,  # this llama-server exports no KV-cache gauge
            requests_metric=None,  # it counts tokens and decode calls, not requests
            tokens_metric="llamacpp:tokens_predicted_total",
            latency_metric=None,  # no latency histogram: throughput gauges instead
            drains=True,  # through the image's llama-drain (llama-server alone stops at once)
            p95_latency_seconds=60,
            example=CHAT_EXAMPLE,
        ),
    }
)
