"""``make bench``: component layer cost (mocks, real CLI), suite time, image size, model server speed.

Prints a table and writes ``bench/results.json`` (see the README's Performance section). A part left
out with ``--skip`` (or not named by ``--only``) keeps its figures from the previous results.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from bench import cluster, image, llm, mock, preview, serving, suites
from bench.util import load_average, machine, progress

PARTS = ("mock", "suites", "preview", "image", "serving", "cluster", "llm")
PROFILES = Path(__file__).resolve().parents[1] / ".cache" / "bench"
# key: (goal, what the key measures)
GOALS: dict[str, tuple[float | None, str]] = {
    "overhead_ratio": (1.15, "mocks, N=100: ModelService program / raw program, the worst repeat"),
    "growth_100_over_10": (11.0, "mocks: component program, N=100 / N=10"),
    "peak_rss_mb_100": (None, "mocks, N=100: peak resident memory (MB)"),
    "suite_seconds": (60.0, "unit + policy suites, wall seconds"),
    "preview_ratio_raw": (1.3, "pulumi preview prod: program / raw program"),
    "preview_ratio_policy": (1.5, "pulumi preview prod: with / without policy pack"),
    "image_size_ratio": (0.5, "app image / seed approach's image"),
    "serving_tokens_per_s_1": (None, "server: tokens/s, requests of 1 text, one client"),
    "serving_tokens_per_s_8": (None, "server: tokens/s, requests of 8 texts, one client"),
    "serving_tokens_per_s_32": (None, "server: tokens/s, requests of 32 texts, one client"),
    "serving_token_time_32_over_1": (0.5, "server: time per token, batches of 32 / single texts"),
    "serving_p50_ms_c1": (None, "server: p50 ms, single texts, 1 client"),
    "serving_p99_ms_c1": (None, "server: p99 ms, single texts, 1 client"),
    "serving_p50_ms_c8": (None, "server: p50 ms, single texts, 8 clients"),
    "serving_p99_ms_c8": (None, "server: p99 ms, single texts, 8 clients"),
    "server_gemm_efficiency": (
        0.5,
        "server, batch 32: FLOP/s / a numpy float32 matmul's (the container over HTTP, all cores; "
        "else the encoder in process, 1 thread)",
    ),
    "up_ratio_kubectl": (1.5, "local cluster, 20 models: pulumi up / kubectl apply + wait Available"),
    "destroy_ratio_kubectl": (1.5, "local cluster, 20 models: pulumi destroy / kubectl delete + wait gone"),
    "llm_tokens_per_s_1": (None, "llm (Gemma 3 270M, llama.cpp) through the LoadBalancer: tokens/s, 1 stream"),
    "llm_tokens_per_s_4": (None, "llm through the LoadBalancer: generated tokens/s, 4 concurrent streams"),
    "llm_ttft_p50_ms_4": (None, "llm through the LoadBalancer: time to first token p50 (ms), 4 streams"),
    "llm_ttft_p99_ms_4": (None, "llm through the LoadBalancer: time to first token p99 (ms), 4 streams"),
    "llm_lb_overhead": (1.1, "llm, 4 streams: tokens/s of the same llama-server run bare / through the cluster"),
}
# The keys each part sets (a part that is not run keeps them from the previous results.json). The image part
# also measures the container (detail.serving.container), whose GEMM efficiency then sets server_gemm_efficiency.
PART_KEYS = {
    "mock": ("overhead_ratio", "growth_100_over_10", "peak_rss_mb_100"),
    "suites": ("suite_seconds",),
    "preview": ("preview_ratio_raw", "preview_ratio_policy"),
    "image": ("image_size_ratio",),
    "serving": (*(key for key in GOALS if key.startswith("serving_")), "server_gemm_efficiency"),
    "cluster": ("up_ratio_kubectl", "destroy_ratio_kubectl"),
    "llm": tuple(key for key in GOALS if key.startswith("llm_")),
}

TARGETS = {key: goal for key, (goal, _) in GOALS.items() if goal is not None}
# Goals that are floors (the figure must reach them); every other goal is a ceiling.
AT_LEAST = ("server_gemm_efficiency",)


def missed(key: str, value: float | None) -> bool:
    if key not in TARGETS or value is None:
        return False
    return value < TARGETS[key] if key in AT_LEAST else value > TARGETS[key]


def _table(results: dict[str, Any]) -> str:
    rows = [("key", "value", "goal", "", "what")]
    for key, (goal, what) in GOALS.items():
        value = results.get(key)
        met = "" if goal is None or value is None else ("MISSED" if missed(key, value) else "ok")
        bound = "" if goal is None else f"{'>=' if key in AT_LEAST else '<='} {goal:g}"
        rows.append((key, "n/a" if value is None else f"{value:g}", bound, met, what))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _mock_table(detail: dict[str, Any]) -> str:
    lines = [f"mocks, median of {detail['repeats']} runs:", "     N  component s   raw s  ratio  (cpu ratio)"]
    for n, row in detail["sizes"].items():
        lines.append(
            f"  {n:>4}  {row['component_s']:>11.3f}  {row['raw_s']:>6.3f}  {row['ratio']:.3f}  ({row['cpu_ratio']:.3f})"
        )
    lines.append(
        f"  N=100, raw + the same number of bare ComponentResources: {detail['bare_ratio']:.3f} x raw; "
        f"the components: {detail['component_over_bare']:.3f} x that"
    )
    profiled = detail.get("profiles")
    if profiled:
        lines.append(
            f"  Python calls at N=100 (cProfile, load-free): component {profiled['call_ratio']:.3f} x raw, raw + bare "
            f"{profiled['bare_call_ratio']:.3f} x; {profiled['calls_per_bare_component']} per empty ComponentResource "
            f"vs {profiled['calls_per_raw_resource']} per resource of the raw program; profiles in .cache/bench/"
        )
    return "\n".join(lines)


def _container_line(serving_detail: dict[str, Any]) -> str | None:
    c = serving_detail.get("container")
    if not c:
        return None

    def per_batch(key: str) -> str:
        return " / ".join(f"{c[key][b]:g}" for b in ("1", "8", "32"))

    return (
        f"container over HTTP, batch 1 / 8 / 32: {per_batch('tokens_per_s')} tokens/s, GEMM efficiency "
        f"{per_batch('gemm_efficiency')} (matmul {per_batch('reference_gflop_per_s')} GFLOP/s); single texts "
        f"p50/p99 {c['concurrency_1']['p50_ms']:g}/{c['concurrency_1']['p99_ms']:g} ms (1 client), "
        f"{c['concurrency_8']['p50_ms']:g}/{c['concurrency_8']['p99_ms']:g} ms (8 clients)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per program and N under mocks (default 5)")
    parser.add_argument("--preview-repeats", type=int, default=5, help="previews per variant (default 5)")
    parser.add_argument(
        "--cluster-repeats", type=int, default=2, help="cluster: up/destroy pairs per tool and size (default 2)"
    )
    parser.add_argument("--skip", action="append", choices=PARTS, default=[], help="leave a part out (repeatable)")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        default=[],
        help="run only this part (repeatable); e.g. --only serving",
    )
    parser.add_argument(
        "--serving-url", help="serving: measure the server running at this URL instead of starting local ones"
    )
    parser.add_argument(
        "--serving-waits",
        default="0,2,10",
        help="serving: the BATCH_WAIT_MS values to measure latency at, comma-separated (default 0,2,10)",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="pyinstrument profiles of the programs at N=100 into .cache/bench/ (auto: when a mocks goal is missed)",
    )
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results.json")
    args = parser.parse_args(argv)
    if args.only:
        args.skip = sorted(set(args.skip) | {part for part in PARTS if part not in args.only})
    previous: dict[str, Any] = {}
    if args.output.exists():
        try:
            previous = json.loads(args.output.read_text())
        except ValueError:
            previous = {}

    results: dict[str, Any] = {
        "generated": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "machine": machine(),
    }
    results.update({key: None for key in GOALS})
    detail: dict[str, Any] = {}
    skipped = {part: "skipped (--skip)" for part in args.skip}
    for part in args.skip:
        kept = previous.get("detail", {}).get(part)
        if kept is not None:
            detail[part] = kept
            results.update({key: previous.get(key) for key in PART_KEYS[part]})
            skipped[part] = f"not run: figures of the run of {previous.get('generated')}"

    if "mock" not in args.skip:
        detail["mock"] = mock.run(args.repeats)
        for key in ("overhead_ratio", "growth_100_over_10", "peak_rss_mb_100"):
            results[key] = detail["mock"][key]
        short = any(missed(k, results[k]) for k in ("overhead_ratio", "growth_100_over_10"))
        if args.profile == "always" or (args.profile == "auto" and short):
            detail["mock"]["profiles"] = mock.profile(PROFILES)
    if "suites" not in args.skip:
        detail["suites"] = suites.run()
        results["suite_seconds"] = detail["suites"]["suite_seconds"]
    if "preview" not in args.skip:
        detail["preview"] = preview.run(args.preview_repeats)
        results["preview_ratio_raw"] = detail["preview"].get("preview_ratio_raw")
        results["preview_ratio_policy"] = detail["preview"].get("preview_ratio_policy")
        if "skipped" in detail["preview"]:
            skipped["preview"] = detail["preview"]["skipped"]
    container: dict[str, Any] | None = None
    container_missing = "the image part (which benchmarks the container) did not run"
    if "image" not in args.skip:
        detail["image"] = image.run()
        results["image_size_ratio"] = detail["image"]["image_size_ratio"]
        if detail["image"].get("reason"):
            skipped["image"] = detail["image"]["reason"]
        container = detail["image"].pop("serving", None)
        container_missing = detail["image"].pop("serving_reason", None) or container_missing

    if "serving" not in args.skip:
        waits = tuple(float(w) for w in args.serving_waits.split(",") if w.strip())
        detail["serving"] = serving.run(args.serving_url, waits)
        for key in PART_KEYS["serving"]:
            results[key] = detail["serving"].get(key)
        if detail["serving"].get("reason"):
            skipped["serving"] = detail["serving"]["reason"]
    if "image" not in args.skip or "serving" not in args.skip:
        detail["serving"] = serving.with_container(detail.get("serving") or {}, container, container_missing)
        results["server_gemm_efficiency"] = detail["serving"]["server_gemm_efficiency"]

    if "cluster" not in args.skip:
        detail["cluster"] = cluster.run(args.cluster_repeats)
        for key in PART_KEYS["cluster"]:
            results[key] = detail["cluster"].get(key)
        if detail["cluster"].get("skipped"):
            skipped["cluster"] = detail["cluster"]["skipped"]

    if "llm" not in args.skip:
        detail["llm"] = llm.run()
        if detail["llm"].get("skipped"):
            skipped["llm"] = detail["llm"]["skipped"]
        else:
            cluster_4 = detail["llm"]["cluster"]["4"]
            results["llm_tokens_per_s_1"] = detail["llm"]["cluster"]["1"]["tokens_per_s"]
            results["llm_tokens_per_s_4"] = cluster_4["tokens_per_s"]
            results["llm_ttft_p50_ms_4"] = cluster_4["ttft_p50_ms"]
            results["llm_ttft_p99_ms_4"] = cluster_4["ttft_p99_ms"]
            results["llm_lb_overhead"] = detail["llm"]["llm_lb_overhead"]

    results["machine"]["load_average_end"] = load_average()
    results["goals"] = TARGETS
    results["goals_at_least"] = list(AT_LEAST)
    results["missed"] = [key for key in TARGETS if missed(key, results[key])]
    results["skipped"] = skipped
    results["detail"] = detail
    partial = args.output.with_name(args.output.name + ".tmp")
    partial.write_text(json.dumps(results, indent=1) + "\n")
    partial.replace(args.output)  # never a half-written results.json

    print()
    if "mock" in detail:
        print(_mock_table(detail["mock"]))
        print()
    print(_table(results))
    container_line = _container_line(detail.get("serving") or {})
    if container_line:
        print(container_line)
    print(f"\nmachine: {results['machine']['cores']} cores, {results['machine']['memory_gb']} GB; wrote {args.output}")
    return 0


if __name__ == "__main__":
    progress("make bench: mocks, suites, previews, image, serving, cluster, llm (several minutes)")
    sys.exit(main())
