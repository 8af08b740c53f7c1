"""CPU engines: what a llama.cpp (``llamacpp`` engine) pod needs (:func:`size_llamacpp`, :func:`llamacpp_threads`)
and the facts read from its GGUF file (:func:`read_gguf`).

``memory_bytes = gguf_bytes + kv_cache_bytes + LLAMACPP_OVERHEAD_BYTES``, rounded up to a whole MiB, where
the GGUF is read through mmap (its pages are charged to the pod's cgroup as it is read) and the KV cache holds
``ctx_size * parallel`` tokens (llama-server gives each of its ``parallel`` slots ``ctx_size`` tokens) of
``2 * layers * kv_heads * head_dim`` f16 elements (2 bytes each). Models with sliding-window layers (Gemma 3)
need less: this is the upper bound. ``LLAMACPP_OVERHEAD_BYTES`` covers the server, its compute buffers at the
default batch sizes and the output logits of a large vocabulary (measured: docs/gpu-sizing.md). Threads
follow the CPU limit: ``threads = max(1, floor(cpu))``, so the decode threads never outnumber the CPUs the
CFS quota grants.

:func:`read_gguf` gives the GGUF's size and attention shape from its metadata (``python -m components.sizing --gguf``
prints them with the config keys to set).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from components.sizing.request import SizingError, check_positive_int
from components.sizing.units import MiB

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
        check_positive_int(name, value)
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
