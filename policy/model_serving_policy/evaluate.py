"""Run the whole pack over plain resource records, the way the Pulumi engine does.

Signature::

    evaluate(
        resources: Iterable[ResourceRecord | tuple | Mapping],
        config: Mapping[str, Any] | None = None,
        *,
        stack_tags: Mapping[str, str] | None = None,
    ) -> list[Violation]

``resources``
    Records ``ResourceRecord(resource_type, name, urn, props, parent=None,
    provider=None)``: the Pulumi type token (``kubernetes:apps/v1:Deployment``), the
    Pulumi resource name, the URN, the props as a plain ``dict`` in Kubernetes wire form
    (camelCase; unknowns as ``pulumi_policy.proxy.UNKNOWN_*`` sentinels), the parent URN
    and, optionally, the props of the resource's Kubernetes provider. A plain tuple in
    that order, or a mapping with those keys (``type`` is accepted for
    ``resource_type``), works too.
``config``
    The ``--policy-pack-config`` document, e.g. ``json.load(open("policy/config/prod.json"))``:
    ``{"<policy>": {"enforcementLevel": "...", <params>}}`` or ``{"<policy>": "<level>"}``,
    ``"all"`` setting every policy's level. ``None``: the pack's defaults.

Returns every diagnostic in engine order: first each resource through each resource
policy, then each stack policy once. ``Violation.enforcement_level`` is what the engine
would report: ``remediate`` becomes ``mandatory`` for violations that remain; a rule
that cannot decide because of unknown values yields an ``advisory`` violation whose
message starts with "can't run policy". ``Violation.blocking`` tells whether the
violation would fail ``pulumi preview``. As in the engine, remediations of policies set to
``remediate`` run first and the analysis sees the remediated props; props are wrapped
with ``unknown_checking_proxy`` exactly as the engine wraps them.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, NamedTuple

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from . import state
from .framework import to_plain
from .pack import PACK_NAME, all_policies


class ResourceRecord(NamedTuple):
    resource_type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    parent: str | None = None
    #: Props of the resource's Kubernetes provider (e.g. ``{"namespace": "models"}``).
    provider: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Violation:
    policy_name: str
    message: str
    #: The resource the violation is about; ``None`` for the stack as a whole.
    urn: str | None
    enforcement_level: EnforcementLevel

    @property
    def blocking(self) -> bool:
        return self.enforcement_level == EnforcementLevel.MANDATORY

    def __str__(self) -> str:
        where = f" [{self.urn}]" if self.urn else ""
        return f"{self.enforcement_level.value} {self.policy_name}{where}: {self.message}"


def _record(r: Any) -> ResourceRecord:
    if isinstance(r, ResourceRecord):
        return r
    if isinstance(r, Mapping):
        return ResourceRecord(
            r.get("resource_type") or r["type"],
            r["name"],
            r["urn"],
            r.get("props") or {},
            r.get("parent"),
            r.get("provider"),
        )
    return ResourceRecord(*r)


_LEVELS = {level.value: level for level in EnforcementLevel}


def _split_config(
    policies: list[Policy], config: Mapping[str, Any] | None
) -> tuple[dict[str, EnforcementLevel], dict[str, dict[str, Any]]]:
    """Per policy: its effective enforcement level and its properties (as the CLI's
    ReconcilePolicyPackConfig: the policy's own level, then "all", then the policy's
    entry)."""
    config = config or {}
    levels: dict[str, EnforcementLevel] = {}
    props: dict[str, dict[str, Any]] = {}
    names = {p.name for p in policies}
    unknown = sorted(set(config) - names - {"all"})
    if unknown:
        raise ValueError(f"config names unknown policies: {', '.join(unknown)}")

    def level_of(value: Any) -> EnforcementLevel | None:
        raw = value if isinstance(value, str) else (value or {}).get("enforcementLevel")
        if raw is None:
            return None
        if raw not in _LEVELS:
            raise ValueError(f"{raw!r} is not an enforcement level")
        return _LEVELS[raw]

    all_level = level_of(config.get("all"))
    for p in policies:
        level = p.enforcement_level or EnforcementLevel.ADVISORY
        level = all_level or level
        entry = config.get(p.name)
        level = level_of(entry) or level
        levels[p.name] = level
        if isinstance(entry, Mapping):
            props[p.name] = {k: v for k, v in entry.items() if k != "enforcementLevel"}
    return levels, props


def _run(result: Any) -> Any:
    if isawaitable(result):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(result)
        finally:
            loop.close()
    return result


def _options(parent: str | None) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=parent,
    )


def _collector(
    sink: list[Violation], policy: str, level: EnforcementLevel, resource_urn: str | None
) -> Callable[[str, str | None], None]:
    """A ``report_violation`` that appends to ``sink``: for resource policies the URN is
    always the analysed resource's (as in the engine), for stack policies the one given."""

    def report(message: str, urn: str | None = None) -> None:
        sink.append(Violation(policy, message, resource_urn or urn or None, level))

    return report


