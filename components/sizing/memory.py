"""The memory model of one vLLM replica: what a layout (tensor parallel ``tp`` x pipeline parallel ``pp``) needs
on each GPU, and what its pods need besides (:func:`size_layout`). Which layout to use is
:mod:`components.sizing.parallelism`'s choice.

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
A pipeline stage's GPU holds the stage's layers only (see :mod:`components.sizing.parallelism`).

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

import math

from components.sizing.request import DTYPE_BYTES, KV_BLOCK_TOKENS, ModelArchitecture, SizingRequest, SizingResult
from components.sizing.units import GiB, MiB, format_bytes

OVERHEAD_FIXED_BYTES = 2 * GiB
OVERHEAD_WEIGHT_FRACTION = 0.05
OVERHEAD_TP_COMM_BYTES = 512 * MiB
SHM_BYTES_PER_GPU = 1 * GiB
HOST_BASE_BYTES = 4 * GiB
HOST_BYTES_PER_GPU = 2 * GiB


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


def stage_layers(layers: int, pp: int) -> list[int]:
    """Layers of each pipeline stage, as even as possible, busiest first."""
    base, extra = divmod(layers, pp)
    return [base + 1] * extra + [base] * (pp - extra)


def _shard_bytes(request: SizingRequest, tp: int, layers_in_stage: int) -> int:
    """Weights on one GPU of a stage: ``ceil(weights * layers_in_stage / layers / tp)``."""
    layers = request.architecture.layers
    return -(-_weights_bytes(request) * layers_in_stage // (layers * tp))


def weights_fit(request: SizingRequest, tp: int, pp: int = 1) -> tuple[bool, int, int]:
    """Whether weights plus overhead fit one GPU of the busiest stage, with those two figures (KV cache ignored)."""
    busiest = stage_layers(request.architecture.layers, pp)[0]
    weights_per_gpu = _shard_bytes(request, tp, busiest)
    overhead = _overhead_per_gpu(weights_per_gpu, tp * pp)
    fits = weights_per_gpu + overhead <= request.usable_bytes_per_gpu
    return fits, weights_per_gpu, overhead


def budget_text(request: SizingRequest) -> str:
    """The usable memory of one GPU, in words, for reasons: ``'72.00 GiB usable per GPU (80.00 GiB x 0.9)'``."""
    return (
        f"{format_bytes(request.usable_bytes_per_gpu)} usable per GPU"
        f" ({format_bytes(request.gpu_memory_bytes)} x"
        f" {request.gpu_memory_utilization:g})"
    )


def _at(request: SizingRequest, tp: int, pp: int) -> str:
    if pp == 1:
        return f"at tensor_parallel_size={tp}"
    layers = request.architecture.layers
    busiest = stage_layers(layers, pp)[0]
    return f"at tensor_parallel_size={tp} x pipeline_parallel_size={pp} ({busiest} of {layers} layers per stage)"


def size_layout(request: SizingRequest, tp: int, pp: int = 1) -> SizingResult:
    """Size ``request`` at tensor-parallel ``tp`` x pipeline-parallel ``pp`` (assumed valid)."""
    arch = request.architecture
    weights = _weights_bytes(request)
    stages = stage_layers(arch.layers, pp)
    weights_ok, weights_per_gpu, overhead_per_gpu = weights_fit(request, tp, pp)
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
    if not weights_ok:
        reason = (
            f"{_at(request, tp, pp)} each GPU needs"
            f" {format_bytes(weights_per_gpu)} of {request.weight_dtype} weights plus"
            f" {format_bytes(overhead_per_gpu)} overhead, more than the"
            f" {budget_text(request)}"
        )
    elif not fits:
        sequences = capacity // request.tokens_per_sequence
        reason = (
            f"{_at(request, tp, pp)} the KV cache for"
            f" {request.max_num_seqs} x {request.max_model_len} tokens needs"
            f" {format_bytes(kv_per_gpu)} per GPU, but only {format_bytes(free)}"
            f" of the {budget_text(request)} remain after"
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
