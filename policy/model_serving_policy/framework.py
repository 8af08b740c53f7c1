"""How a rule is wired into a pulumi-policy ``Policy``.

A rule module writes a ``check`` function against a :class:`ResourceContext` or a
:class:`StackContext`; :func:`resource_policy` / :func:`stack_policy` wrap it with what
every rule needs: config resolution with defaults, the resource's identity, exemptions
(recorded for ``exempted-resources``), and the unknown-value handling described in
:mod:`model_serving_policy.undecided`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any, cast

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceRemediation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
    _DictProxy,
    _ListProxy,
    unknown_checking_proxy,
)
from pulumi_policy.secret import _DictSecretsProxy, _ListSecretsProxy

from . import k8s, state
from .settings import config_schema, resolve
from .undecided import Decider, UndecidedError

UNKNOWN_SENTINELS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


# --- exemptions -------------------------------------------------------------------------


def match_exemption(
    exemptions: Sequence[Mapping[str, Any]], ident: k8s.Identity, unknown_paths: Sequence[str]
) -> Mapping[str, Any] | None:
    """The exemption covering ``ident``, or ``None``.

    Raises :class:`UndecidedError` when no exemption matches for sure but one could,
    depending on a namespace or name that is unknown during preview.
    """
    maybe = False
    for ex in exemptions:
        if not fnmatchcase(ident.kind, ex.get("kind", "*")):
            continue
        ns = None if ident.namespace is None else fnmatchcase(ident.namespace, ex["namespace"])
        nm = None if ident.name is None else fnmatchcase(ident.name, ex["name"])
        if ns is False or nm is False:
            continue
        if ns and nm:
            return ex
        maybe = True
    if maybe:
        raise UndecidedError(unknown_paths or ["metadata"], "needed to match exemptions")
    return None


# --- resource policies ------------------------------------------------------------------


@dataclass
class ResourceContext:
    """What a resource rule's ``check`` sees."""

    policy_name: str
    args: ResourceValidationArgs
    config: dict[str, Any]
    identity: k8s.Identity
    decider: Decider
    report_violation: ReportViolation

    @property
    def props(self) -> Mapping[str, Any]:
        return self.args.props

    @property
    def resource_type(self) -> str:
        return self.args.resource_type

    def report(self, message: str) -> None:
        self.report_violation(message, None)

    def deciding(self) -> AbstractContextManager[None]:
        return self.decider.deciding()

    @cached_property
    def pod(self) -> k8s.PodTemplate | None:
        """The pod template (``None`` if not a workload); unknown parts are recorded."""
        tpl = k8s.pod_template(self.resource_type, self.props)
        if tpl is not None:
            for p in tpl.unknown_paths:
                self.decider.add(p)
        return tpl

    def containers(self) -> Iterator[k8s.Container]:
        yield from (self.pod.containers if self.pod else ())


def _observe_inputs(args: ResourceValidationArgs) -> None:
    state.record_registered(args.urn)
    t = k8s.parse_type(args.resource_type)
    if t is None or t.kind not in k8s.SCALABLE_KINDS:
        return
    try:
        present = k8s.get(args.props, "spec", "replicas") is not None
    except UnknownValueError:
        present = True
    state.record_replicas_in_inputs(args.urn, present)


Applies = Callable[[str], bool]


def resource_policy(
    *,
    name: str,
    description: str,
    applies: Applies,
    check: Callable[[ResourceContext], None],
    properties: Mapping[str, Mapping[str, Any]] | None = None,
    enforcement_level: EnforcementLevel = EnforcementLevel.MANDATORY,
    severity: Severity | None = None,
    remediate: Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any] | None] | None = None,
    remediation_steps: str | None = None,
) -> ResourceValidationPolicy:
    """A ``ResourceValidationPolicy`` running ``check`` on every resource ``applies`` to.

    ``remediate(resource_type, plain_props, config)`` returns the fixed props (the same
    plain dict, changed) or ``None`` when there is nothing to fix.
    """
    schema = config_schema(properties or {})

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        _observe_inputs(args)
        if not applies(args.resource_type):
            return
        config = resolve(name, schema, args.get_config())
        decider = Decider()
        unknown: list[str] = []
        provider_props = args.provider.props if args.provider else None
        ident = k8s.identity(args.resource_type, args.props, args.name, provider_props, unknown)
        ex = match_exemption(config["exemptions"], ident, unknown)
        if ex is not None:
            state.record_exemption(state.ExemptionUse(name, args.urn, ident.describe(), str(ex["reason"])))
            return
        ctx = ResourceContext(name, args, config, ident, decider, report_violation)
        with decider.deciding():
            check(ctx)
        decider.finish()

    def remediate_args(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
        if remediate is None or not applies(args.resource_type):
            return None
        config = resolve(name, schema, args.get_config())
        plain = to_plain(args.props)
        # The engine hands remediations secret-preserving props without unknown checks;
        # re-wrap a copy so that an unknown name or namespace is recognised as such.
        checked = unknown_checking_proxy(to_plain(args.props))
        try:
            ident = k8s.identity(args.resource_type, checked, args.name, None, [])
            if match_exemption(config["exemptions"], ident, []) is not None:
                return None
        except UnknownValueError:
            return None
        return remediate(args.resource_type, plain, config)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=enforcement_level,
        config_schema=schema,
        # pulumi-policy types remediations as async; a plain return value is fine at runtime.
        remediate=cast(ResourceRemediation, remediate_args) if remediate is not None else None,
        severity=severity,
        remediation_steps=remediation_steps,
    )


