"""Policy configuration: JSON schemas with defaults, and resolving a policy's config.

Every policy declares its parameters as JSON-schema properties that carry a
``default``. The Pulumi CLI applies those defaults itself before it calls the pack
(and validates ``--policy-pack-config`` against the schema), but a policy called
directly (tests, :func:`model_serving_policy.evaluate`) may get ``None`` or a partial
dict, so :func:`resolve` applies the same defaults and checks the same types.

Numbers reach a policy through a protobuf ``Struct``, so integers arrive as floats
(``600.0``); :func:`resolve` turns whole floats back into ``int`` for integer
parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyConfigSchema

#: Resource names that count as GPUs, as shell-style patterns (``fnmatch``).
DEFAULT_GPU_RESOURCE_NAMES = [
    "nvidia.com/gpu",
    "nvidia.com/mig-*",
    "nvidia.com/gpu.shared",
    "amd.com/gpu",
]


def string_list_schema(description: str, default: list[str]) -> dict[str, Any]:
    """A parameter holding a list of non-empty strings, the most common kind in this pack."""
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "description": description,
        "default": default,
    }


GPU_RESOURCE_NAMES_SCHEMA: dict[str, Any] = string_list_schema(
    "Extended resource names that count as GPUs (shell-style patterns).", DEFAULT_GPU_RESOURCE_NAMES
)

EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": (
        "Resources this policy skips, matched by namespace, name and optionally kind "
        "(shell-style patterns). Each exemption in use is reported by the "
        "advisory policy 'exempted-resources'."
    ),
    "items": {
        "type": "object",
        "properties": {
            "namespace": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1},
            "kind": {"type": "string", "minLength": 1},
            "reason": {"type": "string", "minLength": 1},
        },
        "required": ["namespace", "name", "reason"],
        "additionalProperties": False,
    },
    "default": [],
}


class ConfigError(ValueError):
    """A policy's configuration does not match its schema."""


def config_schema(properties: Mapping[str, Mapping[str, Any]], *, exemptible: bool = True) -> PolicyConfigSchema:
    """The ``PolicyConfigSchema`` for ``properties`` plus, if ``exemptible``, the common
    ``exemptions``."""
    props = {k: dict(v) for k, v in properties.items()}
    if exemptible:
        props["exemptions"] = EXEMPTIONS_SCHEMA
    return PolicyConfigSchema(properties=copy.deepcopy(props))


def resolve(
    policy_name: str,
    schema: PolicyConfigSchema,
    raw: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Apply the schema defaults to ``raw`` and check each value against its schema."""
    given = dict(raw or {})
    given.pop("enforcementLevel", None)
    result: dict[str, Any] = {}
    for key, prop in schema.properties.items():
        if key in given and given[key] is not None:
            result[key] = _check(f"{policy_name}.{key}", given[key], prop)
        else:
            result[key] = copy.deepcopy(prop.get("default"))
    unknown = sorted(set(given) - set(schema.properties))
    if unknown:
        raise ConfigError(
            f"{policy_name}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(schema.properties))}"
        )
    return result


def _check(path: str, value: Any, prop: Mapping[str, Any]) -> Any:
    kinds = prop.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if value is None and "null" in kinds:
        return None
    for kind in kinds:
        ok, converted = _convert(path, value, kind, prop)
        if ok:
            if "enum" in prop and converted not in prop["enum"]:
                raise ConfigError(f"{path}: {converted!r} is not one of {prop['enum']}")
            if "minimum" in prop and converted < prop["minimum"]:
                raise ConfigError(f"{path}: {converted!r} is below {prop['minimum']}")
            if "minLength" in prop and len(converted) < prop["minLength"]:
                raise ConfigError(f"{path}: must not be empty")
            return converted
    raise ConfigError(f"{path}: expected {' or '.join(kinds)}, got {value!r}")


def _convert(path: str, value: Any, kind: str, prop: Mapping[str, Any]) -> tuple[bool, Any]:
    if kind == "boolean":
        return isinstance(value, bool), value
    if kind == "string":
        return isinstance(value, str), value
    if kind == "integer":
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, int(value) if isinstance(value, float) and value.is_integer() else value
    if kind == "array":
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False, value
        items = prop.get("items", {})
        return True, [_check(f"{path}[{i}]", v, items) for i, v in enumerate(value)]
    if kind == "object":
        if not isinstance(value, Mapping):
            return False, value
        out: dict[str, Any] = {}
        props = prop.get("properties", {})
        for k, v in value.items():
            if k in props:
                out[k] = _check(f"{path}.{k}", v, props[k])
            elif prop.get("additionalProperties") is False:
                raise ConfigError(f"{path}: unknown key {k!r}")
            elif isinstance(prop.get("additionalProperties"), Mapping):
                out[k] = _check(f"{path}.{k}", v, prop["additionalProperties"])
            else:
                out[k] = v
        for req in prop.get("required", []):
            if req not in out:
                raise ConfigError(f"{path}: missing required key {req!r}")
        return True, out
    raise ConfigError(f"{path}: unsupported schema type {kind!r}")  # pragma: no cover
