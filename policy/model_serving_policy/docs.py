"""The rule reference of the docs site (``docs/policy.md``), generated from the policies themselves.

``python -m model_serving_policy.docs`` (run in ``policy/``) rewrites the generated part
of that page; ``tests/policy`` fails when it is out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel, Policy, ResourceValidationPolicy

from .pack import all_policies

BEGIN = "<!-- BEGIN GENERATED: python -m model_serving_policy.docs -->"
END = "<!-- END GENERATED -->"
RULES_MD = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def _type(prop: dict[str, Any]) -> str:
    kinds = prop.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    out = []
    for k in kinds:
        if k == "array":
            out.append(f"array of {prop.get('items', {}).get('type', 'any')}")
        elif k == "object" and isinstance(prop.get("additionalProperties"), dict):
            out.append("object (name → values)")
        else:
            out.append(k)
    text = " or ".join(out)
    if "enum" in prop:
        text += ": " + " \\| ".join(f"`{v}`" for v in prop["enum"])
    return text


def _default(prop: dict[str, Any]) -> str:
    value = prop.get("default")
    if value is None:
        return "unset"
    text = json.dumps(value, separators=(", ", ": "))
    return f"`{text}`".replace("|", "\\|")


def _level(policy: Policy) -> str:
    return (policy.enforcement_level or EnforcementLevel.ADVISORY).value


def rules_markdown() -> str:
    policies = all_policies()
    lines = [
        "| Rule | Scope | Default level | Remediation |",
        "|---|---|---|---|",
    ]
    for p in policies:
        scope = "resource" if isinstance(p, ResourceValidationPolicy) else "stack"
        remediates = isinstance(p, ResourceValidationPolicy) and p.has_remediation()
        lines.append(f"| [`{p.name}`](#{p.name}) | {scope} | {_level(p)} | {'yes' if remediates else ''} |")
    for p in policies:
        scope = "resource" if isinstance(p, ResourceValidationPolicy) else "stack"
        lines += ["", f"#### {p.name}", "", f"*{scope} policy, default level **{_level(p)}***", "", p.description]
        if p.remediation_steps:
            lines += ["", f"Fix: {p.remediation_steps}"]
        props = {k: v for k, v in (p.config_schema.properties if p.config_schema else {}).items() if k != "exemptions"}
        if props:
            lines += ["", "| Parameter | Type | Default | Meaning |", "|---|---|---|---|"]
            for key, prop in props.items():
                lines.append(f"| `{key}` | {_type(prop)} | {_default(prop)} | {prop.get('description', '')} |")
        exemptible = bool(p.config_schema and "exemptions" in p.config_schema.properties)
        lines += ["", "Takes `exemptions`." if exemptible else "Takes no exemptions."]
    return "\n".join(lines) + "\n"


def render(current: str) -> str:
    """``current`` (the text of docs/policy.md) with its generated part replaced."""
    head, sep, rest = current.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{RULES_MD.name} lacks the markers {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n{rules_markdown()}{END}{tail}"


def main() -> int:
    RULES_MD.write_text(render(RULES_MD.read_text()))
    print(f"updated {RULES_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
