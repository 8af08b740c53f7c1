"""Generated from the schema: the config reference (``docs/config.md``), the component provider's input types
(``provider/model_serving_types.py``) and the policy pack's copy of the exporters' metric lists
(``policy/model_serving_policy/exporters.py``: the pack runs without this package). ``python -m
components.config.docs --write`` rewrites them; without ``--write`` it exits 1 when one is stale
(``tests/unit/test_config_schema.py`` checks the same)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from components.config import policy_settings
from components.config.declare import EMPTY, REQUIRED, Block, BlockList, Derived, Key, keys, nested, type_name
from components.config.engines import ENGINES, EXPORTER_ANNOTATION, EXPORTERS, GATEWAYS, SCRAPE_METRICS
from components.config.model import ModelConfig
from components.config.policy_config import PolicyConfig
from components.config.pool import GpuPoolConfig
from components.config.stack import GatewayConfig, MonitoringConfig, StackConfig, StackSecrets

ROOT = Path(__file__).resolve().parents[2]
CONFIG_MD = ROOT / "docs" / "config.md"
PROVIDER_TYPES = ROOT / "provider" / "model_serving_types.py"
POLICY_EXPORTERS = ROOT / "policy" / "model_serving_policy" / "exporters.py"
COMMAND = "python -m components.config.docs --write"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'{k}: "{v}"' for k, v in value.items()) + "}"
    return str(value)


def default_text(k: Key) -> str:
    """The default as the docs print it (markdown)."""
    if k.default is REQUIRED:
        return "required"
    if k.default is EMPTY:
        return "each key's default"
    if isinstance(k.default, Derived):
        return k.default.doc
    if k.default is None:
        return k.unset or "none"
    return f"`{_value(k.default)}`"


def rows(cls: type, prefix: str = "") -> Iterator[tuple[str, Key]]:
    """Every key under ``cls`` with its path relative to the block, objects before their keys (a list's item keys
    as ``list[].key``)."""
    for k in keys(cls):
        path = f"{prefix}{k.name}"
        yield path, k
        if isinstance(k.kind, Block):
            yield from rows(k.kind.cls, f"{path}.")
        elif isinstance(k.kind, BlockList):
            yield from rows(k.kind.cls, f"{path}[].")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(entries: Sequence[tuple[str, Key]]) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, k in entries:
        kind = "object" if isinstance(k.kind, Block) else k.kind.doc
        lines.append(f"| `{path}` | {_cell(kind)} | {_cell(default_text(k))} | {_cell(k.doc)} |")
    return lines


def config_markdown() -> str:
    top = [(k.name, k) for k in (*keys(StackConfig), *keys(StackSecrets))]
    engines = ["| engine | GPUs | port | liveness / readiness | `probes.modelLoadSeconds` | autoscaling metric |"]
    engines.append("|---|---|---|---|---|---|")
    for name, e in ENGINES.items():
        gpus = "at least 1 (default 1)" if e.uses_gpus else "none (CPU only)"
        metric = _value(dict(e.metric)).replace('"', "")
        engines.append(
            f"| `{name}` | {gpus} | {e.port} | `{e.liveness}` / `{e.readiness}` | {e.model_load_seconds} | `{metric}` |"
        )
    lines = [
        f"<!-- Generated from the schema in components/config/ by `{COMMAND}`: do not edit. -->",
        "# Config reference",
        "",
        "Everything lives under the `model-serving:` namespace of a stack file (`stacks/Pulumi.<stack>.yaml`).",
        "The program checks all of it before it registers a single resource. Mistakes stop it with one message",
        "that lists every mistake, one line each, naming its key, for example",
        "`invalid stack config: model-serving:models[0].autoscaling.maxReplicas must be >= minReplicas (got 1 < 2)`.",
        "Unknown keys are mistakes too (typos do not pass silently). The component provider's inputs",
        "(`ModelService`, `GpuNodePool`) are the same keys.",
        "",
        "## Top level",
        "",
        *_table(top),
        "",
        "## `monitoring`",
        "",
        *_table(list(rows(MonitoringConfig))),
        "",
        "## `gateway`",
        "",
        *_table(list(rows(GatewayConfig))),
        "",
        "## `gpuPool`",
        "",
        *_table(list(rows(GpuPoolConfig))),
        "",
        "## `models[i]`",
        "",
        *_table(list(rows(ModelConfig))),
        "",
        "## `policy`",
        "",
        *_table(list(rows(PolicyConfig))),
        "",
        "## Engines",
        "",
        "What `models[i].engine` implies; the defaults above that say *per engine* come from here.",
        "",
        *engines,
        "",
        "## Metrics",
        "",
        "What each scrape target exports (`components/config/engines.py`, the one list): `autoscaling.metric.name`",
        "must be one its engine exports, and the policy pack's `scraped-metrics` rule checks every metric an HPA,",
        "a KEDA trigger or an alert names against the exporters scraped for its model. Prometheus adds",
        ", ".join(f"`{m}`" for m in SCRAPE_METRICS) + " to every target. Scope `pods`: its own pods' metrics;",
        "`nodes`: every pod's on its nodes; `cluster`: run by the cluster's monitoring, outside the stack.",
        "",
        "| exporter | scope | metrics |",
        "|---|---|---|",
        *(
            f"| `{e.name}`: {_cell(e.doc)} | {e.scope} | {', '.join(f'`{m}`' for m in e.metrics)} |"
            for e in EXPORTERS.values()
        ),
        "",
        "`autoscaling.wake` (scale from zero) reads one of these gateways' request counters for the model's Service:",
        "",
        "| wake | metric | labels |",
        "|---|---|---|",
        *(
            f"| `{name}` | `{g.metric}` | {', '.join(f'`{k}={v}`' for k, v in g.labels.items())} |"
            for name, g in GATEWAYS.items()
        ),
    ]
    return "\n".join(lines) + "\n"


# --- provider input types -------------------------------------------------------------------------


def _docstring(text: str, indent: str) -> list[str]:
    """A docstring the provider host reads (a one-line string, or adjacent strings in parentheses: one value)."""
    text = text[0].upper() + text[1:] if text else text
    if len(indent) + len(text) + 6 <= 120:
        return [f'{indent}"""{text}"""']
    text = text.replace('"', "'")  # plain string literals: no escapes
    words = textwrap.wrap(text, 120 - len(indent) - 7, break_long_words=False, break_on_hyphens=False)
    parts = [f"{line} " for line in words[:-1]] + words[-1:]
    return [f"{indent}(", *(f'{indent}    "{part}"' for part in parts), f"{indent})"]


def _field_doc(k: Key) -> str:
    doc = k.doc.rstrip(".")
    if k.resource_name:
        return f"{doc}. Default: the resource name."
    if k.required:
        return f"{doc}."
    return f"{doc}. Default: {default_text(k).replace('`', '')}."


def _annotation(k: Key) -> str:
    py = k.kind.py
    return f"Required[{py}]" if k.required and not k.resource_name else py


def _typed_dict(name: str, doc: str, entries: Sequence[tuple[str, str, str]]) -> list[str]:
    lines = ["", "", f"class {name}(TypedDict, total=False):", *_docstring(doc, "    "), ""]
    for field, annotation, field_doc in entries:
        lines += [f"    {field}: {annotation}", *_docstring(field_doc, "    ")]
    return lines


def _block_types(cls: type, done: set[type], extra: Sequence[tuple[str, str, str]] = ()) -> list[str]:
    """The TypedDict of ``cls`` after those of its nested objects (the host needs real types, defined first)."""
    if cls in done:
        return []
    done.add(cls)
    lines: list[str] = []
    for k in keys(cls):
        if isinstance(k.kind, Block | BlockList):
            lines += _block_types(k.kind.cls, done)
    groups = nested(cls)
    for head, tails in groups.items():
        group = [k for k in keys(cls) if k.name.startswith(f"{head}.")]
        entries = [(t, _annotation(k), _field_doc(k)) for t, k in zip(tails, group, strict=True)]
        lines += _typed_dict(head[0].upper() + head[1:], f"The {head} keys of {type_name(cls)}.", entries)
    entries = []
    for k in keys(cls):
        head = k.name.split(".")[0]
        if head in groups:
            if not any(e[0] == head for e in entries):
                entries.append((head, head[0].upper() + head[1:], f"{head[0].upper() + head[1:]} of this object."))
            continue
        entries.append((k.name, _annotation(k), _field_doc(k)))
    replaced = {e[0]: e for e in extra}
    entries = [replaced.pop(e[0], e) for e in entries] + list(replaced.values())
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    return lines + _typed_dict(type_name(cls), doc, entries)


def provider_types() -> str:
    """``ModelService`` takes one entry of ``models``, the ``gpuPool`` it runs on and the stack's secrets (a
    model's ``hubToken`` input is the token itself); ``GpuNodePool`` takes the ``gpuPool`` keys."""
    secrets = [(k.name, _annotation(k), _field_doc(k)) for k in keys(StackSecrets)]
    pool_key = next(k for k in keys(StackConfig) if k.name == "gpuPool")
    # (Its first clause: the rest says when the stack program deploys the pool, which is no input's concern.)
    pool_doc = f"{pool_key.doc.split(';')[0]}: give it the same block as its GpuNodePool. Default: each key's default."
    lines = [
        '"""Input types of the model-serving components, generated from the schema in components/config/ by',
        f"``{COMMAND}`` (do not edit). The component provider host reads these annotations and",
        "docstrings to infer the package schema.",
        "",
        "No ``from __future__ import annotations``: the host needs the annotations as real types.",
        '"""',
        "",
        "from typing import Any, Required, TypedDict",
        "",
        "import pulumi",
    ]
    monitoring_key = next(k for k in keys(StackConfig) if k.name == "monitoring")
    monitoring_doc = f"{monitoring_key.doc}: the stack's monitoring block. Default: each key's default."
    gateway_key = next(k for k in keys(StackConfig) if k.name == "gateway")
    gateway_doc = f"{gateway_key.doc}: the stack's gateway block. Default: each key's default."
    done: set[type] = set()
    lines += _block_types(GpuPoolConfig, done)
    lines += _block_types(MonitoringConfig, done)
    lines += _block_types(GatewayConfig, done)
    lines += _block_types(
        ModelConfig,
        done,
        extra=[
            *secrets,
            ("gpuPool", type_name(GpuPoolConfig), pool_doc),
            ("monitoring", type_name(MonitoringConfig), monitoring_doc),
            ("gateway", type_name(GatewayConfig), gateway_doc),
        ],
    )
    return "\n".join(lines) + "\n"


