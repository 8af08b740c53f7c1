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
            "Time spent in the model forward pass per request.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
