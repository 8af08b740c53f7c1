"""What GPU sizing takes and gives: a model's architecture (:class:`ModelArchitecture`), the serving settings
(:class:`SizingRequest`), the answer (:class:`SizingResult`) and the error naming a bad input (:class:`SizingError`).

Also the rules these inputs obey: the dtypes and their bytes per element (:data:`DTYPE_BYTES`), vLLM's KV-cache
block, and which tensor-parallel sizes an architecture can be sharded over (:func:`valid_tensor_parallel_sizes`).
The memory they lead to is :mod:`components.sizing.memory`'s; the choice of a layout is
:mod:`components.sizing.parallelism`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_FLOOR, Decimal
from types import MappingProxyType

from components.sizing.units import GiB

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


class SizingError(ValueError):
    """An invalid sizing input. ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


def check_positive_int(field: str, value: object) -> None:
    """Raise :class:`SizingError` naming ``field`` unless ``value`` is a positive int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SizingError(field, f"must be an integer (got {value!r})")
    if value <= 0:
        raise SizingError(field, f"must be positive (got {value})")


def normalize_dtype(field: str, value: object) -> str:
    """``value`` as a key of :data:`DTYPE_BYTES` (case-insensitive, aliases accepted), else :class:`SizingError`."""
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
            check_positive_int(name, getattr(self, name))
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


def invalid_tensor_parallel_note(architecture: ModelArchitecture, limit: int) -> str:
    """Why each power of two up to ``limit`` that is not a valid size is not, ``'; '``-separated."""
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
    """What to size. See :mod:`components.sizing.memory` for the memory model.

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
        normalize_dtype("dtype", self.dtype)
        if self.kv_cache_dtype is not None:
            normalize_dtype("kv_cache_dtype", self.kv_cache_dtype)
        for name in ("max_model_len", "max_num_seqs", "gpu_memory_bytes", "max_gpus", "max_nodes"):
            check_positive_int(name, getattr(self, name))
        if self.gpus_per_node is not None:
            check_positive_int("gpus_per_node", self.gpus_per_node)
        utilization: object = self.gpu_memory_utilization
        if isinstance(utilization, bool) or not isinstance(utilization, int | float) or not 0 < utilization <= 1:
            raise SizingError(
                "gpu_memory_utilization",
                f"must be in (0, 1] (got {utilization!r})",
            )
        if self.gpus is not None:
            check_positive_int("gpus", self.gpus)
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
        return normalize_dtype("dtype", self.dtype)

    @property
    def effective_kv_cache_dtype(self) -> str:
        """The KV-cache dtype actually sized (pass it to vLLM explicitly)."""
        if self.kv_cache_dtype is not None:
            return normalize_dtype("kv_cache_dtype", self.kv_cache_dtype)
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