def policy_exporters() -> str:
    """The exporters' metric lists as the policy pack imports them."""
    lines = [
        f'"""Generated from components/config/engines.py by ``{COMMAND}`` (do not edit).',
        "",
        "What each kind of scrape target exports, for the ``scraped-metrics`` rule. A workload says which it is in its",
        "``EXPORTER_ANNOTATION``; scope ``pods``: its own pods' metrics, ``nodes``: every pod's on its nodes,",
        "``cluster``: run by the cluster's monitoring outside the stack.",
        '"""',
        "",
        f"EXPORTER_ANNOTATION = {json.dumps(EXPORTER_ANNOTATION)}",
        "",
        "# Prometheus adds these to every target it scrapes.",
        f"SCRAPE_METRICS = ({', '.join(map(json.dumps, SCRAPE_METRICS))})",
        "",
        "# name: (scope, metrics)",
        "EXPORTERS: dict[str, tuple[str, tuple[str, ...]]] = {",
    ]
    for e in EXPORTERS.values():
        lines += [f"    {json.dumps(e.name)}: (", f"        {json.dumps(e.scope)},"]
        if len(e.metrics) == 1:  # as ruff formats it
            lines.append(f"        ({json.dumps(e.metrics[0])},),")
        else:
            lines += ["        (", *(f"            {json.dumps(m)}," for m in e.metrics), "        ),"]
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    generated = {CONFIG_MD: config_markdown(), PROVIDER_TYPES: provider_types(), POLICY_EXPORTERS: policy_exporters()}
    return generated | policy_settings.outputs(COMMAND)  # the pack's kinds and each stack's settings


def stale() -> list[Path]:
    return [path for path, text in outputs().items() if not path.exists() or path.read_text() != text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.config.docs", description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the generated files")
    args = parser.parse_args(argv)
    if args.write:
        for path, text in outputs().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
        return 0
    for path in stale():
        print(f"{path.relative_to(ROOT)} is out of date: run {COMMAND}", file=sys.stderr)
    return 1 if stale() else 0


if __name__ == "__main__":
    raise SystemExit(main())
