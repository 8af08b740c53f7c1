"""Reading Kubernetes objects as the policy engine hands them over.

Props are in wire form (camelCase) and wrapped by ``unknown_checking_proxy``: mappings
and sequences are proxies (``collections.abc.Mapping`` / ``Sequence``, not ``dict`` /
``list``) and reading an unknown value raises ``UnknownValueError``. Every helper here
only reads through ``Mapping``/``Sequence`` and lets ``UnknownValueError`` propagate to
the rule's :class:`~model_serving_policy.undecided.Decider`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from kubernetes.utils.quantity import parse_quantity as _untyped_parse_quantity
from pulumi_policy.proxy import UnknownValueError

from .undecided import format_path

EMPTY: Mapping[str, Any] = {}

#: The official client's parser (untyped upstream), given its type here.
parse_quantity: Callable[[object], Decimal] = _untyped_parse_quantity

_TOKEN = re.compile(r"^kubernetes:(?P<group>[^/:]+)/(?P<version>[^:]+):(?P<kind>[A-Za-z0-9]+)$")

#: (API group, kind) -> path from the object to its pod spec. "core" is the legacy group.
WORKLOAD_POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("core", "Pod"): ("spec",),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    # A multi-node model: the leader pod of each group serves the API (its workers hold the same resources).
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): ("spec", "leaderWorkerTemplate", "leaderTemplate", "spec"),
}

#: The kinds an HPA can scale and a Deployment-style rollout applies to.
SCALABLE_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "LeaderWorkerSet"}


def group_size(kind: str, props: Mapping[str, Any]) -> int:
    """Pods per replica: a LeaderWorkerSet's group size, 1 for every other kind."""
    if kind != "LeaderWorkerSet":
        return 1
    size = as_int(get(props, "spec", "leaderWorkerTemplate", "size"))
    return 1 if size is None else size


@dataclass(frozen=True)
class TypeToken:
    group: str
    version: str
    kind: str


def parse_type(resource_type: str) -> TypeToken | None:
    """``kubernetes:apps/v1:Deployment`` -> ``TypeToken('apps', 'v1', 'Deployment')``."""
    m = _TOKEN.match(resource_type)
    if not m:
        return None
    return TypeToken(m["group"], m["version"], m["kind"])


def is_workload(resource_type: str) -> bool:
    t = parse_type(resource_type)
    return t is not None and (t.group, t.kind) in WORKLOAD_POD_SPEC_PATHS


def is_type(resource_type: str, group: str, kind: str) -> bool:
    t = parse_type(resource_type)
    return t is not None and t.group == group and t.kind == kind


# --- reading proxied values -------------------------------------------------------------