def to_plain(value: Any) -> Any:
    """A plain ``dict``/``list`` copy of proxied props (unknown sentinels kept as-is)."""
    if isinstance(value, (_DictProxy, _ListProxy, _DictSecretsProxy, _ListSecretsProxy)):
        return to_plain(value["__target"])
    if isinstance(value, Mapping):
        return {k: to_plain(value[k]) for k in list(value)}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


# --- stack policies ---------------------------------------------------------------------


@dataclass
class StackEntry:
    resource: PolicyResource
    identity: k8s.Identity
    unknown_paths: list[str] = field(default_factory=list)

    @property
    def props(self) -> Mapping[str, Any]:
        return self.resource.props

    @property
    def resource_type(self) -> str:
        return self.resource.resource_type

    @property
    def urn(self) -> str:
        return self.resource.urn

    def describe(self) -> str:
        return self.identity.describe()


@dataclass
class StackContext:
    """What a stack rule's ``check`` sees."""

    policy_name: str
    args: StackValidationArgs
    config: dict[str, Any]
    decider: Decider
    report_violation: ReportViolation

    @cached_property
    def entries(self) -> list[StackEntry]:
        out = []
        for r in self.args.resources:
            unknown: list[str] = []
            provider_props = r.provider.props if r.provider else None
            ident = k8s.identity(r.resource_type, r.props, r.name, provider_props, unknown)
            out.append(StackEntry(r, ident, unknown))
        return out

    def report(self, message: str, entry: StackEntry | None = None) -> None:
        self.report_violation(message, entry.urn if entry else None)

    def deciding(self, entry: StackEntry | None = None) -> AbstractContextManager[None]:
        return self.decider.deciding(f"{entry.describe()}: " if entry else "")

    def of(self, group: str, kind: str, *, subjects: bool = True) -> list[StackEntry]:
        """Resources of one group/kind (``core`` for the legacy group).

        ``subjects=True``: the resources the rule judges, exempt ones left out (and
        recorded). ``subjects=False``: every such resource, e.g. as a possible target.
        """
        found = [e for e in self.entries if k8s.is_type(e.resource_type, group, kind)]
        return [e for e in found if not self.exempt(e)] if subjects else found

    def workloads(self, *, subjects: bool = True) -> list[StackEntry]:
        found = [e for e in self.entries if k8s.is_workload(e.resource_type)]
        return [e for e in found if not self.exempt(e)] if subjects else found

    def exempt(self, entry: StackEntry) -> bool:
        if "exemptions" not in self.config:
            return False
        try:
            ex = match_exemption(self.config["exemptions"], entry.identity, entry.unknown_paths)
        except UndecidedError as e:
            self.decider.undecided.extend(f"{entry.describe()}: {p}" for p in e.paths)
            return True
        if ex is None:
            return False
        state.record_exemption(state.ExemptionUse(self.policy_name, entry.urn, entry.describe(), str(ex["reason"])))
        return True


def stack_policy(
    *,
    name: str,
    description: str,
    check: Callable[[StackContext], None],
    properties: Mapping[str, Mapping[str, Any]] | None = None,
    enforcement_level: EnforcementLevel = EnforcementLevel.MANDATORY,
    severity: Severity | None = None,
    remediation_steps: str | None = None,
    exemptible: bool = True,
) -> StackValidationPolicy:
    """A ``StackValidationPolicy`` running ``check`` once over all resources."""
    schema = config_schema(properties or {}, exemptible=exemptible)

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = resolve(name, schema, args.get_config())
        ctx = StackContext(name, args, config, Decider(), report_violation)
        with ctx.deciding():
            check(ctx)
        ctx.decider.finish()

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=enforcement_level,
        config_schema=schema,
        severity=severity,
        remediation_steps=remediation_steps,
    )


def plain_containers(resource_type: str, props: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers and containers of plain (unproxied) props, for remediation."""
    t = k8s.parse_type(resource_type)
    if t is None or (t.group, t.kind) not in k8s.WORKLOAD_POD_SPEC_PATHS:
        return []
    spec: Any = props
    for key in k8s.WORKLOAD_POD_SPEC_PATHS[(t.group, t.kind)]:
        spec = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        return []
    out: list[dict[str, Any]] = []
    for key in ("initContainers", "containers"):
        lst = spec.get(key)
        if isinstance(lst, list):
            out.extend(c for c in lst if isinstance(c, dict))
    return out
