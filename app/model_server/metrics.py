"""Prometheus metrics of one server instance (own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# Paths reported as their own label value; anything else is "other" so
# scanners cannot blow up label cardinality.
KNOWN_ENDPOINTS = frozenset({"/healthz", "/readyz", "/metrics", "/v1/models", "/v1/embeddings", "/v1/completions"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

BATCH_INPUT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

# The classic text format: every Prometheus version and most scrapers read it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def endpoint_label(path: str) -> str:
    if path in KNOWN_ENDPOINTS:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    return "other"


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they double the output for no use here
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.in_flight = Gauge("model_server_requests_in_flight", "HTTP requests being handled now.", registry=r)
        self.requests_waiting = Gauge(
            "model_server_requests_waiting",
            "Embedding requests with inputs queued for a forward pass (all workers busy or batching).",
            registry=r,
        )
        self.requests = Counter(
            "model_server_requests",
            "HTTP requests handled, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "model_server_request_duration_seconds",
            "Time to handle an HTTP request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_load_seconds = Gauge(
            "model_server_model_load_seconds", "Seconds it took to load the model.", registry=r
        )
        self.model_ready = Gauge("model_server_model_ready", "1 when the model is loaded and serving.", registry=r)
        self.model_info = Info("model_server_model", "The served model.", registry=r)
        self.inputs = Counter(
            "model_server_inputs", "Inputs embedded or completed, by endpoint.", ["endpoint"], registry=r
        )
        self.prompt_tokens = Counter(
            "model_server_prompt_tokens",
            "Tokens in the inputs processed, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            "model_server_inference_duration_seconds",
            "Time a request waits for its embeddings: batching, queueing and forward passes.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        self.batch_inputs = Histogram(
            "model_server_batch_inputs",
            "Inputs per forward pass (dynamic batching gathers them from concurrent requests).",
            buckets=BATCH_INPUT_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "model_server_batch_tokens",
            "Tokens per forward pass (at most TOKEN_BUDGET).",
            buckets=BATCH_TOKEN_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "model_server_batch_duration_seconds",
            "Time of one forward pass (a batch), in the inference pool.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def observe_batch(self, inputs: int, tokens: int, seconds: float) -> None:
        self.batch_inputs.observe(inputs)
        self.batch_tokens.observe(tokens)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
