"""scraped-metrics: every metric an HPA (Pods or External), a KEDA Prometheus trigger or a PrometheusRule names is
one that a target Prometheus scrapes for it exports. A typo'd metric name is a preview-time error, not an autoscaler
that silently never scales or an alert that never fires.

What a target exports comes from the exporters' metric lists (``exporters.py``, generated from the program's one
list): a workload names its exporter in the annotation ``EXPORTER_ANNOTATION``. It counts as scraped when a
ServiceMonitor selects a Service in front of its pods, a PodMonitor selects its pods, or its pod template asks for
annotation-based scraping (``prometheus.io/scrape: "true"``). Which metrics a namespace's objects may name:

* those of the scraped workloads in the same namespace whose exporter's scope is ``pods`` (a model's engine);
* those of scraped workloads anywhere whose scope is ``nodes`` (the DCGM exporter: every GPU pod's metrics);
* those of the ``cluster`` exporters the policy's ``clusterExporters`` says the cluster's monitoring scrapes
  (kube-state-metrics, the gateway in front of the models);
* what Prometheus adds to every target (``up``), and what a PrometheusRule records itself.

An HPA's Pods metric must come from the workload it scales. An HPA reads its metrics through an adapter
(prometheus-adapter), which usually serves a metric under its Prometheus name with ``:`` turned into ``_``
(``vllm:num_requests_waiting`` as ``vllm_num_requests_waiting``): both names count, and ``adapterMetrics`` lists any
further names the cluster's adapter serves.

A missing metric is proven missing only where a monitor of the stack (ServiceMonitor, PodMonitor) scrapes the
namespace's workloads (for a Pods metric: the scaled workload): ``scraped-metrics`` refuses it there. Elsewhere the
stack cannot know what the cluster's own monitoring scrapes or its adapter serves, and the advisory
``scraped-metrics-unmonitored`` says so instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, Policy, Severity

from .. import k8s, scaling
from ..exporters import EXPORTER_ANNOTATION, EXPORTERS, SCRAPE_METRICS
from ..framework import StackContext, StackEntry, stack_policy
from ..promql import metric_names
from ..settings import string_list_schema

SERVICE = ("core", "Service")
SERVICE_MONITOR = ("monitoring.coreos.com", "ServiceMonitor")
POD_MONITOR = ("monitoring.coreos.com", "PodMonitor")
PROMETHEUS_RULE = ("monitoring.coreos.com", "PrometheusRule")

CLUSTER_EXPORTERS = [name for name, (scope, _) in EXPORTERS.items() if scope == "cluster"]


def _monitor_namespaces(monitor: StackEntry) -> set[str] | None:
    """The namespaces a ServiceMonitor or PodMonitor looks in; None for any."""
    ns_selector = k8s.mapping(k8s.get(monitor.props, "spec", "namespaceSelector"))
    if k8s.get(ns_selector, "any") is True:
        return None
    names = {str(n) for n in k8s.items(k8s.get(ns_selector, "matchNames"))}
    return names or {str(monitor.identity.namespace)}


def _selects(monitor: StackEntry, namespace: str | None, labels: Mapping[str, Any]) -> bool:
    namespaces = _monitor_namespaces(monitor)
    if namespaces is not None and namespace not in namespaces:
        return False
    selector = k8s.get(monitor.props, "spec", "selector")
    return k8s.selector_matches(selector if isinstance(selector, Mapping) else None, labels)


class Scraped:
    """The stack's workloads Prometheus scrapes, and what they export."""

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        service_monitors = ctx.of(*SERVICE_MONITOR, subjects=False)
        pod_monitors = ctx.of(*POD_MONITOR, subjects=False)
        # Services a ServiceMonitor selects: their pod selectors.
        self.service_selectors: list[tuple[str | None, Mapping[str, Any]]] = []
        for svc in ctx.of(*SERVICE, subjects=False):
            with ctx.deciding(svc):
                labels = k8s.mapping(k8s.get(svc.props, "metadata", "labels"))
                if any(_selects(m, svc.identity.namespace, labels) for m in service_monitors):
                    selector = k8s.mapping(k8s.get(svc.props, "spec", "selector"))
                    self.service_selectors.append((svc.identity.namespace, selector))
        self.workloads: list[tuple[StackEntry, str | None]] = []
        # The scraped workloads a monitor of the stack selects (not only the pod annotation): what the stack knows.
        self.monitored: list[StackEntry] = []
        for w in ctx.workloads(subjects=False):
            with ctx.deciding(w):
                by = self._scraped(w, pod_monitors)
                if by is not None:
                    exporter = k8s.get(w.props, "metadata", "annotations", EXPORTER_ANNOTATION)
                    self.workloads.append((w, exporter if isinstance(exporter, str) else None))
                    if by == "monitor":
                        self.monitored.append(w)

    def _scraped(self, w: StackEntry, pod_monitors: Sequence[StackEntry]) -> str | None:
        """How ``w`` is scraped: by a monitor of the stack, by its pods' annotation, or not (None)."""
        tpl = k8s.pod_template(w.resource_type, w.props)
        if tpl is None:
            return None
        labels = k8s.mapping(k8s.get(tpl.metadata, "labels"))
        if any(_selects(m, w.identity.namespace, labels) for m in pod_monitors) or any(
            ns == w.identity.namespace and k8s.map_selector_matches(sel, labels) for ns, sel in self.service_selectors
        ):
            return "monitor"
        if k8s.get(tpl.metadata, "annotations", "prometheus.io/scrape") == "true":
            return "annotation"
        return None

    def proven(self, namespace: str | None, target: tuple[str | None, str | None, str | None] | None = None) -> bool:
        """Whether the stack's own monitors scrape what a subject of ``namespace`` reads (``target``: the one
        workload a Pods metric comes from), so that a missing metric is proven missing."""
        if target is not None:
            return any(scaling.workload_key(w) == target for w in self.monitored)
        return any(w.identity.namespace == namespace for w in self.monitored)

    def exports(self, exporter: str | None) -> set[str]:
        return set(EXPORTERS[exporter][1]) if exporter in EXPORTERS else set()

    def available(self, namespace: str | None, cluster: Iterable[str]) -> set[str]:
        names = set(SCRAPE_METRICS)
        for name in cluster:
            names |= self.exports(name)
        for w, exporter in self.workloads:
            scope = EXPORTERS[exporter][0] if exporter in EXPORTERS else None
            if scope == "nodes" or (scope == "pods" and w.identity.namespace == namespace):
                names |= self.exports(exporter)
        return names

    def describe(self, namespace: str | None) -> str:
        """The scraped workloads a metric of ``namespace`` may come from, for messages."""
        parts = []
        for w, exporter in self.workloads:
            scope = EXPORTERS[exporter][0] if exporter in EXPORTERS else None
            if w.identity.namespace == namespace or scope == "nodes":
                says = f"exporter {exporter}" if exporter in EXPORTERS else f"no known {EXPORTER_ANNOTATION}"
                parts.append(f"{w.describe()} ({says})")
        return ", ".join(parts) or "none"


