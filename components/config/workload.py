"""The blocks of a model (``models[i]``) that say what its pods run and hold: the image (prebuilt or built), the
model's shape (``architecture``) and llama.cpp's settings, per-pod resources, the startup probe budget, the model
cache, tolerations and the rolling-update bounds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from components import sizing
from components.config import derive
from components.config.declare import REQUIRED, Block, key
from components.config.kinds import (
    ENV_NAME,
    TAINT_EFFECTS,
    Choice,
    DnsLabel,
    Flag,
    ImageRef,
    Int,
    LabelKey,
    Number,
    Quantity,
    StringMap,
    Strings,
    Text,
    check_image,
    check_label_value,
)

_key = key
TMP_SIZE = "2Gi"  # the writable /tmp emptyDir of every model pod
# A hub revision (`modelRevision`, a canary's): a commit, never a branch or tag that moves.
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def check_revision(value: str) -> str | None:
    if not COMMIT.match(value):
        return f"must be a full commit hash, 40 lower-case hex digits (got {value!r})"
    return None


@dataclass(frozen=True, kw_only=True)
class ImageBuildConfig:
    """Build the model server image with Docker (needs the docker provider plugin)."""

    type_name: ClassVar[str] = "ImageBuild"
    image_name: str = key(ImageRef(), REQUIRED, "name (and tag) to build")
    context: str = key(Text("path"), "app", "build context")
    dockerfile: str = key(Text("path"), "app/Dockerfile", "Dockerfile")
    args: Mapping[str, str] = key(StringMap(ENV_NAME), {}, "build arguments (e.g. `MODEL_DIR`)")
    platform: str = key(Choice(("linux/amd64", "linux/arm64")), "linux/amd64", "target platform")
    cache_from: tuple[str, ...] = key(Strings("list of refs", check_image), (), "cache sources")
    push: bool = key(Flag(), False, "push; the image reference becomes the pushed digest")
    registry_server: str | None = key(
        Text(), None, "registry to log in to for pushes (password: secret `registryPassword`)", name="registry.server"
    )
    registry_username: str | None = key(Text(), None, "user of that registry", name="registry.username")

    @property
    def logs_in(self) -> bool:
        """Whether the build pushes to a registry it logs in to, with the secret ``registryPassword``."""
        return self.push and bool(self.registry_server)


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """Exactly one of ref (a prebuilt image: a tag other than latest, or a digest) or build."""

    type_name: ClassVar[str] = "Image"
    ref: str | None = key(
        ImageRef(), None, "prebuilt image; a tag other than `latest` or a digest is required (`imageLock` may pin it)"
    )
    build: ImageBuildConfig | None = key(Block(ImageBuildConfig), None, "build the image from a Docker context")


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """A model's shape, from which GPUs, memory, /dev/shm and vLLM arguments are derived (GPU engines)."""

    params: float = key(Number(0, 1e13), REQUIRED, "parameter count, e.g. `8.03e9`")
    layers: int = key(Int(1, 1000), REQUIRED, "hidden layers")
    heads: int = key(Int(1, 1024), REQUIRED, "attention heads")
    kv_heads: int = key(Int(1, 1024), REQUIRED, "key/value heads (fewer than heads with GQA)")
    head_dim: int = key(Int(1, 4096), REQUIRED, "dimension of one head")
    dtype: str = key(Choice(tuple(sizing.DTYPE_BYTES)), "bf16", "weight dtype")
    max_model_len: int = key(Int(16, 10_000_000), 4096, "longest sequence served (`--max-model-len`)")
    max_num_seqs: int = key(Int(1, 100_000), 16, "sequences served at once (`--max-num-seqs`)")
    gpu_memory_utilization: float = key(
        Number(0.05, 1), 0.9, "share of GPU memory vLLM may use (`--gpu-memory-utilization`)"
    )


