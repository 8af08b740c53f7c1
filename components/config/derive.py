"""Defaults that depend on other keys (the engine, the model's sizing, the stack's namespace), and the sizing
itself. Each function takes the :class:`~components.config.declare.Scope` of the block being read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from components import sizing
from components.config.declare import Derived, Scope
from components.config.engines import ENGINES
from components.config.kinds import INVALID

MEMORY = "16Gi"  # per pod, unless sized from an architecture
SHM = "1Gi"  # /dev/shm of a pod with at most one GPU
SHM_MULTI_GPU = "8Gi"  # NCCL's shared-memory transport between the GPUs of a pod


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return f'"{value}"' if isinstance(value, str) and value[:1].isdigit() else str(value)


def engine_default(attr: str) -> Derived:
    """The engine's own value (:data:`ENGINES`); the docs list it per engine."""
    values = {name: getattr(engine, attr) for name, engine in ENGINES.items()}
    if len({repr(v) for v in values.values()}) == 1:
        doc = f"`{_flow(next(iter(values.values())))}` (every engine)"
    else:
        doc = "; ".join(f"`{name}`: `{_flow(v)}`" for name, v in values.items())
    return Derived(doc, lambda s: getattr(ENGINES[s["engine"]], attr))


def _gibibytes(value: int) -> str:
    return f"{max(1, math.ceil(value / 2**30))}Gi"


def _gpus(s: Scope) -> int:
    sized = s["sizing"]
    if sized is None:
        return ENGINES[s["engine"]].gpus
    return int(sized.gpus_per_replica // sized.nodes_per_replica)  # per pod: one node's share of a replica


GPUS = Derived(
    ", ".join(f"`{e.gpus}` for `{name}`" for name, e in ENGINES.items())
    + "; with an architecture, from sizing (per pod: a replica over several nodes has one pod per node)",
    _gpus,
)


def _memory(s: Scope) -> str:
    sized, cpu_sized = s["sizing"], s["cpu_sizing"]
    if cpu_sized is not None:
        return f"{cpu_sized.memory_bytes // 2**20}Mi"
    return _gibibytes(sized.host_memory_bytes) if sized is not None else MEMORY


MEMORY_DEFAULT = Derived(
    f"`{MEMORY}`; with an architecture, from sizing (`llamacpp`: also needs `llamacpp.ggufBytes`)", _memory
)


def size_llamacpp(s: Scope) -> Any:
    """A llamacpp model with its GGUF's size and shape: the memory its pod needs (the GGUF, every slot's KV cache,
    the prompt cache and the overhead)."""
    arch, settings = s["architecture"], s["llamacpp"]
    if s["engine"] != "llamacpp" or settings.gguf_bytes is None or arch is None:
        return None
    return sizing.size_llamacpp(
        settings.gguf_bytes,
        arch.layers,
        arch.kv_heads,
        arch.head_dim,
        settings.ctx_size,
        settings.parallel,
        prompt_cache_bytes=settings.prompt_cache_mib * 2**20,
    )


def _shm(s: Scope) -> str:
    sized = s["sizing"]
    if sized is not None:
        return _gibibytes(sized.shm_bytes)
    return SHM_MULTI_GPU if s["resources"].gpus > 1 else SHM


SHM_DEFAULT = Derived(f"`{SHM}` (`{SHM_MULTI_GPU}` for more than one GPU); with an architecture, from sizing", _shm)


NAMESPACE = Derived("`<namespace>-<name>`", lambda s: f"{s.outer['namespace']}-{s['name']}"[:63].rstrip("-"))
# A model's own PriorityClass is named after its namespace, unique in the cluster as the namespace is.
PRIORITY_CLASS = Derived("the model's namespace", lambda s: s.outer["namespace"])


def image_override(s: Scope) -> Any:
    """``imageRefOverride`` replaces every model's image (checked where it is given)."""
    from components.config.workload import ImageConfig

    ref = s.outer["image_ref_override"]
    return None if ref is None else ImageConfig(ref=ref)


# Sizing's field names and the config keys they come from.
_ARCH_FIELD_KEYS = {
    "kv_heads": "kvHeads",
    "head_dim": "headDim",
    "max_model_len": "maxModelLen",
    "max_num_seqs": "maxNumSeqs",
    "gpu_memory_utilization": "gpuMemoryUtilization",
}


def size(s: Scope) -> Any:
    """A GPU engine's model with an architecture: its GPUs, memory and /dev/shm, or why it does not fit."""
    arch = s["architecture"]
    if arch is None or not ENGINES[s["engine"]].uses_gpus:
        return None
    pool = s.outer["gpu_pool"]
    gpus = s.raw("resources.gpus")
    if isinstance(gpus, int) and pool.gpus_per_node is not None and gpus > pool.gpus_per_node:
        s.problems.add(
            s.key("resources.gpus"),
            f"is per pod and a node has gpuPool.gpusPerNode {pool.gpus_per_node} GPUs (got {gpus}); leave it unset "
            "and sizing spreads a replica over several nodes",
        )
        return INVALID
    request = sizing.SizingRequest(
        architecture=sizing.ModelArchitecture(
            params=arch.params, layers=arch.layers, heads=arch.heads, kv_heads=arch.kv_heads, head_dim=arch.head_dim
        ),
        dtype=arch.dtype,
        max_model_len=arch.max_model_len,
        max_num_seqs=arch.max_num_seqs,
        gpu_memory_bytes=sizing.parse_memory(pool.gpu_memory),
        gpu_memory_utilization=arch.gpu_memory_utilization,
        gpus=gpus if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 0 else None,
        gpus_per_node=pool.gpus_per_node,
    )
    try:
        result = sizing.size_model(request)
    except sizing.SizingError as error:
        if error.field == "gpus":
            key = s.key("resources.gpus")
        elif error.field == "gpu_memory_bytes":
            key = "gpuPool.gpuMemory"
        else:
            key = s.key(f"architecture.{_ARCH_FIELD_KEYS.get(error.field, error.field)}")
        s.problems.add(key, str(error).split(" ", 1)[1])
        return INVALID
    if not result.fits:
        if request.gpus is not None:
            s.problems.add(
                s.key("resources.gpus"),
                f"is {request.gpus} but {s.key('architecture')} does not fit on {request.gpus} GPU(s) "
                f"of gpuPool.gpuMemory {pool.gpu_memory}: {result.reason}",
            )
        else:
            s.problems.add(s.key("architecture"), f"does not fit gpuPool.gpuMemory {pool.gpu_memory}: {result.reason}")
        return INVALID
    return result
