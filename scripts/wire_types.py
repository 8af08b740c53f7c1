#!/usr/bin/env python3
"""wire_types.py [--write]: ``components/specs/wire.py``, the builders' wire forms as TypedDicts.

Generated from the Kubernetes OpenAPI schema the tests validate every emitted object against (the
``kubernetes-validate`` package, at ``tests.kube_checks.KUBERNETES_VERSION``), for the built-in kinds the program
emits (:data:`KINDS`) and every type their fields reach, so that mypy (``make lint``) rejects a misspelt or
mistyped nested field in a builder, not the API server. ``--write`` rewrites the file; without it the script exits 1
when the file is stale (``tests/unit/test_wire_types.py`` checks the same).

The mapping: string ``str``, integer ``int``, boolean ``bool``, number ``float``, int-or-string ``int | str``,
quantity ``str`` (the builders write quantities as strings), array ``list[...]``, map (``additionalProperties``)
``dict[str, ...]``, an object without properties ``dict[str, Any]``. Every TypedDict is ``total=False``;
``Required[...]`` marks the fields the schema requires, and a kind's ``apiVersion``, ``kind`` and ``metadata``
(every builder sets them; ``apiVersion`` and ``kind`` are ``Literal``). A kind's ``status`` is left out: the
server writes it, a builder never does. :data:`OVERRIDES` types the fields a builder fills with a
``pulumi.Output`` (which the Kubernetes provider resolves) instead of a plain value.
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from kubernetes_validate import utils
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config.policy_facts import KINDS as EMITTED  # noqa: E402
from tests.kube_checks import KUBERNETES_VERSION  # noqa: E402

OUTPUT = ROOT / "components" / "specs" / "wire.py"
COMMAND = ".venv/bin/python scripts/wire_types.py --write"


# Fields a builder fills with a pulumi.Output: the image reference (ModelService's built or locked image) and the
# hub token (a secret). A plain ``str`` would accept the Output only because the builders take it as ``Any``.
OVERRIDES = {
    ("io.k8s.api.core.v1.Container", "image"): "str | Output[str]",
    ("io.k8s.api.core.v1.Secret", "stringData"): "dict[str, str | Output[str]]",
}

# Types written as Python types rather than TypedDicts.
SCALARS = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "int | str",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "str",
}
PRIMITIVES = {"string": "str", "integer": "int", "boolean": "bool", "number": "float"}
KIND_FIELDS = ("apiVersion", "kind", "metadata")
SERVER_FIELDS = ("status",)


def schema_dir() -> str:
    """The schema kubernetes-validate checks against for KUBERNETES_VERSION (strict: unknown fields fail)."""
    version = [v for v in utils.all_versions() if Version(utils.major_minor(v)) <= Version(KUBERNETES_VERSION)][-1]
    return f"v{version}-local-strict"


def definitions() -> dict[str, Any]:
    path = resources.files("kubernetes_validate") / "kubernetes-json-schema" / schema_dir() / "_definitions.json"
    defs: dict[str, Any] = json.loads(path.read_text())["$defs"]
    return defs


def builtin_kinds(defs: Mapping[str, Any]) -> list[str]:
    """The schema's names of the kinds the program emits (``components/config/policy_facts.py``, declared once) that
    are built in; custom resources (no definition in the schema) stay plain dicts. Their nested types follow."""
    names = []
    for emitted in EMITTED:
        group, _, version = emitted.api_version.rpartition("/")
        name = f"io.k8s.api.{group.split('.')[0] if group else 'core'}.{version}.{emitted.kind}"
        if name in defs:
            names.append(name)
    return sorted(names)


KINDS = builtin_kinds(definitions())


def _ref(prop: Mapping[str, Any]) -> str | None:
    ref = prop.get("$ref")
    return str(ref).rpartition("/")[2] if ref is not None else None


def _primitive(prop: Mapping[str, Any]) -> str:
    types = prop.get("type", [])
    kinds = [t for t in ([types] if isinstance(types, str) else types) if t != "null"]
    if len(kinds) != 1:
        raise ValueError(f"no single type in {prop}")
    return kinds[0]


def _is_struct(schema: Mapping[str, Any]) -> bool:
    return "properties" in schema


class Generator:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs
        self.names: dict[str, str] = {}  # definition -> TypedDict name

    def closure(self) -> list[str]:
        """The kinds and every struct definition their fields reach."""
        seen: list[str] = []
        todo = list(KINDS)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.append(name)
            for _, prop in self.fields(name):
                todo += [ref for ref in self._refs(prop) if _is_struct(self.defs[ref])]
        return sorted(seen)

    def _refs(self, prop: Mapping[str, Any]) -> Iterator[str]:
        for part in (prop, prop.get("items") or {}, prop.get("additionalProperties") or {}):
            if isinstance(part, Mapping) and (ref := _ref(part)) is not None:
                yield ref

    def fields(self, name: str) -> list[tuple[str, Mapping[str, Any]]]:
        props: Mapping[str, Any] = self.defs[name]["properties"]
        skip = SERVER_FIELDS if name in KINDS else ()
        return [(field, props[field]) for field in sorted(props) if field not in skip]

    def type_of(self, owner: str, field: str, prop: Mapping[str, Any]) -> str:
        if (owner, field) in OVERRIDES:
            return OVERRIDES[(owner, field)]
        if owner in KINDS and field in ("apiVersion", "kind"):
            (value,) = prop["enum"]
            return f'Literal["{value}"]'
        return self._type(prop)

    def _type(self, prop: Mapping[str, Any]) -> str:
        ref = _ref(prop)
        if ref is not None:
            if ref in SCALARS:
                return SCALARS[ref]
            target = self.defs[ref]
            return self.names[ref] if _is_struct(target) else self._type(target)
        kind = _primitive(prop)
        if kind == "array":
            return f"list[{self._type(prop['items'])}]"
        if kind == "object":
            values = prop.get("additionalProperties")
            return f"dict[str, {self._type(values)}]" if isinstance(values, Mapping) else "dict[str, Any]"
        return PRIMITIVES[kind]

    def render(self) -> str:
        closure = self.closure()
        for name in closure:
            short = name.rpartition(".")[2]
            if short in self.names.values():
                raise ValueError(f"two definitions are named {short}: qualify one")
            self.names[name] = short
        blocks = [self._typed_dict(name) for name in sorted(closure, key=lambda n: self.names[n])]
        kinds = ", ".join(self.names[k] for k in KINDS)
        package = metadata.version("kubernetes-validate")
        about = (
            f"The wire forms of the built-in kinds the builders emit ({kinds}) and of the types their fields reach, "
            f"from the Kubernetes {KUBERNETES_VERSION} OpenAPI schema of kubernetes-validate {package} (the one "
            "tests/kube_checks.py validates every object against). Fields the schema requires are ``Required``; a "
            "``pulumi.Output`` may stand where the generator's OVERRIDES say (a Container's image, a Secret's "
            'stringData)."""'
        )
        header = [
            f'"""Generated by scripts/wire_types.py (``{COMMAND}``): do not edit.',
            "",
            textwrap.fill(about, width=116, break_on_hyphens=False),
            "",
            "from __future__ import annotations",
            "",
            "from typing import TYPE_CHECKING, Any, Literal, Required, TypedDict",
            "",
            "if TYPE_CHECKING:",
            "    from pulumi import Output",
        ]
        return "\n".join(header) + "\n\n\n" + "\n\n\n".join(blocks) + "\n"

    def _typed_dict(self, name: str) -> str:
        short = self.names[name]
        required = set(self.defs[name].get("required", ())) | (set(KIND_FIELDS) if name in KINDS else set())
        fields = []
        for field, prop in self.fields(name):
            annotation = self.type_of(name, field, prop)
            fields.append((field, f"Required[{annotation}]" if field in required else annotation))
        if all(field.isidentifier() and not keyword.iskeyword(field) for field, _ in fields):
            body = [f'    """{name}"""', ""] + [f"    {field}: {annotation}" for field, annotation in fields]
            return f"class {short}(TypedDict, total=False):\n" + "\n".join(body)
        # A field that is no Python identifier (`from`, `except`): the functional syntax, its types as strings
        # (evaluated at run time, where the later classes do not exist yet).
        items = [f'        "{field}": "{annotation}",' for field, annotation in fields]
        lines = [f"{short} = TypedDict(", f'    "{short}",', "    {", *items, "    },", "    total=False,", ")"]
        return f"# {name}\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help=f"rewrite {OUTPUT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    text = Generator(definitions()).render()
    if args.write:
        OUTPUT.write_text(text)
        return 0
    if not OUTPUT.exists() or OUTPUT.read_text() != text:
        print(f"{OUTPUT.relative_to(ROOT)} is out of date: run {COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