@dataclass(frozen=True, kw_only=True)
class LlamaCppConfig:
    """How llama-server serves the model (engine `llamacpp`): its slots, their context and the GGUF it loads."""

    type_name: ClassVar[str] = "LlamaCpp"
    ctx_size: int = key(
        Int(64, 1_048_576), 4096, "context tokens of one slot: prompt and answer (`--ctx-size` is this × parallel)"
    )
    parallel: int = key(
        Int(1, 256),
        4,
        "slots decoded at once (`--parallel`, continuous batching); more requests wait (`llamacpp:requests_deferred`)",
    )
    max_tokens: int = key(
        Int(1, 1_048_576),
        512,
        "tokens an answer generates when its request sets no `max_tokens` (`--n-predict`): a base model may not stop",
    )
    model_file: str = key(
        Text("file name", pattern=re.compile(r"^[^/\0]+$")), "model.gguf", "the GGUF in `modelDir` (`--model`)"
    )
    gguf_bytes: int | None = key(
        Int(1),
        None,
        "the GGUF's size in bytes (`python -m components.sizing --gguf FILE` prints it): with `architecture`, "
        "`resources.memory` is sized from it",
        unset="`resources.memory` as given or its default",
    )
    chat_template: str | None = key(
        Text(),
        None,
        "`--chat-template`: one of llama.cpp's built-in templates by name (e.g. `gemma`), for a GGUF that carries "
        "none (served with `--no-jinja`)",
        unset="the GGUF's own",
    )
    prompt_cache_mib: int = key(
        Int(0, 1_048_576), 256, "MiB of host memory for cached prompts (`--cache-ram`; 0: off); counted in sizing"
    )


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Per pod; requests equal limits."""

    cpu: str = key(Quantity(), "4", "CPU")
    memory: str = key(Quantity(), derive.MEMORY_DEFAULT, "memory")
    ephemeral_storage: str = key(Quantity(), "10Gi", "ephemeral storage: `/tmp`, an emptyDir model cache, logs")
    gpus: int = key(Int(0, 16), derive.GPUS, "whole GPUs per pod, in limits and requests")


# Classes a cluster's administrators create go up to this value; above it are the system's.
PRIORITY_MAX = 1_000_000_000


@dataclass(frozen=True, kw_only=True)
class PriorityClassConfig:
    """The PriorityClass of the model's pods: serving outranks (and preempts) batch work on shared nodes."""

    type_name: ClassVar[str] = "PriorityClass"
    name: str = key(DnsLabel(), derive.PRIORITY_CLASS, "the class's name")
    value: int = key(
        Int(1, PRIORITY_MAX),
        1_000_000,
        "its priority when the model creates it; pods without a class have 0 (or the cluster's default class)",
    )
    create: bool = key(
        Flag(),
        True,
        "the model creates the class (cluster-scoped, removed with the model); false: the cluster has it already "
        "(then `name` is required)",
    )


@dataclass(frozen=True, kw_only=True)
class Probes:
    """How long the model may take to load, and how often the startup probe asks."""

    model_load_seconds: int = key(
        Int(10, 4 * 3600), derive.engine_default("model_load_seconds"), "startup budget for loading the model"
    )
    period_seconds: int = key(Int(1, 300), 10, "startup probe period")


@dataclass(frozen=True, kw_only=True)
class ModelCache:
    """Where the model hub cache (/cache) lives."""

    type: str = key(Choice(("emptyDir", "pvc")), "emptyDir", "an emptyDir, or a PVC that outlives the pods")
    size: str = key(Quantity(), "8Gi", f"its size; an emptyDir plus {TMP_SIZE} of `/tmp` must fit ephemeralStorage")
    storage_class: str | None = key(Text(), None, "the PVC's storage class", unset="the cluster's default")
    access_mode: str = key(
        Choice(("ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany", "ReadOnlyMany")),
        "ReadWriteOnce",
        "the PVC's; `ReadWriteMany` or `ReadOnlyMany` when several pods share it",
    )
    prestage: bool = key(
        Flag(),
        False,
        "download `modelRevision` once into the PVC with a Job before any pod starts; the pods mount it read-only "
        "and stay offline (type `pvc`, `ReadWriteMany`, engine `vllm`)",
    )
    prestage_deadline_seconds: int = key(
        Int(60, 24 * 3600), 7200, "how long the download Job may take, retries included"
    )
    prestage_image: str | None = key(
        ImageRef(),
        None,
        "the image the pre-stage Job runs: Python 3 with huggingface_hub (`imageLock` may pin it)",
        unset="the model's image (vLLM's has both)",
    )


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """How a new version replaces the pods."""

    max_surge: int = key(Int(0, 100), 0, "extra pods during a rollout; 0 never asks for a GPU the pool lacks")
    max_unavailable: int = key(Int(0, 100), 1, "pods a rollout may take down; not 0 when maxSurge is 0")
    progress_deadline_seconds: int | None = key(
        Int(30),
        None,
        "a rollout making no progress this long fails (`up` reports the pods' reasons)",
        unset="`probes.modelLoadSeconds` + 900, at least 600",
    )


@dataclass(frozen=True, kw_only=True)
class Toleration:
    """A taint the model's pods tolerate (a Kubernetes toleration)."""

    type_name: ClassVar[str] = "ModelToleration"  # the provider's GpuScheduling output has a Toleration of its own
    key: str = _key(LabelKey("taint key"), REQUIRED, "the taint's key")
    operator: str = _key(Choice(("Equal", "Exists")), "Equal", "`Equal`: the taint's value is `value`; `Exists`: any")
    value: str | None = _key(
        Text("label value", check=check_label_value),
        None,
        "the taint's value, for `Equal` (not with `Exists`)",
        unset="empty (a taint without a value)",
    )
    effect: str = _key(Choice(TAINT_EFFECTS), REQUIRED, "the taint's effect")
