"""The command line, ``python -m components.sizing``: GPU sizing from a model's architecture (a table, or ``--json``;
exit status 0 fits, 1 does not fit, 2 bad arguments), or with ``--gguf FILE`` a llama.cpp pod from its GGUF."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from components.sizing.cpu import read_gguf, size_llamacpp
from components.sizing.memory import stage_layers, weights_fit
from components.sizing.parallelism import size_model
from components.sizing.request import (
    DTYPE_BYTES,
    ModelArchitecture,
    SizingError,
    SizingRequest,
    SizingResult,
    normalize_dtype,
)
from components.sizing.units import GiB, format_bytes, parse_memory

_FIELD_FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "params": "--params",
        "layers": "--layers",
        "heads": "--heads",
        "kv_heads": "--kv-heads",
        "head_dim": "--head-dim",
        "dtype": "--dtype",
        "kv_cache_dtype": "--kv-cache-dtype",
        "max_model_len": "--max-model-len",
        "max_num_seqs": "--max-num-seqs",
        "gpu_memory_bytes": "--gpu-memory",
        "gpu_memory_utilization": "--gpu-memory-utilization",
        "gpus": "--gpus",
        "max_gpus": "--max-gpus",
        "gpus_per_node": "--gpus-per-node",
        "max_nodes": "--max-nodes",
    }
)

_COUNT_SUFFIXES: Mapping[str, float] = MappingProxyType({"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12})


def _positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return value


def _params_arg(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.eE+-]+?)\s*([kKmMbBtT]?)\s*", text)
    value = math.nan
    if match:
        try:
            value = float(match.group(1)) * _COUNT_SUFFIXES[match.group(2).lower()]
        except ValueError:
            value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive parameter count such as 8.03e9 or 8.03B (got {text!r})")
    return value


def _fraction_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (got {text!r})")
    return value


def _memory_arg(text: str) -> int:
    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _dtype_arg(text: str) -> str:
    try:
        return normalize_dtype("dtype", text)
    except SizingError as exc:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(DTYPE_BYTES)} (got {text!r})") from exc


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components.sizing",
        description=(
            "Estimate the GPU memory needed to serve a model with vLLM and the"
            " tensor-parallel size to use (and, with --gpus-per-node, the"
            " pipeline-parallel size across nodes). Exit status: 0 fits, 1 does"
            " not fit, 2 bad arguments."
        ),
    )
    model = parser.add_argument_group("model (from config.json)")
    model.add_argument("--params", type=_params_arg, required=True)
    model.add_argument("--layers", type=_positive_int_arg, required=True)
    model.add_argument("--heads", type=_positive_int_arg, required=True, help="attention heads")
    model.add_argument("--kv-heads", type=_positive_int_arg, required=True)
    model.add_argument("--head-dim", type=_positive_int_arg, required=True)
    model.add_argument(
        "--dtype",
        type=_dtype_arg,
        default="bf16",
        help=f"weight dtype: {', '.join(DTYPE_BYTES)} (default bf16)",
    )
    model.add_argument(
        "--kv-cache-dtype",
        type=_dtype_arg,
        default=None,
        help="KV cache dtype (default: weight dtype; bf16 for int8/int4)",
    )
    serving = parser.add_argument_group("serving")
    serving.add_argument("--max-model-len", type=_positive_int_arg, default=4096)
    serving.add_argument("--max-num-seqs", type=_positive_int_arg, default=1)
    serving.add_argument(
        "--gpu-memory",
        type=_memory_arg,
        default=80 * GiB,
        help="memory of one GPU, e.g. 80Gi, 81920Mi, 24G (default 80Gi)",
    )
    serving.add_argument("--gpu-memory-utilization", type=_fraction_arg, default=0.9)
    serving.add_argument(
        "--gpus",
        type=_positive_int_arg,
        default=None,
        help=(
            "check this GPU count instead of choosing one; more than"
            " --gpus-per-node means whole nodes, tensor parallel within each"
        ),
    )
    serving.add_argument(
        "--max-gpus",
        type=_positive_int_arg,
        default=8,
        help="largest tensor-parallel size to consider (default 8)",
    )
    serving.add_argument(
        "--gpus-per-node",
        type=_positive_int_arg,
        default=None,
        help=(
            "GPUs of one node; a model too big for one node is then split over"
            " several with pipeline parallelism (default: one node, never split)"
        ),
    )
    serving.add_argument(
        "--max-nodes",
        type=_positive_int_arg,
        default=8,
        help="most nodes one replica may span, with --gpus-per-node (default 8)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _render_table(request: SizingRequest, result: SizingResult) -> str:
    arch = request.architecture
    tp = result.tensor_parallel_size
    pp = result.pipeline_parallel_size
    gpus = result.gpus_per_replica
    busiest = stage_layers(arch.layers, pp)[0]
    overhead_per_gpu = weights_fit(request, tp, pp)[2]
    over = f"over {gpus} GPU(s)"
    per_gpu_note = ""
    per_pod = ""
    if pp > 1:
        over += f" on {result.nodes_per_replica} nodes"
        per_gpu_note = f", busiest stage: {busiest} of {arch.layers} layers"
        per_pod = "per pod (one per node)"
    kv_dtype = request.effective_kv_cache_dtype
    per_seq = request.tokens_per_sequence
    rows: list[tuple[str, str, str]] = [
        ("Weights", format_bytes(result.weights_bytes), request.weight_dtype),
        (
            "KV cache per token",
            format_bytes(result.kv_cache_bytes_per_token),
            (f"{kv_dtype}, 2 x {arch.layers} layers x {arch.kv_heads} kv_heads x {arch.head_dim}"),
        ),
        (
            "KV cache",
            format_bytes(result.kv_cache_bytes),
            (f"{request.max_num_seqs} x {request.max_model_len} tokens (max_num_seqs x max_model_len)"),
        ),
        (
            "Overhead",
            format_bytes(result.overhead_bytes),
            f"{format_bytes(overhead_per_gpu)} per GPU",
        ),
        ("Total", format_bytes(result.total_bytes), over),
        (
            "Per GPU",
            format_bytes(result.per_gpu_bytes),
            (
                f"of {format_bytes(result.usable_bytes_per_gpu)} usable"
                f" ({format_bytes(request.gpu_memory_bytes)} x"
                f" {request.gpu_memory_utilization:g}){per_gpu_note}"
            ),
        ),
        (
            "KV cache capacity",
            f"{result.kv_cache_capacity_tokens:,} tokens",
            (f"{result.kv_cache_capacity_tokens / per_seq:.1f}x {per_seq}-token sequences"),
        ),
        ("Tensor parallel size", str(tp), ""),
        ("Pipeline parallel size", str(pp), ""),
        ("GPUs per replica", str(gpus), ""),
        ("Nodes per replica", str(result.nodes_per_replica), ""),
        ("/dev/shm", format_bytes(result.shm_bytes), per_pod),
        ("Host memory limit", format_bytes(result.host_memory_bytes), per_pod),
        ("Fits", "yes" if result.fits else "no", ""),
    ]
    label_width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"{label:<{label_width}}  {value:>{value_width}}  {note}".rstrip() for label, value, note in rows]
    if result.reason:
        lines.append(f"Reason: {result.reason}")
    return "\n".join(lines)


def _gguf_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.sizing --gguf",
        description="Size a llama.cpp (llamacpp engine) pod from a GGUF file: memory and the config keys to set.",
    )
    parser.add_argument("--gguf", required=True, metavar="FILE", help="the GGUF the image bakes in")
    parser.add_argument("--ctx-size", type=_positive_int_arg, default=4096, help="context tokens per slot")
    parser.add_argument("--parallel", type=_positive_int_arg, default=4, help="slots decoded at once")
    parser.add_argument("--json", action="store_true", help="print JSON")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        facts = read_gguf(args.gguf)
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    sized = size_llamacpp(facts.gguf_bytes, facts.layers, facts.kv_heads, facts.head_dim, args.ctx_size, args.parallel)
    if args.json:
        print(json.dumps({**facts.__dict__, **sized.__dict__, "memory_bytes": sized.memory_bytes}, indent=2))
        return 0
    print(
        f"{facts.path}: {facts.architecture}, {facts.params:,} parameters, {facts.layers} layers, "
        f"{facts.kv_heads} KV heads of {facts.head_dim}, trained context {facts.context_length}\n"
        f"GGUF {format_bytes(facts.gguf_bytes)} + KV cache {format_bytes(sized.kv_cache_bytes)} "
        f"({args.parallel} x {args.ctx_size} tokens) + overhead {format_bytes(sized.overhead_bytes)} "
        f"= {format_bytes(sized.memory_bytes)}\n"
        "config (models[i]):\n"
        f"  architecture: {{params: {facts.params:.4g}, layers: {facts.layers}, heads: {facts.heads}, "
        f"kvHeads: {facts.kv_heads}, headDim: {facts.head_dim}}}\n"
        f"  llamacpp: {{ctxSize: {args.ctx_size}, parallel: {args.parallel}, ggufBytes: {facts.gguf_bytes}}}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 fits, 1 does not fit, 2 bad input. ``--gguf FILE`` sizes a llama.cpp
    pod from a GGUF instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--gguf" or a.startswith("--gguf=") for a in argv):
        return _gguf_main(argv)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the message already
        return exc.code if isinstance(exc.code, int) else 2
    request = SizingRequest(
        architecture=ModelArchitecture(
            params=args.params,
            layers=args.layers,
            heads=args.heads,
            kv_heads=args.kv_heads,
            head_dim=args.head_dim,
        ),
        dtype=args.dtype,
        kv_cache_dtype=args.kv_cache_dtype,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        gpu_memory_bytes=args.gpu_memory,
        gpu_memory_utilization=args.gpu_memory_utilization,
        gpus=args.gpus,
        max_gpus=args.max_gpus,
        gpus_per_node=args.gpus_per_node,
        max_nodes=args.max_nodes,
    )
    try:
        result = size_model(request)
    except SizingError as exc:
        flag = _FIELD_FLAGS.get(exc.field, exc.field)
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: argument {flag}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_render_table(request, result))
    return 0 if result.fits else 1
