"""Reads the raw ``model-serving:`` config against the schema: every key checked, every mistake collected, and
the typed, frozen config returned, or one :class:`ConfigError` listing them all before a resource exists."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.config.declare import (
    EMPTY,
    REQUIRED,
    Block,
    BlockList,
    Derived,
    Key,
    UnknownValueError,
    fields,
    keys,
    top_names,
)
from components.config.declare import nested as nested_keys
from components.config.errors import Problems
from components.config.kinds import INVALID, InvalidValueError, Strings, join, kind_of
from components.config.rules import BLOCK_RULES, At
from components.config.stack import StackConfig, StackSecrets
from components.config.stack_rules import STACK_RULES, StackView


class _Scope:
    """One block being read: the values read so far, and the block it sits in."""

    def __init__(self, path: str, raw: Mapping[str, Any], problems: Problems, outer: _Scope | None) -> None:
        self.path, self._raw, self.problems, self._outer = path, raw, problems, outer
        self.values: dict[str, Any] = {}

    def __getitem__(self, attr: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if attr in scope.values:
                if scope.values[attr] is INVALID:
                    raise UnknownValueError(attr)
                return scope.values[attr]
            scope = scope._outer
        raise KeyError(attr)

    @property
    def outer(self) -> _Scope:
        assert self._outer is not None
        return self._outer

    def raw(self, name: str) -> object:
        value: Any = self._raw
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def key(self, name: str) -> str:
        return join(self.path, name)


class Reader:
    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def scope(self, cls: type, raw: object, path: str, outer: _Scope | None) -> _Scope | None:
        """Read every key of ``cls`` from ``raw``; None when ``raw`` is not an object."""
        if not isinstance(raw, Mapping):
            self.problems.add(path, f"must be an object (got {kind_of(raw)})")
            return None
        self._unknown(raw, top_names(cls), path)
        for head, tails in nested_keys(cls).items():
            inner = raw.get(head)
            if inner is not None and not isinstance(inner, Mapping):
                self.problems.add(join(path, head), f"must be an object (got {kind_of(inner)})")
            elif inner is not None:
                self._unknown(inner, tails, join(path, head))
        scope = _Scope(path, raw, self.problems, outer)
        for attr, spec in fields(cls):
            try:
                scope.values[attr] = self.key(spec, scope) if isinstance(spec, Key) else spec(scope)
            except UnknownValueError:
                scope.values[attr] = INVALID
        return scope

    def block(self, cls: type, raw: object, path: str, outer: _Scope | None) -> Any:
        """The block read and built, its rules checked; INVALID when anything in it is wrong.

        The rules run even when some of the block's keys are wrong, so that one run reports every mistake: a rule
        that reads a wrong key (INVALID) is skipped, the others still run."""
        before = len(self.problems)
        scope = self.scope(cls, raw, path, outer)
        if scope is None:
            return INVALID
        partial = len(self.problems) > before or any(v is INVALID for v in scope.values.values())
        obj = cls(**scope.values)
        for rule in BLOCK_RULES.get(cls, ()):
            try:
                found = list(rule(obj, At(path, scope._raw)))
            except InvalidValueError:
                continue
            named = {p.path for p in self.problems.found}
            for problem in found:
                if problem.path not in named:  # a key with a mistake of its own: that one says what to fix first
                    self.problems.add(*problem)
        return INVALID if partial or len(self.problems) > before else obj

    def key(self, spec: Key, scope: _Scope) -> Any:
        path = scope.key(spec.name)
        if spec.override is not None and (replaced := spec.override(scope)) is not None:
            return replaced
        value = scope.raw(spec.name)
        if value is None or (isinstance(spec.kind, Strings) and value == []):
            if spec.default is REQUIRED and not isinstance(spec.kind, Block):
                self.problems.add(path, "is required")
                return INVALID
            if spec.default is REQUIRED or spec.default is EMPTY:
                value = {}
            elif isinstance(spec.default, Derived):
                value = spec.default.compute(scope)
            else:
                return dict(spec.default) if isinstance(spec.default, dict) else spec.default
        if isinstance(spec.kind, Block):
            return self.block(spec.kind.cls, value, path, scope)
        if isinstance(spec.kind, BlockList):
            return self.block_list(spec.kind, value, path, scope)
        return spec.kind.read(value, path, self.problems)

    def block_list(self, kind: BlockList, value: object, path: str, scope: _Scope) -> Any:
        if not isinstance(value, list) or not (value or kind.may_be_empty):
            wanted = "a list" if kind.may_be_empty else "a non-empty list"
            self.problems.add(path, f"must be {wanted} of {kind.what} (got {kind_of(value)})")
            return INVALID
        return tuple(self.block(kind.cls, item, f"{path}[{i}]", scope) for i, item in enumerate(value))

    def _unknown(self, raw: Mapping[Any, Any], known: tuple[str, ...], path: str) -> None:
        for name in sorted(set(raw) - set(known), key=str):
            self.problems.add(join(path, str(name)), f"is not a known key (known: {', '.join(known)})")


def parse_stack_config(
    raw: Mapping[str, object], *, has_hub_token: bool = False, has_registry_password: bool = False
) -> StackConfig:
    """Check the raw ``model-serving:`` config and return it typed, or raise one ConfigError with every mistake.

    The secrets are not part of ``raw``; ``has_*`` say whether they are set (models that need them check).
    """
    problems = Problems()
    scope = Reader(problems).scope(StackConfig, raw, "", None)
    if scope is None:
        problems.check()
    assert scope is not None
    pool, models, monitoring = scope.values["gpu_pool"], scope.values["models"], scope.values["monitoring"]
    view = StackView(
        pool=None if pool is INVALID else pool,
        models=[] if models is INVALID else [None if m is INVALID else m for m in models],
        monitoring=None if monitoring is INVALID else monitoring,
        has_hub_token=has_hub_token,
        has_registry_password=has_registry_password,
        gateway=None if scope.values["gateway"] is INVALID else scope.values["gateway"],
    )
    for rule in STACK_RULES:
        for problem in rule(view):
            problems.add(*problem)
    problems.check()
    return StackConfig(**scope.values)


NAMESPACE = "model-serving"


def stack_file_config(path: Path) -> dict[str, Any]:
    """The raw ``model-serving:`` config of a stack file (``stacks/Pulumi.<stack>.yaml``), keys without the
    namespace and without the secrets (``pulumi config set --secret`` writes them there too): what
    :func:`parse_stack_config` reads, for tools that look at a stack outside a Pulumi run."""
    document = yaml.safe_load(path.read_text()) or {}
    prefix = f"{NAMESPACE}:"
    secrets = {k.name for k in keys(StackSecrets)}
    config = (document.get("config") or {}).items()
    return {
        k.removeprefix(prefix): v for k, v in config if k.startswith(prefix) and k.removeprefix(prefix) not in secrets
    }