def _report(
    ctx: StackContext, entry: StackEntry, what: str, missing: Sequence[str], scraped: Scraped, proven: bool
) -> None:
    if proven != scraped.proven(entry.identity.namespace):
        return  # the other policy's finding
    ctx.report(
        f"{entry.describe()} {what} {', '.join(repr(m) for m in missing)}, which no target scraped for namespace "
        f"{entry.identity.namespace} exports (scraped: {scraped.describe(entry.identity.namespace)}; cluster "
        f"exporters: {', '.join(ctx.config['clusterExporters']) or 'none'}). A misspelt metric, or a target that "
        "is not scraped: the autoscaler would never scale, the alert never fire.",
        entry,
    )


def _check_hpa(ctx: StackContext, hpa: StackEntry, scraped: Scraped, available: set[str], proven: bool) -> None:
    for metric in k8s.items(k8s.get(hpa.props, "spec", "metrics")):
        mtype = k8s.get(metric, "type")
        if mtype not in ("Pods", "External"):
            continue
        name = k8s.get(metric, mtype.lower(), "metric", "name")
        if not isinstance(name, str):
            continue
        if mtype == "External":
            if name not in _adapted(available, ctx.config["adapterMetrics"]):
                _report(ctx, hpa, "scales on the external metric", [name], scraped, proven)
            continue
        # A Pods metric is the scaled workload's own.
        key = scaling.hpa_target_key(hpa)
        own = {
            m for w, exporter in scraped.workloads if scaling.workload_key(w) == key for m in scraped.exports(exporter)
        }
        if name not in _adapted(own | set(SCRAPE_METRICS), ctx.config["adapterMetrics"]):
            if proven != scraped.proven(hpa.identity.namespace, key):
                continue  # the other policy's finding
            ctx.report(
                f"{hpa.describe()} scales on the per-pod metric {name!r}, which the {key[1]} {key[0]}/{key[2]} it "
                f"scales does not export, or is not scraped (scraped: {scraped.describe(key[0])}). A misspelt "
                "metric: the HPA would never scale.",
                hpa,
            )