def _cannot_run(policy: Policy, e: UnknownValueError, what: str = "policy") -> str:
    return f"can't run {what} '{policy.name}' from policy pack '{PACK_NAME}@v0.0.1' during preview: {e.message}"


def evaluate(
    resources: Iterable[Any],
    config: Mapping[str, Any] | None = None,
    *,
    stack_tags: Mapping[str, str] | None = None,
) -> list[Violation]:
    """Run every resource and stack policy of the pack; see the module docstring."""
    state.reset()
    records = [_record(r) for r in resources]
    policies = all_policies()
    levels, props_config = _split_config(policies, config)
    tags = dict(stack_tags or {})
    out: list[Violation] = []

    resource_policies = [p for p in policies if isinstance(p, ResourceValidationPolicy)]
    stack_policies = [p for p in policies if isinstance(p, StackValidationPolicy)]

    def provider_of(r: ResourceRecord) -> PolicyProviderResource | None:
        if r.provider is None:
            return None
        provider_props = unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(r.provider))))
        return PolicyProviderResource("pulumi:providers:kubernetes", provider_props, "", "")

    final_props: dict[str, dict[str, Any]] = {}

    def validation_args(r: ResourceRecord, props: dict[str, Any], policy: str, *, keep_unknowns: bool) -> Any:
        # What the engine hands a resource policy: a fresh proxy over a copy of the props.
        return ResourceValidationArgs(
            r.resource_type,
            unknown_checking_proxy(deserialize_properties(copy.deepcopy(props), keep_unknowns)),
            r.urn,
            r.name,
            _options(r.parent),
            provider_of(r),
            props_config.get(policy),
            tags,
        )

    for r in records:
        props: dict[str, Any] = copy.deepcopy(dict(r.props))
        # First pass, as the engine: remediations, each seeing the previous one's result.
        for p in resource_policies:
            if levels[p.name] != EnforcementLevel.REMEDIATE or not p.has_remediation():
                continue
            args = validation_args(r, props, p.name, keep_unknowns=True)
            try:
                new = _run(p.remediate(args))
            except UnknownValueError as e:
                out.append(Violation(p.name, _cannot_run(p, e, "remediation"), r.urn, EnforcementLevel.ADVISORY))
                continue
            if new:
                props = to_plain(new)
        final_props[r.urn] = props
        # Second pass: analysis of the (remediated) inputs.
        for p in resource_policies:
            level = levels[p.name]
            if level == EnforcementLevel.DISABLED:
                continue
            if level == EnforcementLevel.REMEDIATE:
                level = EnforcementLevel.MANDATORY
            found: list[Violation] = []
            report = _collector(found, p.name, level, r.urn)
            args = validation_args(r, props, p.name, keep_unknowns=False)
            try:
                _run(p.validate(args, report))
            except UnknownValueError as e:
                found.append(Violation(p.name, _cannot_run(p, e), r.urn, EnforcementLevel.ADVISORY))
            out.extend(found)

    # Stack policies see every resource (here: the remediated inputs stand in for outputs).
    by_urn: dict[str, PolicyResource] = {}
    stack_resources: list[PolicyResource] = []
    for r in records:
        res = PolicyResource(
            r.resource_type,
            unknown_checking_proxy(deserialize_properties(copy.deepcopy(final_props[r.urn]))),
            r.urn,
            r.name,
            _options(r.parent),
            provider_of(r),
            None,
            [],
            {},
        )
        by_urn[r.urn] = res
        stack_resources.append(res)
    for r in records:
        if r.parent and r.parent in by_urn:
            by_urn[r.urn].parent = by_urn[r.parent]

    for sp in stack_policies:
        level = levels[sp.name]
        if level == EnforcementLevel.DISABLED:
            continue
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY

        report_stack = _collector(out, sp.name, level, None)
        try:
            _run(sp.validate(StackValidationArgs(stack_resources, props_config.get(sp.name), tags), report_stack))
        except UnknownValueError as e:
            out.append(Violation(sp.name, _cannot_run(sp, e), None, EnforcementLevel.ADVISORY))
    return out
