"""The parallelism plan of a vLLM replica: how many GPUs, as tensor parallel ``tp`` x pipeline parallel ``pp``
over how many nodes (:func:`size_model`), and the fewest GPUs the weights need (:func:`min_gpus_for_weights`).

Given a model architecture, a weight dtype, the context length, the number of concurrent sequences and the GPU
memory, :func:`size_model` picks the smallest valid tensor-parallel size and reports whether the model fits, and
why not when it does not. Given the GPUs of one node (``gpus_per_node``), a model too big for one node is split
over several with pipeline parallelism, as vLLM runs multi-node. Each candidate layout is sized by
:func:`components.sizing.memory.size_layout`.

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
"""

from __future__ import annotations

from dataclasses import replace

from components.sizing.memory import budget_text, size_layout, stage_layers, weights_fit
from components.sizing.request import (
    SizingError,
    SizingRequest,
    SizingResult,
    invalid_tensor_parallel_note,
    valid_tensor_parallel_sizes,
)
from components.sizing.units import format_bytes


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
        if weights_fit(request, tp)[0]:
            return tp
    largest = sizes[-1]
    _, weights_per_gpu, overhead = weights_fit(request, largest)
    raise SizingError(
        "gpu_memory_bytes",
        f"is too small for the weights at any valid tensor-parallel size: at"
        f" the largest, {largest}, each GPU needs {format_bytes(weights_per_gpu)}"
        f" of weights plus {format_bytes(overhead)} overhead, more than the"
        f" {budget_text(request)}",
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
        result = size_layout(request, tp)
        if result.fits:
            return result
    if per_node is not None:
        return _split_over_nodes(request, per_node, result)
    valid = ", ".join(map(str, sizes))
    reason = (
        f"no valid tensor-parallel size up to max_gpus={request.max_gpus} fits"
        f" (valid for heads={arch.heads}, kv_heads={arch.kv_heads}: {valid}"
    )
    invalid = invalid_tensor_parallel_note(arch, request.max_gpus)
    if invalid:
        reason += f"; {invalid}"
    reason += f"): {result.reason}"
    if not weights_fit(request, result.tensor_parallel_size)[0]:
        reason += f"; {_weights_hint(request)}"
    return _with_reason(result, reason)


def _check_gpus(request: SizingRequest, gpus: int) -> SizingResult:
    """Check an explicit ``gpus`` (validated): one node, or whole nodes."""
    per_node = request.gpus_per_node
    tp, pp = gpus, 1
    if per_node is not None and gpus > per_node:
        tp, pp = per_node, gpus // per_node
    result = size_layout(request, tp, pp)
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
    if pp == 1 and not weights_fit(request, gpus)[0]:
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
        result = size_layout(request, tp, pp)
        if result.fits:
            busiest = stage_layers(arch.layers, pp)[0]
            return _with_reason(
                result,
                f"{_params_text(request)} with {request.max_num_seqs} x"
                f" {request.max_model_len} tokens of KV cache need"
                f" {format_bytes(single.per_gpu_bytes)} per GPU on one node of"
                f" gpus_per_node={per_node} (at tensor parallel {tp}), more than the"
                f" {budget_text(request)}, so the model is split as tensor parallel {tp}"
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
        (n for n in range(most_nodes + 1, arch.layers + 1) if size_layout(request, tp, n).fits),
        None,
    )
    if needed is not None:
        advice.append(f"allow {needed} nodes (max_nodes={needed})")
    advice.append("use GPUs with more memory")
    if weights_fit(request, tp, pp)[0]:
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