def get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` or ``None`` when a key is missing or a level is not a mapping.

    Unknown values raise ``UnknownValueError`` (through the proxy).
    """
    cur = obj
    for key in keys:
        if not isinstance(cur, Mapping) or key not in cur:
            return None
        cur = cur[key]
    return cur


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else EMPTY


def items(value: Any) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return ()
    return value


def as_int(value: Any) -> int | None:
    """Numbers arrive as floats through protobuf; ``2.0`` -> ``2``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity, parsed by the official client; ``None`` if invalid."""
    if value is None or isinstance(value, bool):
        return None
    try:
        q = parse_quantity(value)
    except (ValueError, ArithmeticError, TypeError):
        return None
    return q if q.is_finite() else None


def format_quantity(q: Decimal) -> str:
    return format(q.normalize(), "f")


def scaled_int_or_percent(value: Any, total: int, *, round_up: bool) -> int | None:
    """Resolve an IntOrString like ``maxSurge`` (``1``, ``"25%"``) against ``total``."""
    n = as_int(value)
    if n is not None:
        return n
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%") and text[:-1].isdigit():
            scaled = Decimal(int(text[:-1])) * total / 100
            return math.ceil(scaled) if round_up else math.floor(scaled)
        if text.isdigit():
            return int(text)
    return None


# --- identity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who a resource is in Kubernetes. ``None`` fields are unknown during preview."""

    kind: str
    namespace: str | None
    name: str | None
    #: True when ``metadata.namespace`` is absent and the namespace was inferred.
    namespace_defaulted: bool = False

    def describe(self) -> str:
        ns = self.namespace if self.namespace is not None else "<unknown>"
        name = self.name if self.name is not None else "<unknown>"
        return f"{self.kind} {ns}/{name}"


def identity(
    resource_type: str,
    props: Mapping[str, Any],
    pulumi_name: str,
    provider_props: Mapping[str, Any] | None = None,
    unknown_paths: list[str] | None = None,
) -> Identity:
    """The resource's kind, namespace and name.

    A missing ``metadata.name`` means Pulumi auto-naming: the Pulumi resource name is
    used. A missing ``metadata.namespace`` means the provider's ``namespace`` setting if
    the resource's provider has one, else ``default`` (as ``kubectl`` would). Unknown
    values become ``None`` and their paths are appended to ``unknown_paths``.
    """
    t = parse_type(resource_type)
    kind = t.kind if t else resource_type
    sink = unknown_paths if unknown_paths is not None else []

    name: str | None = pulumi_name
    try:
        meta_name = get(props, "metadata", "name")
        if isinstance(meta_name, str) and meta_name:
            name = meta_name
    except UnknownValueError as e:
        name = None
        sink.append(format_path(e.props))

    namespace: str | None
    defaulted = False
    try:
        ns = get(props, "metadata", "namespace")
    except UnknownValueError as e:
        ns = None
        namespace = None
        sink.append(format_path(e.props))
    else:
        namespace = ns if isinstance(ns, str) and ns else None
        if namespace is None:
            defaulted = True
            namespace = "default"
            try:
                pns = get(provider_props, "namespace") if provider_props else None
            except UnknownValueError:
                namespace = None
                sink.append("provider.namespace")
            else:
                if isinstance(pns, str) and pns:
                    namespace = pns
    return Identity(kind, namespace, name, defaulted)


# --- pod templates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    name: str
    #: Path from the resource's props, e.g. ``spec.template.spec.containers[0]``.
    path: str
    init: bool
    spec: Mapping[str, Any]

    def describe(self) -> str:
        kind = "init container" if self.init else "container"
        return f'{kind} "{self.name}" ({self.path})'

    def resources(self, section: str) -> Mapping[str, Any]:
        """``resources.requests`` or ``resources.limits`` (empty when absent)."""
        return mapping(get(self.spec, "resources", section))


@dataclass
class PodTemplate:
    kind: str
    #: Path to the pod spec, e.g. ``spec.template.spec``.
    path: str
    spec: Mapping[str, Any]
    metadata: Mapping[str, Any]
    containers: list[Container] = field(default_factory=list)
    #: Paths of container lists or containers that are unknown during preview.
    unknown_paths: list[str] = field(default_factory=list)

    @property
    def app_containers(self) -> list[Container]:
        return [c for c in self.containers if not c.init]

    @property
    def init_containers(self) -> list[Container]:
        return [c for c in self.containers if c.init]


def pod_template(resource_type: str, props: Mapping[str, Any]) -> PodTemplate | None:
    """The pod template of any workload kind (Pod ... CronJob), init containers included.

    Returns ``None`` for resources that are not workloads. Raises ``UnknownValueError``
    when the pod spec itself is unknown; unknown container lists or containers are
    recorded in ``unknown_paths`` so that rules can still check the rest.
    """
    t = parse_type(resource_type)
    if t is None or (t.group, t.kind) not in WORKLOAD_POD_SPEC_PATHS:
        return None
    spec_path = WORKLOAD_POD_SPEC_PATHS[(t.group, t.kind)]
    meta_path = ("metadata",) if t.kind == "Pod" else (*spec_path[:-1], "metadata")
    spec = mapping(get(props, *spec_path))
    try:
        metadata = mapping(get(props, *meta_path))
    except UnknownValueError:
        metadata = EMPTY
    tpl = PodTemplate(t.kind, ".".join(spec_path), spec, metadata)
    for key, init in (("initContainers", True), ("containers", False)):
        list_path = f"{tpl.path}.{key}"
        try:
            containers = items(get(spec, key))
        except UnknownValueError:
            tpl.unknown_paths.append(list_path)
            continue
        for i in range(len(containers)):
            path = f"{list_path}[{i}]"
            try:
                c = mapping(containers[i])
            except UnknownValueError:
                tpl.unknown_paths.append(path)
                continue
            try:
                cname = get(c, "name")
            except UnknownValueError:
                cname = None
            tpl.containers.append(Container(cname if isinstance(cname, str) and cname else path, path, init, c))
    return tpl


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The labels the workload's pods carry (``spec.template.metadata.labels`` etc.)."""
    tpl = pod_template(resource_type, props)
    return mapping(get(tpl.metadata, "labels")) if tpl else EMPTY


# --- GPUs -------------------------------------------------------------------------------


def is_gpu_resource(resource_name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(resource_name, p) for p in patterns)


def container_gpus(container: Container, patterns: Sequence[str]) -> dict[str, Decimal]:
    """GPU quantities of one container: limits, or requests where there is no limit.

    Invalid quantities are skipped here (``gpu-resources`` reports them).
    """
    out: dict[str, Decimal] = {}
    for section in ("requests", "limits"):
        res = container.resources(section)
        for rname in list(res):
            if is_gpu_resource(rname, patterns):
                q = quantity(res[rname])
                if q is not None:
                    out[rname] = q
    return out


def pod_gpus(tpl: PodTemplate, patterns: Sequence[str]) -> dict[str, Decimal]:
    """GPUs the pod needs per resource name: max(sum over app containers, max over init
    containers), as the scheduler computes a pod's effective request."""
    app: dict[str, Decimal] = {}
    init: dict[str, Decimal] = {}
    for c in tpl.containers:
        for rname, q in container_gpus(c, patterns).items():
            if c.init:
                init[rname] = max(init.get(rname, Decimal(0)), q)
            else:
                app[rname] = app.get(rname, Decimal(0)) + q
    names = set(app) | set(init)
    return {
        n: max(app.get(n, Decimal(0)), init.get(n, Decimal(0)))
        for n in sorted(names)
        if max(app.get(n, Decimal(0)), init.get(n, Decimal(0))) > 0
    }


# --- label selectors --------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """A ``LabelSelector`` (matchLabels + matchExpressions) against a label set.

    An empty selector matches everything; ``None`` matches nothing.
    """
    if selector is None:
        return False
    match_labels = mapping(get(selector, "matchLabels"))
    for k in list(match_labels):
        if labels.get(k) != match_labels[k]:
            return False
    for expr in items(get(selector, "matchExpressions")):
        key = get(expr, "key")
        op = get(expr, "operator")
        values = [str(v) for v in items(get(expr, "values"))]
        present = key in labels
        value = labels.get(key) if present else None
        if op == "In" and not (present and value in values):
            return False
        if op == "NotIn" and present and value in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def map_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A Service-style equality selector (``{key: value}``); empty matches nothing."""
    keys = list(selector)
    return bool(keys) and all(labels.get(k) == selector[k] for k in keys)
