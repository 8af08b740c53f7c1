"""How the schema declares a key: a dataclass field whose metadata holds its kind, default and one line of docs.

    @dataclass(frozen=True, kw_only=True)
    class Rollout:
        max_surge: int = key(Int(0, 100), 0, "extra pods during a rollout")

The config key is the field name in camelCase (``maxSurge``) unless ``name`` says otherwise; a dotted name
(``nodeClassRef.group``) reads a key of a nested object that has no dataclass of its own. The default is a
value, None (unset), :data:`REQUIRED`, :data:`EMPTY` (an object of its keys' defaults) or :class:`Derived`
(computed from other keys when the key is unset). A derived default is read like a given value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from components.config.errors import Problems
from components.config.kinds import Kind


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED: Any = _Marker("REQUIRED")
"""The key must be set. A required object key that is unset is read as ``{}`` (its own keys say what is missing)."""
EMPTY: Any = _Marker("EMPTY")
"""An object key's default: unset reads as ``{}``, that is every default of the object."""


class UnknownValueError(Exception):
    """Raised by :class:`Scope` lookups of a value that was wrong: whatever derives from it is skipped."""


class Scope(Protocol):
    """What a derived default or computed field sees while a block is read."""

    path: str
    problems: Problems

    def __getitem__(self, attr: str) -> Any:
        """The value read for ``attr`` in this block or the nearest enclosing one; UnknownValueError if it was wrong."""
        ...

    def raw(self, name: str) -> object:
        """The value given for config key ``name`` (dotted for nested keys) in this block, None when unset."""
        ...

    def key(self, name: str) -> str:
        """The key path of ``name`` in this block."""
        ...

    @property
    def outer(self) -> Scope: ...


@dataclass(frozen=True)
class Derived:
    """A default computed from other keys: ``doc`` is what the docs print, ``compute`` the value."""

    doc: str
    compute: Callable[[Scope], Any]


class Block(Kind):
    """An object whose keys a dataclass declares."""

    def __init__(self, cls: type, doc: str = "object") -> None:
        self.cls, self.doc, self.py = cls, doc, type_name(cls)


class BlockList(Kind):
    """A list of objects whose keys a dataclass declares, read as a tuple; ``what`` names the items in messages.

    Non-empty unless ``may_be_empty`` (then its default is usually ``()``).
    """

    def __init__(self, cls: type, what: str, *, may_be_empty: bool = False) -> None:
        self.cls, self.what, self.may_be_empty = cls, what, may_be_empty
        self.doc = "list of objects" if may_be_empty else "list (≥ 1)"
        self.py = f"list[{type_name(cls)}]"


class Secret(Kind):
    """A secret string: set with ``pulumi config set --secret``, read by the program, never by the schema."""

    doc, py = "secret string", "pulumi.Input[str]"


@dataclass(frozen=True)
class Key:
    attr: str
    name: str
    kind: Kind
    default: Any
    doc: str
    unset: str = ""
    resource_name: bool = False
    override: Callable[[Scope], Any] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def key(
    kind: Kind,
    default: Any = REQUIRED,
    doc: str = "",
    *,
    name: str = "",
    unset: str = "",
    resource_name: bool = False,
    override: Callable[[Scope], Any] | None = None,
) -> Any:
    """Declare a config key as a dataclass field (see the module docstring).

    ``unset``: what a default of None means, for the docs. ``resource_name``: components taking this block as
    inputs default the key to their resource name. ``override``: a value that replaces whatever is given
    (None when there is none), e.g. ``imageRefOverride``.
    """
    spec = {
        "kind": kind,
        "default": default,
        "doc": doc,
        "name": name,
        "unset": unset,
        "resource_name": resource_name,
        "override": override,
    }
    metadata = {"config": spec}
    if default is REQUIRED or isinstance(default, Derived):
        return dataclasses.field(metadata=metadata)
    if default is EMPTY:
        assert isinstance(kind, Block)
        if _constructible(kind.cls):
            return dataclasses.field(default_factory=kind.cls, metadata=metadata)
        return dataclasses.field(metadata=metadata)
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def computed(compute: Callable[[Scope], Any]) -> Any:
    """A field that no key sets, computed while its block is read (after the fields declared before it)."""
    return dataclasses.field(default=None, metadata={"computed": compute})


def _constructible(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


def camel(attr: str) -> str:
    head, *rest = attr.split("_")
    return head + "".join(part.capitalize() for part in rest)


@cache
def keys(cls: type) -> tuple[Key, ...]:
    """The keys a block declares, in declaration order."""
    found = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("config")
        if spec is not None:
            found.append(Key(attr=f.name, **{**spec, "name": spec["name"] or camel(f.name)}))
    return tuple(found)


def fields(cls: type) -> Iterator[tuple[str, Key | Callable[[Scope], Any]]]:
    """Keys and computed fields, in declaration order: the order a block is read in."""
    by_attr = {k.attr: k for k in keys(cls)}
    for f in dataclasses.fields(cls):
        if f.name in by_attr:
            yield f.name, by_attr[f.name]
        elif "computed" in f.metadata:
            yield f.name, f.metadata["computed"]


def top_names(cls: type) -> tuple[str, ...]:
    """The key names a block's object may hold (a dotted key contributes its first part), in order."""
    return tuple(dict.fromkeys(k.name.split(".")[0] for k in keys(cls)))


def nested(cls: type) -> Mapping[str, tuple[str, ...]]:
    """Objects without a dataclass (``nodeClassRef``) and the key names they hold."""
    groups: dict[str, list[str]] = {}
    for k in keys(cls):
        if "." in k.name:
            head, tail = k.name.split(".", 1)
            groups.setdefault(head, []).append(tail)
    return {head: tuple(tails) for head, tails in groups.items()}


def type_name(cls: type) -> str:
    """A block's name as a type (provider input types): its ``name`` attribute, else the class name."""
    return str(getattr(cls, "type_name", cls.__name__))
