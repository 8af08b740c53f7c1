"""Memory sizing for serving a decoder-only transformer: on GPUs with vLLM, on CPU with llama.cpp.

Pure functions, standard library only. Given a model architecture, a weight
dtype, the context length, the number of concurrent sequences and the GPU
memory, :func:`size_model` picks the smallest valid tensor-parallel size and
reports whether the model fits, and why not when it does not. Given the GPUs
of one node (``gpus_per_node``), a model too big for one node is split over
several with pipeline parallelism, as vLLM runs multi-node.

Memory model (per replica; every figure is in bytes)
-----------------------------------------------------
``weights_bytes = ceil(params * DTYPE_BYTES[dtype])``
    Dense weights. Quantisation scales, zero points and layers kept in high
    precision (embeddings, ``lm_head``) of int4/int8 checkpoints are not
    counted here; the overhead fraction below absorbs a few percent of that.

``kv_cache_bytes_per_token = 2 * layers * kv_heads * head_dim * kv_bytes``
    One key and one value vector per KV head per layer. ``kv_bytes`` comes
    from ``kv_cache_dtype``; when it is ``None`` it follows ``dtype``, except
    that int8/int4 weights (weight-only quantisation, activations in bf16)
    get a bf16 cache.

``kv_cache_bytes``
    Worst case: ``max_num_seqs`` sequences all at ``max_model_len`` tokens,
    each rounded up to vLLM's 16-token KV block. With tensor parallelism every
    GPU holds ``kv_heads / tp`` KV heads; when ``tp > kv_heads`` each GPU
    still holds one whole KV head (vLLM replicates them), so the total grows
    by ``tp / kv_heads``. vLLM itself only refuses to start below one
    ``max_model_len`` of cache; this figure is what serving ``max_num_seqs``
    full-length sequences at once, without preemption, needs.

``overhead_bytes`` (per GPU, then summed over the replica's GPUs)
    vLLM sizes its KV cache by profiling: of ``gpu_memory_bytes *
    gpu_memory_utilization`` it subtracts the weights, the peak activation
    memory of a dummy forward pass at the batched-token budget, and the
    memory allocated outside PyTorch (CUDA context, cuBLAS workspaces, NCCL
    buffers); CUDA graphs take a little more. We cannot profile, so we
    reserve, on every GPU of the replica:

    * ``OVERHEAD_FIXED_BYTES`` (2 GiB): activation peak at the default
      batched-token budget, CUDA graphs and non-torch memory. vLLM's start-up
      log for 7-8B models reports roughly 1-4 GiB for these together,
      depending on ``max_num_batched_tokens``;
    * ``OVERHEAD_WEIGHT_FRACTION`` (5 %) of the GPU's weight shard:
      activation and workspace buffers grow with the hidden and MLP sizes,
      and so do the weights; this also covers quantisation metadata;
    * ``OVERHEAD_TP_COMM_BYTES`` (512 MiB) when the replica has more than one
      GPU (``tp * pp > 1``): NCCL communicator buffers and vLLM's custom
      all-reduce buffers (or, across nodes, pipeline send/receive buffers).

    Like vLLM, everything must fit inside the utilisation budget; the
    ``1 - gpu_memory_utilization`` remainder is left as a safety margin.

Fit: at tensor-parallel size ``tp`` one GPU holds
``per_gpu_bytes = ceil(weights / tp) + overhead_per_gpu + kv_per_gpu`` and
it fits when ``per_gpu_bytes <= usable_bytes_per_gpu``, where
``usable_bytes_per_gpu = floor(gpu_memory_bytes * gpu_memory_utilization)``.

Tensor-parallel size: a power of two that divides ``heads``, and either is
divided by ``kv_heads`` or divides it (vLLM's condition for sharding or
replicating KV heads). The smallest such size up to ``max_gpus`` (and, when
``gpus_per_node`` is given, up to ``gpus_per_node``) that fits is chosen; the
replica then uses ``tp`` GPUs on one node.

More than one node (only when ``gpus_per_node`` is given)
---------------------------------------------------------
When no size fits on one node, vLLM's multi-node layout is used: tensor
parallel within a node, pipeline parallel across nodes. ``tp`` is the largest
valid size up to ``min(max_gpus, gpus_per_node)`` and the pipeline-parallel
size ``pp`` (= nodes per replica, one stage per node) is the smallest of
2, 3, ... ``max_nodes`` (and at most ``layers``) that fits. A stage holds
``layers // pp`` or ``layers // pp + 1`` layers; the busiest one, with
``stage_layers = ceil(layers / pp)``, decides the fit:
``weights_per_gpu = ceil(weights * stage_layers / layers / tp)`` and
``kv_per_gpu`` is the KV cache of ``stage_layers`` layers with ``kv_heads /
tp`` heads (one replicated head when ``tp > kv_heads``). The overhead model
is the same, on the stage's weight shard. Embeddings and ``lm_head`` sit on
the first and last stages in vLLM; the 5 % weight overhead absorbs them. An
explicit ``gpus`` larger than ``gpus_per_node`` means ``tp = gpus_per_node``
and ``pp = gpus / gpus_per_node``.

llama.cpp on CPU (:func:`size_llamacpp`)
---------------------------------------
``memory_bytes = gguf_bytes + kv_cache_bytes + LLAMACPP_OVERHEAD_BYTES``, rounded up to a whole MiB, where
the GGUF is read through mmap (its pages are charged to the pod's cgroup as it is read) and the KV cache holds
``ctx_size * parallel`` tokens (llama-server gives each of its ``parallel`` slots ``ctx_size`` tokens) of
``2 * layers * kv_heads * head_dim`` f16 elements (2 bytes each). Models with sliding-window layers (Gemma 3)
need less: this is the upper bound. ``LLAMACPP_OVERHEAD_BYTES`` covers the server, its compute buffers at the
default batch sizes and the output logits of a large vocabulary (measured: docs/gpu-sizing.md). Threads
follow the CPU limit: ``threads = max(1, floor(cpu))``, so the decode threads never outnumber the CPUs the
CFS quota grants.

Pod recommendations
-------------------
Pod recommendations are per pod; with pipeline parallelism a replica has one
pod per node, each running ``tp`` GPUs.

``shm_bytes = SHM_BYTES_PER_GPU * tp`` (1 GiB per GPU)
    vLLM's worker processes exchange data through ``/dev/shm`` (PyTorch
    multiprocessing, vLLM's shared-memory broadcast queue, NCCL's SHM
    transport when P2P is unavailable). A container runtime's 64 MiB default
    is too small once ``tp > 1``. On Kubernetes this is a memory-backed
    ``emptyDir`` whose pages count against the pod's memory limit.

``host_memory_bytes`` (rounded up to a whole GiB)
    ``HOST_BASE_BYTES`` (4 GiB: API server, tokenizer, engine process)
    ``+ HOST_BYTES_PER_GPU * tp`` (2 GiB per GPU worker: CUDA/PyTorch
    runtime, pinned staging buffers) ``+ weights_per_gpu`` (``ceil(weights /
    tp)`` on one node; safetensors are read through mmap: the page cache of
    the shard being streamed is charged to the pod's cgroup; the rest is
    clean, reclaimable cache)
    ``+ shm_bytes``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from types import MappingProxyType

__all__ = [
    "DTYPE_BYTES",
    "GgufFacts",
    "LlamaCppSizing",
    "ModelArchitecture",
    "SizingError",
    "SizingRequest",
    "SizingResult",
    "format_bytes",
    "llamacpp_threads",
    "main",
    "min_gpus_for_weights",
    "parse_memory",
    "read_gguf",
    "size_llamacpp",
    "size_model",
    "valid_tensor_parallel_sizes",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DTYPE_BYTES: Mapping[str, float] = MappingProxyType(
    {
        "fp32": 4.0,
        "bf16": 2.0,
        "fp16": 2.0,
        "fp8": 1.0,
        "int8": 1.0,
        "int4": 0.5,
    }
)
"""Bytes per element for each supported dtype."""

DTYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "float32": "fp32",
        "float": "fp32",
        "bfloat16": "bf16",
        "float16": "fp16",
        "half": "fp16",
        "fp8_e4m3": "fp8",
        "fp8_e5m2": "fp8",
    }
)
"""Other spellings accepted for a dtype (Hugging Face and vLLM names)."""

WEIGHT_ONLY_QUANTIZED_DTYPES = frozenset({"int8", "int4"})
"""Weight dtypes whose activations, hence default KV cache, stay in bf16."""

KV_BLOCK_TOKENS = 16
"""vLLM's default KV-cache block size; each sequence is rounded up to it."""

