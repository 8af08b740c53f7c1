"""Memory sizing for serving a decoder-only transformer: on GPUs with vLLM, on CPU with llama.cpp.

Pure functions, standard library only (reading a GGUF also needs PyPI's ``gguf``). Given a model architecture, a
weight dtype, the context length, the number of concurrent sequences and the GPU memory, :func:`size_model` picks
the smallest valid tensor-parallel size and reports whether the model fits, and why not when it does not. Given the
GPUs of one node (``gpus_per_node``), a model too big for one node is split over several with pipeline parallelism,
as vLLM runs multi-node.

The package, by concern (every public name is re-exported here, so ``from components import sizing`` is enough):

``request``      the inputs and the answer: :class:`ModelArchitecture`, :class:`SizingRequest`,
                 :class:`SizingResult`, :class:`SizingError`, dtypes, valid tensor-parallel sizes
``memory``       the memory model: weights, KV cache, overhead per GPU, ``/dev/shm`` and host memory of a layout
``parallelism``  the plan: tensor parallel x pipeline parallel x nodes (:func:`size_model`,
                 :func:`min_gpus_for_weights`)
``cpu``          llama.cpp on CPU: :func:`size_llamacpp`, :func:`llamacpp_threads`, :func:`read_gguf`
``units``        byte units, :func:`format_bytes`, :func:`parse_memory`
``cli``          ``python -m components.sizing`` (:func:`main`)
"""

from __future__ import annotations

from components.sizing.cli import main
from components.sizing.cpu import LLAMACPP_KV_BYTES as LLAMACPP_KV_BYTES
from components.sizing.cpu import LLAMACPP_OVERHEAD_BYTES as LLAMACPP_OVERHEAD_BYTES
from components.sizing.cpu import GgufFacts, LlamaCppSizing, llamacpp_threads, read_gguf, size_llamacpp
from components.sizing.memory import HOST_BASE_BYTES as HOST_BASE_BYTES
from components.sizing.memory import HOST_BYTES_PER_GPU as HOST_BYTES_PER_GPU
from components.sizing.memory import OVERHEAD_FIXED_BYTES as OVERHEAD_FIXED_BYTES
from components.sizing.memory import OVERHEAD_TP_COMM_BYTES as OVERHEAD_TP_COMM_BYTES
from components.sizing.memory import OVERHEAD_WEIGHT_FRACTION as OVERHEAD_WEIGHT_FRACTION
from components.sizing.memory import SHM_BYTES_PER_GPU as SHM_BYTES_PER_GPU
from components.sizing.parallelism import min_gpus_for_weights, size_model
from components.sizing.request import DTYPE_ALIASES as DTYPE_ALIASES
from components.sizing.request import (
    DTYPE_BYTES,
    ModelArchitecture,
    SizingError,
    SizingRequest,
    SizingResult,
    valid_tensor_parallel_sizes,
)
from components.sizing.request import KV_BLOCK_TOKENS as KV_BLOCK_TOKENS
from components.sizing.request import WEIGHT_ONLY_QUANTIZED_DTYPES as WEIGHT_ONLY_QUANTIZED_DTYPES
from components.sizing.request import is_valid_tensor_parallel_size as is_valid_tensor_parallel_size
from components.sizing.units import GiB as GiB
from components.sizing.units import KiB as KiB
from components.sizing.units import MiB as MiB
from components.sizing.units import format_bytes, parse_memory

# ``__all__`` is the package's surface, as before the split; the constants imported ``as`` themselves above stay
# reachable as ``sizing.GiB`` and the like.
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