def _adapted(names: Iterable[str], extra: Iterable[str]) -> set[str]:
    """The names an HPA may read ``names`` by: as Prometheus stores them, as an adapter serves them (``:`` to
    ``_``), and the adapter's ``extra`` ones."""
    names = set(names)
    return names | {n.replace(":", "_") for n in names} | set(extra)


def _check_scaled_object(
    ctx: StackContext, so: StackEntry, scraped: Scraped, available: set[str], proven: bool
) -> None:
    for trigger in k8s.items(k8s.get(so.props, "spec", "triggers")):
        if k8s.get(trigger, "type") != "prometheus":
            continue
        query = k8s.get(trigger, "metadata", "query")
        if isinstance(query, str):
            missing = [m for m in metric_names(query) if m not in available]
            if missing:
                label = k8s.get(trigger, "name")
                _report(ctx, so, f"triggers{f' ({label})' if label else ''} on", missing, scraped, proven)


def _check_rule(ctx: StackContext, rule: StackEntry, scraped: Scraped, available: set[str], proven: bool) -> None:
    entries = [
        r for group in k8s.items(k8s.get(rule.props, "spec", "groups")) for r in k8s.items(k8s.get(group, "rules"))
    ]
    recorded = {str(k8s.get(r, "record")) for r in entries if isinstance(k8s.get(r, "record"), str)}
    for r in entries:
        expr = k8s.get(r, "expr")
        if not isinstance(expr, str):
            continue
        missing = [m for m in metric_names(expr) if m not in available | recorded]
        if missing:
            name = k8s.get(r, "alert") or k8s.get(r, "record")
            _report(ctx, rule, f"{'alert' if k8s.get(r, 'alert') else 'rule'} {name} reads", missing, scraped, proven)


def _check_scraped_metrics(ctx: StackContext, proven: bool) -> None:
    scraped = Scraped(ctx)
    cluster = [name for name in ctx.config["clusterExporters"] if name in EXPORTERS]
    checks = (
        (scaling.HPA, _check_hpa),
        (scaling.SCALED_OBJECT, _check_scaled_object),
        (PROMETHEUS_RULE, _check_rule),
    )
    for kind, check in checks:
        for entry in ctx.of(*kind):
            with ctx.deciding(entry):
                check(ctx, entry, scraped, scraped.available(entry.identity.namespace, cluster), proven)


def _scraped_metrics(proven: bool) -> Callable[[StackContext], None]:
    def check(ctx: StackContext) -> None:
        _check_scraped_metrics(ctx, proven)

    return check


PROPERTIES = {
    "clusterExporters": string_list_schema(
        "Exporters the cluster's monitoring scrapes outside the stack (kube-state-metrics, the gateway "
        f"that wakes models at zero): any of {', '.join(CLUSTER_EXPORTERS)}.",
        CLUSTER_EXPORTERS,
    ),
    "adapterMetrics": string_list_schema(
        "Further metric names the cluster's metrics adapter serves to HPAs (beyond each scraped metric's own name "
        "and its name with ':' turned into '_').",
        [],
    ),
}

POLICIES: list[Policy] = [
    stack_policy(
        name="scraped-metrics",
        description=(
            "Every metric an HPA (Pods, External), a KEDA Prometheus trigger or a PrometheusRule names is one a "
            "target scraped for its namespace exports (per the exporters' metric lists, a workload naming its "
            f"exporter in the annotation {EXPORTER_ANNOTATION}); an HPA's Pods metric is the scaled workload's own. "
            "Refused where the stack's own monitors scrape the namespace (or the scaled workload)."
        ),
        check=_scraped_metrics(True),
        properties=PROPERTIES,
        severity=Severity.HIGH,
    ),
    stack_policy(
        name="scraped-metrics-unmonitored",
        description=(
            "The same check where no monitor of the stack scrapes the namespace (or the scaled workload): the "
            "cluster's own monitoring or adapter may serve the metric, so a name no known target exports is "
            "reported, not refused."
        ),
        check=_scraped_metrics(False),
        properties=PROPERTIES,
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=Severity.MEDIUM,
    ),
]
