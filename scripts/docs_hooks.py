"""MkDocs hooks (mkdocs.yml ``hooks:``): the figures of ``bench/results.json`` in the docs, read at build time.

A page's ``<!-- bench: figures -->`` line becomes a table of every headline figure with its goal and whether the
last ``make bench`` met it, and ``<!-- bench: machine -->`` the line saying which run and machine they come from,
so the Performance page never shows other figures than the file the benchmarks wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
FIGURES = "<!-- bench: figures -->"
MACHINE = "<!-- bench: machine -->"

# Each headline key: what it measures, and the unit its value is printed with. A key the file has and this lacks
# is still listed (by its name), so a new figure shows up before anyone describes it.
LABELS: dict[str, tuple[str, str]] = {
    "overhead_ratio": ("mocks, N = 100 models: program / raw program (time), the worst of the repeats", ""),
    "growth_100_over_10": ("mocks: program at N = 100 / N = 10 (time)", ""),
    "peak_rss_mb_100": ("mocks, N = 100: peak memory of the program", " MB"),
    "suite_seconds": ("`pytest tests/unit tests/policy`, wall time", " s"),
    "preview_ratio_raw": ("`pulumi preview` of `prod`: program / raw program", ""),
    "preview_ratio_policy": ("`pulumi preview` of `prod`: with / without the policy pack", ""),
    "image_size_ratio": ("app image / the seed's approach, same base", ""),
    "serving_tokens_per_s_1": ("server, one client, requests of 1 text", " tokens/s"),
    "serving_tokens_per_s_8": ("server, one client, requests of 8 texts", " tokens/s"),
    "serving_tokens_per_s_32": ("server, one client, requests of 32 texts", " tokens/s"),
    "serving_token_time_32_over_1": ("server: time per token, batches of 32 / single texts", ""),
    "serving_p50_ms_c1": ("server: p50 latency, single texts, 1 client", " ms"),
    "serving_p99_ms_c1": ("server: p99 latency, single texts, 1 client", " ms"),
    "serving_p50_ms_c8": ("server: p50 latency, single texts, 8 clients", " ms"),
    "serving_p99_ms_c8": ("server: p99 latency, single texts, 8 clients", " ms"),
    "server_gemm_efficiency": (
        "the server container over HTTP, batch 32: its FLOP/s / a numpy float32 matmul's on the same cores",
        "",
    ),
    "up_ratio_kubectl": ("local cluster, 20 models: `pulumi up` / `kubectl apply` + wait Available", ""),
    "destroy_ratio_kubectl": ("local cluster, 20 models: `pulumi destroy` / `kubectl delete` + wait", ""),
}
NOT_FIGURES = {"generated", "machine", "goals", "goals_at_least", "missed", "skipped", "detail"}


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def figures_table(results: dict[str, Any]) -> str:
    goals: dict[str, float] = results.get("goals") or {}
    floors = set(results.get("goals_at_least") or [])  # goals the figure must reach; the others, not exceed
    missed = set(results.get("missed") or [])
    lines = ["| figure | what it measures | value | goal | |", "|---|---|---|---|---|"]
    for key, value in results.items():
        if key in NOT_FIGURES:
            continue
        what, unit = LABELS.get(key, ("", ""))
        goal = f"{'≥' if key in floors else '≤'} {_number(goals[key])}" if key in goals else ""
        verdict = ("**missed**" if key in missed else "met") if key in goals else ""
        lines.append(f"| `{key}` | {what} | {_number(value)}{unit} | {goal} | {verdict} |")
    return "\n".join(lines)


def machine_line(results: dict[str, Any]) -> str:
    m = results.get("machine") or {}
    text = (
        f"From `bench/results.json` of {results.get('generated', 'an unknown date')}: {m.get('cores', '?')} cores "
        f"({m.get('cpu', 'unknown CPU')}), {m.get('memory_gb', '?')} GB, Python {m.get('python', '?')}"
    )
    pulumi = ((results.get("detail") or {}).get("preview") or {}).get("pulumi")
    if pulumi:
        text += f", Pulumi CLI {pulumi}"
    text += "."
    skipped = results.get("skipped") or {}
    by_reason: dict[str, list[str]] = {}
    for part, why in sorted(skipped.items()):
        by_reason.setdefault(str(why), []).append(f"`{part}`")
    for why, parts in by_reason.items():
        text += f" {', '.join(parts)}: {why}."
    return text


def on_page_markdown(markdown: str, **_: Any) -> str:
    if FIGURES not in markdown and MACHINE not in markdown:
        return markdown
    results = json.loads(RESULTS.read_text())
    return markdown.replace(FIGURES, figures_table(results)).replace(MACHINE, machine_line(results))