OVERHEAD_FIXED_BYTES = 2 * GiB
OVERHEAD_WEIGHT_FRACTION = 0.05
OVERHEAD_TP_COMM_BYTES = 512 * MiB
SHM_BYTES_PER_GPU = 1 * GiB
HOST_BASE_BYTES = 4 * GiB
HOST_BYTES_PER_GPU = 2 * GiB


class SizingError(ValueError):
    """An invalid sizing input. ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


def _check_positive_int(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SizingError(field, f"must be an integer (got {value!r})")
    if value <= 0:
        raise SizingError(field, f"must be positive (got {value})")


def _normalize_dtype(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise SizingError(field, f"must be a string (got {value!r})")
    key = value.strip().lower()
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPE_BYTES:
        choices = ", ".join(DTYPE_BYTES)
        raise SizingError(field, f"must be one of {choices} (got {value!r})")
    return key


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True)
class ModelArchitecture:
    """The figures of a model that drive memory use (from its config.json).

    Construction does not check the values; :meth:`validate` does, and
    :func:`size_model` calls it.
    """

    params: float
    layers: int
    heads: int
    kv_heads: int
    head_dim: int

    def validate(self) -> None:
        """Raise :class:`SizingError`, naming the field, on an invalid value."""
        params: object = self.params
        if isinstance(params, bool) or not isinstance(params, int | float):
            raise SizingError("params", f"must be a number (got {params!r})")
        if not math.isfinite(params) or params <= 0:
            raise SizingError("params", f"must be positive (got {params!r})")
        for name in ("layers", "heads", "kv_heads", "head_dim"):
            _check_positive_int(name, getattr(self, name))
        if self.heads % self.kv_heads:
            raise SizingError(
                "kv_heads",
                f"must divide heads (got {self.heads} % {self.kv_heads})",
            )


def is_valid_tensor_parallel_size(architecture: ModelArchitecture, tp: int) -> bool:
    """Whether vLLM can shard ``architecture`` over ``tp`` GPUs.

    ``tp`` must be a power of two dividing ``heads``; KV heads are sharded
    when ``kv_heads >= tp`` (so ``tp`` must divide them) and replicated
    otherwise (so ``kv_heads`` must divide ``tp``).
    """
    if not _is_power_of_two(tp) or architecture.heads % tp:
        return False
    if architecture.kv_heads >= tp:
        return architecture.kv_heads % tp == 0
    return tp % architecture.kv_heads == 0


def valid_tensor_parallel_sizes(architecture: ModelArchitecture, limit: int) -> list[int]:
    """Valid tensor-parallel sizes up to ``limit``, ascending (1 is always one)."""
    sizes: list[int] = []
    tp = 1
    while tp <= limit:
        if is_valid_tensor_parallel_size(architecture, tp):
            sizes.append(tp)
        tp *= 2
    return sizes


def _invalid_power_of_two_note(architecture: ModelArchitecture, limit: int) -> str:
    notes: list[str] = []
    tp = 1
    while tp <= limit:
        if not is_valid_tensor_parallel_size(architecture, tp):
            if architecture.heads % tp:
                notes.append(f"{tp} does not divide heads={architecture.heads}")
            else:
                notes.append(f"{tp} and kv_heads={architecture.kv_heads} do not divide each other")
        tp *= 2
    return "; ".join(notes)


@dataclass(frozen=True)
class SizingRequest:
    """What to size. See the module docstring for the memory model.

    Construction does not check the values; :meth:`validate` does (and that
    of the architecture), and :func:`size_model` and
    :func:`min_gpus_for_weights` call it. Dtypes are case-insensitive and
    accept ``bfloat16``-style aliases; :attr:`weight_dtype` and
    :attr:`effective_kv_cache_dtype` give the canonical names.

    ``max_gpus`` caps the tensor-parallel size. ``gpus_per_node`` is the GPUs
    of one node: ``None`` sizes for one node of ``max_gpus`` GPUs and never
    splits; otherwise a model too big for one node is split over up to
    ``max_nodes`` nodes with pipeline parallelism (``max_nodes`` is ignored
    when ``gpus_per_node`` is ``None``).
    """

    architecture: ModelArchitecture
    dtype: str = "bf16"
    kv_cache_dtype: str | None = None
    max_model_len: int = 4096
    max_num_seqs: int = 1
    gpu_memory_bytes: int = 80 * GiB
    gpu_memory_utilization: float = 0.9
    gpus: int | None = None
    max_gpus: int = 8
    gpus_per_node: int | None = None
    max_nodes: int = 8

    def validate(self) -> None:
        """Raise :class:`SizingError`, naming the field, on an invalid value."""
        if not isinstance(self.architecture, ModelArchitecture):
            raise SizingError(
                "architecture",
                f"must be a ModelArchitecture (got {self.architecture!r})",
            )
        self.architecture.validate()
        _normalize_dtype("dtype", self.dtype)
        if self.kv_cache_dtype is not None:
            _normalize_dtype("kv_cache_dtype", self.kv_cache_dtype)
        for name in ("max_model_len", "max_num_seqs", "gpu_memory_bytes", "max_gpus", "max_nodes"):
            _check_positive_int(name, getattr(self, name))
        if self.gpus_per_node is not None:
            _check_positive_int("gpus_per_node", self.gpus_per_node)
        utilization: object = self.gpu_memory_utilization
        if isinstance(utilization, bool) or not isinstance(utilization, int | float) or not 0 < utilization <= 1:
            raise SizingError(
                "gpu_memory_utilization",
                f"must be in (0, 1] (got {utilization!r})",
            )
        if self.gpus is not None:
            _check_positive_int("gpus", self.gpus)
            if self.gpus_per_node is not None and self.gpus > self.gpus_per_node:
                self._validate_multi_node_gpus(self.gpus, self.gpus_per_node)
            elif not is_valid_tensor_parallel_size(self.architecture, self.gpus):
                arch = self.architecture
                valid = valid_tensor_parallel_sizes(arch, max(self.gpus, arch.heads))
                raise SizingError(
                    "gpus",
                    "must be a valid tensor-parallel size: a power of two"
                    f" dividing heads={arch.heads} and compatible with"
                    f" kv_heads={arch.kv_heads} (got {self.gpus}; valid:"
                    f" {', '.join(map(str, valid))})",
                )

    def _validate_multi_node_gpus(self, gpus: int, per_node: int) -> None:
        arch = self.architecture
        if gpus % per_node:
            raise SizingError(
                "gpus",
                f"must be at most gpus_per_node={per_node} (one node) or a multiple of it (whole nodes) (got {gpus})",
            )
        nodes = gpus // per_node
        split = f"got {gpus} = {nodes} nodes x {per_node}"
        if not is_valid_tensor_parallel_size(arch, per_node):
            valid = valid_tensor_parallel_sizes(arch, per_node)
            raise SizingError(
                "gpus",
                f"spans nodes, so each node runs tensor parallel"
                f" gpus_per_node={per_node}, which is not a valid tensor-parallel"
                f" size for heads={arch.heads}, kv_heads={arch.kv_heads}"
                f" ({split}; valid sizes: {', '.join(map(str, valid))})",
            )
        if nodes > arch.layers:
            raise SizingError(
                "gpus",
                f"spans more nodes than the model has layers={arch.layers} (one pipeline stage per node; {split})",
            )

    @property
    def weight_dtype(self) -> str:
        """``dtype`` as a key of :data:`DTYPE_BYTES`."""
        return _normalize_dtype("dtype", self.dtype)

    @property
    def effective_kv_cache_dtype(self) -> str:
        """The KV-cache dtype actually sized (pass it to vLLM explicitly)."""
        if self.kv_cache_dtype is not None:
            return _normalize_dtype("kv_cache_dtype", self.kv_cache_dtype)
        if self.weight_dtype in WEIGHT_ONLY_QUANTIZED_DTYPES:
            return "bf16"
        return self.weight_dtype

    @property
    def usable_bytes_per_gpu(self) -> int:
        """``floor(gpu_memory_bytes * gpu_memory_utilization)``, computed exactly."""
        usable = Decimal(self.gpu_memory_bytes) * Decimal(repr(float(self.gpu_memory_utilization)))
        return int(usable.to_integral_value(rounding=ROUND_FLOOR))

    @property
    def tokens_per_sequence(self) -> int:
        """``max_model_len`` rounded up to whole KV blocks."""
        blocks = -(-self.max_model_len // KV_BLOCK_TOKENS)
        return blocks * KV_BLOCK_TOKENS


@dataclass(frozen=True)
class SizingResult:
    """The outcome of :func:`size_model`. Byte counts are whole bytes.

    ``kv_cache_bytes``, ``overhead_bytes`` and ``total_bytes`` are summed over
    the ``gpus_per_replica`` GPUs of one replica (including KV heads
    replicated when ``tp > kv_heads``); ``per_gpu_bytes`` is one GPU's share
    (on the busiest pipeline stage). ``kv_cache_capacity_tokens`` is how many
    tokens of KV cache the memory left after weights and overhead holds at
    this size (vLLM logs the same figure as "GPU KV cache size"), 0 when even
    the weights do not fit.

    ``gpus_per_replica = tensor_parallel_size * pipeline_parallel_size``; a
    replica spans ``nodes_per_replica`` (= ``pipeline_parallel_size``) nodes,
    one pod of ``tensor_parallel_size`` GPUs on each. ``shm_bytes`` and
    ``host_memory_bytes`` are for one such pod. A fit over several nodes has a
    ``reason`` saying why it was split.
    """

    weights_bytes: int
    kv_cache_bytes_per_token: int
    kv_cache_bytes: int
    overhead_bytes: int
    total_bytes: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpus_per_replica: int
    nodes_per_replica: int
    fits: bool
    reason: str
    per_gpu_bytes: int
    usable_bytes_per_gpu: int
    shm_bytes: int
    host_memory_bytes: int
    kv_cache_capacity_tokens: int = 0

    def to_json(self) -> dict[str, object]:
        """The result as a JSON-serialisable dict (one key per field)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def format_bytes(value: int) -> str:
    """``value`` in binary units with two decimals, e.g. ``'14.96 GiB'``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    scaled = float(value)
    unit = units[0]
    for unit in units:
        if abs(scaled) < 1024 or unit == units[-1]:
            break
        scaled /= 1024
    if unit == "B":
        return f"{value} B"
    return f"{scaled:.2f} {unit}"


def _weights_bytes(request: SizingRequest) -> int:
    return math.ceil(request.architecture.params * DTYPE_BYTES[request.weight_dtype])


def _kv_bytes_per_token(request: SizingRequest, kv_heads: int, layers: int | None = None) -> int:
    arch = request.architecture
    element = DTYPE_BYTES[request.effective_kv_cache_dtype]
    layers = arch.layers if layers is None else layers
    return math.ceil(2 * layers * kv_heads * arch.head_dim * element)


def _kv_heads_per_gpu(architecture: ModelArchitecture, tp: int) -> int:
    return max(architecture.kv_heads // tp, 1)


def _overhead_per_gpu(weights_per_gpu: int, gpus: int) -> int:
    """Overhead of one GPU holding ``weights_per_gpu``, in a replica of ``gpus``."""
    overhead = OVERHEAD_FIXED_BYTES + math.ceil(OVERHEAD_WEIGHT_FRACTION * weights_per_gpu)
    if gpus > 1:
        overhead += OVERHEAD_TP_COMM_BYTES
    return overhead


def _stage_layers(layers: int, pp: int) -> list[int]:
    """Layers of each pipeline stage, as even as possible, busiest first."""
    base, extra = divmod(layers, pp)
    return [base + 1] * extra + [base] * (pp - extra)


def _shard_bytes(request: SizingRequest, tp: int, stage_layers: int) -> int:
    """Weights on one GPU of a stage: ``ceil(weights * stage_layers / layers / tp)``."""
    layers = request.architecture.layers
    return -(-_weights_bytes(request) * stage_layers // (layers * tp))


def _weights_fit(request: SizingRequest, tp: int, pp: int = 1) -> tuple[bool, int, int]:
    busiest = _stage_layers(request.architecture.layers, pp)[0]
    weights_per_gpu = _shard_bytes(request, tp, busiest)
    overhead = _overhead_per_gpu(weights_per_gpu, tp * pp)
    fits = weights_per_gpu + overhead <= request.usable_bytes_per_gpu
    return fits, weights_per_gpu, overhead


def _budget(request: SizingRequest) -> str:
    return (
        f"{format_bytes(request.usable_bytes_per_gpu)} usable per GPU"
        f" ({format_bytes(request.gpu_memory_bytes)} x"
        f" {request.gpu_memory_utilization:g})"
    )


def _at(request: SizingRequest, tp: int, pp: int) -> str:
    if pp == 1:
        return f"at tensor_parallel_size={tp}"
    layers = request.architecture.layers
    busiest = _stage_layers(layers, pp)[0]
    return f"at tensor_parallel_size={tp} x pipeline_parallel_size={pp} ({busiest} of {layers} layers per stage)"


def _plan(request: SizingRequest, tp: int, pp: int = 1) -> SizingResult:
    """Size ``request`` at tensor-parallel ``tp`` x pipeline-parallel ``pp`` (assumed valid)."""
    arch = request.architecture
    weights = _weights_bytes(request)
    stages = _stage_layers(arch.layers, pp)
    weights_fit, weights_per_gpu, overhead_per_gpu = _weights_fit(request, tp, pp)
    kv_per_token = _kv_bytes_per_token(request, arch.kv_heads)
    heads_per_gpu = _kv_heads_per_gpu(arch, tp)
    kv_per_token_per_gpu = _kv_bytes_per_token(request, heads_per_gpu, stages[0])
    tokens = request.tokens_per_sequence * request.max_num_seqs
    kv_per_gpu = kv_per_token_per_gpu * tokens
    per_gpu = weights_per_gpu + overhead_per_gpu + kv_per_gpu
    usable = request.usable_bytes_per_gpu
    free = usable - weights_per_gpu - overhead_per_gpu
    capacity = 0
    if free > 0:
        capacity = free // kv_per_token_per_gpu // KV_BLOCK_TOKENS * KV_BLOCK_TOKENS
    fits = per_gpu <= usable
    # Sums over every GPU of the replica: tp GPUs per stage, stages may differ by a layer.
    kv_total = tp * tokens * sum(_kv_bytes_per_token(request, heads_per_gpu, n) for n in stages)
    overhead_total = tp * sum(_overhead_per_gpu(_shard_bytes(request, tp, n), tp * pp) for n in stages)

    reason = ""
    if not weights_fit:
        reason = (
            f"{_at(request, tp, pp)} each GPU needs"
            f" {format_bytes(weights_per_gpu)} of {request.weight_dtype} weights plus"
            f" {format_bytes(overhead_per_gpu)} overhead, more than the"
            f" {_budget(request)}"
        )
    elif not fits:
        sequences = capacity // request.tokens_per_sequence
        reason = (
            f"{_at(request, tp, pp)} the KV cache for"
            f" {request.max_num_seqs} x {request.max_model_len} tokens needs"
            f" {format_bytes(kv_per_gpu)} per GPU, but only {format_bytes(free)}"
            f" of the {_budget(request)} remain after"
            f" {format_bytes(weights_per_gpu)} of weights and"
            f" {format_bytes(overhead_per_gpu)} overhead: room for {capacity:,}"
            f" tokens ({sequences:,} sequences of max_model_len)"
        )

    shm = SHM_BYTES_PER_GPU * tp
    host = HOST_BASE_BYTES + HOST_BYTES_PER_GPU * tp + weights_per_gpu + shm
    host = -(-host // GiB) * GiB
    return SizingResult(
        weights_bytes=weights,
        kv_cache_bytes_per_token=kv_per_token,
        kv_cache_bytes=kv_total,
        overhead_bytes=overhead_total,
        total_bytes=weights + kv_total + overhead_total,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        gpus_per_replica=tp * pp,
        nodes_per_replica=pp,
        fits=fits,
        reason=reason,
        per_gpu_bytes=per_gpu,
        usable_bytes_per_gpu=usable,
        shm_bytes=shm,
        host_memory_bytes=host,
        kv_cache_capacity_tokens=capacity,
    )


def min_gpus_for_weights(request: SizingRequest) -> int:
    """Smallest valid tensor-parallel size at which weights plus overhead fit.

    KV cache is ignored, and so are ``gpus`` and ``max_gpus``: every valid
    size up to ``heads`` is tried, so an explicit ``gpus`` can be checked
    against it. Raises :class:`SizingError` (field ``gpu_memory_bytes``) when
    the weights fit at no valid size, or when ``request`` is invalid.
    """
    request.validate()
    arch = request.architecture
    sizes = valid_tensor_parallel_sizes(arch, arch.heads)
    for tp in sizes:
        if _weights_fit(request, tp)[0]:
            return tp
    largest = sizes[-1]
    _, weights_per_gpu, overhead = _weights_fit(request, largest)
    raise SizingError(
        "gpu_memory_bytes",
        f"is too small for the weights at any valid tensor-parallel size: at"
        f" the largest, {largest}, each GPU needs {format_bytes(weights_per_gpu)}"
        f" of weights plus {format_bytes(overhead)} overhead, more than the"
        f" {_budget(request)}",
    )


def _weights_hint(request: SizingRequest) -> str:
    try:
        needed = min_gpus_for_weights(request)
    except SizingError:
        return "the weights fit at no valid tensor-parallel size"
    return f"the weights alone need at least {needed} GPUs"


def size_model(request: SizingRequest) -> SizingResult:
    """Choose tensor- and pipeline-parallel sizes for ``request`` (or check ``gpus``).

    With ``gpus`` set, that size is checked (over ``gpus / gpus_per_node``
    nodes when it is larger than ``gpus_per_node``). Otherwise the smallest
    valid tensor-parallel size up to ``max_gpus`` (and ``gpus_per_node``) that
    fits on one node is returned. If none does and ``gpus_per_node`` is set,
    the largest of those sizes is split over the fewest nodes, up to
    ``max_nodes``, that fit (see the module docstring). When nothing fits, the
    result is for the largest split tried, with ``fits=False`` and the reason.

    Raises :class:`SizingError` (a :class:`ValueError` whose message starts
    with the field name) when ``request`` is invalid.
    """
    request.validate()
    arch = request.architecture
    per_node = request.gpus_per_node
    if request.gpus is not None:
        return _check_gpus(request, request.gpus)

    limit = request.max_gpus if per_node is None else min(request.max_gpus, per_node)
    sizes = valid_tensor_parallel_sizes(arch, limit)
    for tp in sizes:
        result = _plan(request, tp)
        if result.fits:
            return result
    if per_node is not None:
        return _split_over_nodes(request, per_node, result)
    valid = ", ".join(map(str, sizes))
    reason = (
        f"no valid tensor-parallel size up to max_gpus={request.max_gpus} fits"
        f" (valid for heads={arch.heads}, kv_heads={arch.kv_heads}: {valid}"
    )
    invalid = _invalid_power_of_two_note(arch, request.max_gpus)
    if invalid:
        reason += f"; {invalid}"
    reason += f"): {result.reason}"
    if not _weights_fit(request, result.tensor_parallel_size)[0]:
        reason += f"; {_weights_hint(request)}"
    return _with_reason(result, reason)


def _check_gpus(request: SizingRequest, gpus: int) -> SizingResult:
    """Check an explicit ``gpus`` (validated): one node, or whole nodes."""
    per_node = request.gpus_per_node
    tp, pp = gpus, 1
    if per_node is not None and gpus > per_node:
        tp, pp = per_node, gpus // per_node
    result = _plan(request, tp, pp)
    layout = ""
    if pp > 1:
        layout = f" (tensor parallel {tp} x pipeline parallel {pp} over {pp} nodes of gpus_per_node={per_node})"
    if result.fits:
        if pp == 1:
            return result
        return _with_reason(
            result,
            f"the requested gpus={gpus} span {pp} nodes of gpus_per_node={per_node}:"
            f" tensor parallel {tp} within each node x pipeline parallel {pp}"
            f" across them, at {format_bytes(result.per_gpu_bytes)} per GPU",
        )
    reason = f"does not fit on gpus={gpus}{layout}: {result.reason}"
    if pp == 1 and not _weights_fit(request, gpus)[0]:
        reason += f"; {_weights_hint(request)}"
    return _with_reason(result, reason)


def _or(options: list[str]) -> str:
    if len(options) == 1:
        return options[0]
    return f"{', '.join(options[:-1])} or {options[-1]}"


def _params_text(request: SizingRequest) -> str:
    return f"{request.architecture.params / 1e9:.4g}B parameters in {request.weight_dtype}"


def _split_over_nodes(request: SizingRequest, per_node: int, single: SizingResult) -> SizingResult:
    """Pipeline-parallel split of a model that ``single`` (its largest one-node size) cannot hold."""
    arch = request.architecture
    tp = single.tensor_parallel_size
    most_nodes = min(request.max_nodes, arch.layers)
    result = single
    for pp in range(2, most_nodes + 1):
        result = _plan(request, tp, pp)
        if result.fits:
            busiest = _stage_layers(arch.layers, pp)[0]
            return _with_reason(
                result,
                f"{_params_text(request)} with {request.max_num_seqs} x"
                f" {request.max_model_len} tokens of KV cache need"
                f" {format_bytes(single.per_gpu_bytes)} per GPU on one node of"
                f" gpus_per_node={per_node} (at tensor parallel {tp}), more than the"
                f" {_budget(request)}, so the model is split as tensor parallel {tp}"
                f" x pipeline parallel {pp} over {pp} nodes ({tp * pp} GPUs,"
                f" {busiest} of {arch.layers} layers per stage) at"
                f" {format_bytes(result.per_gpu_bytes)} per GPU",
            )

    pp = result.pipeline_parallel_size
    tried = f"tensor parallel {tp} on one node"
    if pp > 1:
        tried = f"tensor parallel {tp} x pipeline parallel {pp} over {pp} nodes ({tp * pp} GPUs)"
    within = f"max_nodes={request.max_nodes}"
    if request.max_nodes > arch.layers:
        within += f" (at most layers={arch.layers} pipeline stages)"
    valid = ", ".join(map(str, valid_tensor_parallel_sizes(arch, min(request.max_gpus, per_node))))
    advice: list[str] = []
    needed = next(
        (n for n in range(most_nodes + 1, arch.layers + 1) if _plan(request, tp, n).fits),
        None,
    )
    if needed is not None:
        advice.append(f"allow {needed} nodes (max_nodes={needed})")
    advice.append("use GPUs with more memory")
    if _weights_fit(request, tp, pp)[0]:
        advice.append("lower max_model_len or max_num_seqs")
    if request.weight_dtype != "int4":
        advice.append("use a quantized dtype (fp8, int8 or int4)")
    reason = (
        f"no split fits on nodes of gpus_per_node={per_node} GPUs within {within}"
        f" (tensor parallel within a node, valid for heads={arch.heads},"
        f" kv_heads={arch.kv_heads}: {valid}; pipeline parallel across nodes):"
        f" the largest split tried is {tried}, and {result.reason}; to fit,"
        f" {_or(advice)}"
    )
    return _with_reason(result, reason)


def _with_reason(result: SizingResult, reason: str) -> SizingResult:
    return replace(result, reason=reason[0].upper() + reason[1:] + ".")


_MEMORY_PATTERN = re.compile(
    r"^\s*(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*"
    r"(?P<unit>[A-Za-z]*)\s*$"
)
_MEMORY_UNITS: Mapping[str, int] = MappingProxyType(
    {
        "": 1,
        "b": 1,
        **{p: 1000**i for i, p in enumerate("kmgtpe", start=1)},
        **{f"{p}b": 1000**i for i, p in enumerate("kmgtpe", start=1)},
        **{f"{p}i": 1024**i for i, p in enumerate("kmgtpe", start=1)},
        **{f"{p}ib": 1024**i for i, p in enumerate("kmgtpe", start=1)},
    }
)

_MEMORY_LIMIT = 2**64


def parse_memory(value: str) -> int:
    """Parse a memory size into bytes.

    Accepts plain bytes (``"85899345920"``), Kubernetes-style binary units
    (``"80Gi"``, ``"81920Mi"``), the same with ``B`` (``"80GiB"``) and decimal
    SI units (``"80G"``, ``"80GB"`` = 80 * 10**9). Units are
    case-insensitive; fractions are rounded up to a whole byte. Raises
    :class:`ValueError` naming the value when it is malformed or not positive.
    """
    match = _MEMORY_PATTERN.match(value)
    multiplier = _MEMORY_UNITS.get(match.group("unit").lower()) if match else None
    if match is None or multiplier is None:
        raise ValueError(
            f"invalid memory size {value!r}: expected a number with an optional"
            " unit such as Ki, Mi, Gi, Ti (or KiB, GiB) or K, M, G, T (or GB)"
        )
    try:
        amount = Decimal(match.group("number")) * multiplier
    except ArithmeticError as exc:  # decimal signals, e.g. Overflow
        raise ValueError(f"invalid memory size {value!r}: {exc}") from exc
    if amount > _MEMORY_LIMIT:
        raise ValueError(f"invalid memory size {value!r}: larger than 2**64 bytes")
    size = int(amount.to_integral_value(rounding=ROUND_CEILING))
    if size <= 0:
        raise ValueError(f"invalid memory size {value!r}: must be positive")
    return size


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

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
        return _normalize_dtype("dtype", text)
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
    busiest = _stage_layers(arch.layers, pp)[0]
    overhead_per_gpu = _weights_fit(request, tp, pp)[2]
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


# ---------------------------------------------------------------------------------------------
# llama.cpp on CPU
# ---------------------------------------------------------------------------------------------

LLAMACPP_KV_BYTES = 2  # llama-server's default cache type: f16 keys and values
LLAMACPP_OVERHEAD_BYTES = 256 * MiB


@dataclass(frozen=True)
class LlamaCppSizing:
    """What one llama-server pod needs: the GGUF, the KV cache of every slot, the overhead (bytes)."""

    gguf_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int

    @property
    def memory_bytes(self) -> int:
        total = self.gguf_bytes + self.kv_cache_bytes + self.overhead_bytes
        return -(-total // MiB) * MiB


def size_llamacpp(
    gguf_bytes: int,
    layers: int,
    kv_heads: int,
    head_dim: int,
    ctx_size: int,
    parallel: int,
    prompt_cache_bytes: int = 0,
) -> LlamaCppSizing:
    """A llama-server pod serving ``parallel`` slots of ``ctx_size`` tokens each from a GGUF of ``gguf_bytes``, with
    ``prompt_cache_bytes`` of cached prompts (``--cache-ram``) counted in its overhead."""
    for name, value in (
        ("gguf_bytes", gguf_bytes),
        ("layers", layers),
        ("kv_heads", kv_heads),
        ("head_dim", head_dim),
        ("ctx_size", ctx_size),
        ("parallel", parallel),
    ):
        _check_positive_int(name, value)
    kv = 2 * layers * kv_heads * head_dim * LLAMACPP_KV_BYTES * ctx_size * parallel
    overhead = LLAMACPP_OVERHEAD_BYTES + prompt_cache_bytes
    return LlamaCppSizing(gguf_bytes=gguf_bytes, kv_cache_bytes=kv, overhead_bytes=overhead)


def llamacpp_threads(cpu: str) -> int:
    """Decode threads for a CPU limit (a Kubernetes quantity: ``2``, ``1500m``): the whole CPUs it grants."""
    millis = Decimal(cpu[:-1]) / 1000 if cpu.endswith("m") else Decimal(cpu)
    return max(1, int(millis.to_integral_value(ROUND_FLOOR)))


@dataclass(frozen=True)
class GgufFacts:
    """What sizing reads from a GGUF file: its size and the shape of its attention (``architecture`` keys)."""

    path: str
    gguf_bytes: int
    architecture: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    params: int


def read_gguf(path: str) -> GgufFacts:
    """The GGUF's metadata, through PyPI's ``gguf`` reader (memory-mapped: the weights are not read)."""
    import os

    from gguf import GGUFReader  # only the CLI needs it

    reader = GGUFReader(path)

    def field(name: str) -> int | str:
        found = reader.get_field(name)
        if found is None:
            raise SizingError("gguf", f"{path} has no {name} in its metadata")
        value = found.contents()
        return value if isinstance(value, str) else int(value)

    arch = str(field("general.architecture"))
    heads = int(field(f"{arch}.attention.head_count"))
    embedding = int(field(f"{arch}.embedding_length"))
    key_length = reader.get_field(f"{arch}.attention.key_length")
    return GgufFacts(
        path=path,
        gguf_bytes=os.path.getsize(path),
        architecture=arch,
        layers=int(field(f"{arch}.block_count")),
        heads=heads,
        kv_heads=int(field(f"{arch}.attention.head_count_kv")),
        head_dim=int(key_length.contents()) if key_length is not None else embedding // heads,
        context_length=int(field(f"{arch}.context_length")),
        params=sum(int(t.n_elements) for t in reader.tensors),
    )


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


if __name__ == "__main__":
    raise SystemExit(main())
