"""A model's response to load: its autoscaler (``models[i].autoscaling``: an HPA or a KEDA ScaledObject, and
the ``metric`` it scales on) and the thresholds of its load alerts (``models[i].alerts``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from components.config import derive
from components.config.declare import REQUIRED, Block, key
from components.config.engines import GATEWAYS
from components.config.kinds import LABEL_KEY, Choice, Int, Number, Quantity, StringMap, Text


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
