"""The components as seen from other languages: ``GpuNodePool`` and ``ModelService`` served by Pulumi's
component provider host (``__main__.py``), so a YAML or TypeScript stack can ``pulumi package add`` them.

The host infers the package schema from type annotations. The library's own args are dataclasses of
validated config (``ModelConfig``, ``GpuPoolConfig``), which it cannot describe, so each component here
takes a TypedDict of its inputs whose keys are exactly the stack-config keys (``models[i]``, ``gpuPool``),
generated from the config schema into ``model_serving_types.py``. The subclasses turn those raw inputs into
typed config with ``parse_stack_config`` (the same validation and error messages as ``stacks/*.yaml``) and
then run the library component's own ``__init__``: the same type token, the same children, the same outputs.

No ``from __future__ import annotations``: the host reads the annotations at run time, so they must be
real types, not strings. The output annotations are repeated from the library classes for that reason.
"""

import importlib.metadata
import threading
import tomllib
from pathlib import Path
from typing import Any, TypedDict

import pulumi
from model_serving_types import GpuPool, ModelServiceArgs

import components
from components import specs
from components.capacity import GpuBudgetError, GpuCapacity, PoolScheduling
from components.config import (
    SECRET_KEYS,
    ConfigError,
    GpuPoolConfig,
    ModelConfig,
    Problem,
    StackConfig,
    parse_stack_config,
)

PACKAGE = "model-serving"  # type tokens model-serving:index:<Name>, as in the library
DISTRIBUTION = "model-serving-components"  # the library's distribution (the repository's pyproject.toml)


def library_version() -> str:
    """The one version of the library and this provider: ``[project] version`` of the repository's
    ``pyproject.toml`` next to this directory, else (the provider installed elsewhere) the installed library's."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == DISTRIBUTION:
            return str(project["version"])
    return importlib.metadata.version(DISTRIBUTION)


VERSION = library_version()

_NOT_CONFIG = ("gpuPool", "monitoring", "gateway", *SECRET_KEYS)


def _plain(value: Any) -> Any:
    """Config as the stack file would give it: no unset keys, and whole numbers as int.

    The engine sends every number as a float (8000.0); the config's integer keys rightly reject floats,
    and its number keys (params, gpuMemoryUtilization) take ints as well.
    """
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def model_config(name: str, args: ModelServiceArgs) -> tuple[ModelConfig, StackConfig]:
    """Validate ``args`` as a one-model stack config; errors name the input (``model.resources.gpus``)."""
    raw: dict[str, Any] = _plain({k: v for k, v in args.items() if k not in _NOT_CONFIG})
    raw.setdefault("name", name)
    if args.get("hubToken") is not None:
        raw["hubToken"] = True  # the stack config's flag; here the token itself says "mount it"
    config: dict[str, object] = {"models": [raw]}
    for block in ("gpuPool", "monitoring", "gateway"):
        if args.get(block) is not None:
            config[block] = _plain(args[block])
    try:
        stack = parse_stack_config(
            config,
            has_hub_token=args.get("hubToken") is not None,
            has_registry_password=args.get("registryPassword") is not None,
        )
    except ConfigError as error:
        # The input is one model: models[0].resources.gpus is model.resources.gpus.
        renamed = ConfigError.of(
            Problem("model" + p.path.removeprefix("models[0]") if p.path.startswith("models[0]") else p.path, p.message)
            for p in error.problems
        )
        raise ValueError(f"invalid ModelService {name!r}: {renamed.report()}") from None
    return stack.models[0], stack


def gpu_pool_config(name: str, args: GpuPool) -> GpuPoolConfig:
    """Validate ``args`` as the stack config's gpuPool block; errors name the key (``gpuPool.gpuBudget``)."""
    raw: dict[str, Any] = _plain(dict(args))
    raw.setdefault("name", name)
    # parse_stack_config validates a whole stack: a placeholder model (no GPU, so no budget use) completes it.
    placeholder = {"name": "placeholder", "modelId": "-", "image": {"ref": "placeholder:v0"}, "resources": {"gpus": 0}}
    try:
        return parse_stack_config({"gpuPool": raw, "models": [placeholder]}).gpu_pool
    except ConfigError as error:
        raise ValueError(f"invalid GpuNodePool {name!r}: {error.report()}") from None


# ---------------------------------------------------------------------------------------------------
# The GPU budget across components
#
# A YAML or TypeScript stack names the pool in each component's gpuPool block rather than passing the pool
# itself, and the host builds every component of a deployment in this one process. So the pools' GPU ledgers
# live here, one per (project, stack, pool name): each ModelService reserves its peak GPUs from the ledger of
# its gpuPool, and GpuNodePool sets the budget on it, whichever comes first.

_CAPACITY: dict[tuple[str, str, str], GpuCapacity] = {}
_CAPACITY_LOCK = threading.Lock()


def shared_capacity(pool: GpuPoolConfig) -> GpuCapacity:
    """The ledger of ``pool`` in this deployment, with the pool's budget when its gpuPool block gives one."""
    key = (pulumi.get_project(), pulumi.get_stack(), pool.name)
    with _CAPACITY_LOCK:
        capacity = _CAPACITY.setdefault(key, GpuCapacity(pool.name))
    capacity.limit(pool.gpu_budget)
    return capacity


def reset_capacity() -> None:
    """Forget every ledger (tests construct many deployments in one process)."""
    with _CAPACITY_LOCK:
        _CAPACITY.clear()


# ---------------------------------------------------------------------------------------------------
# Components


class Toleration(TypedDict):
    key: str
    operator: str
    effect: str


class GpuScheduling(TypedDict):
    """How a workload lands on the pool: what ModelService sets on its pods."""

    nodeSelector: dict[str, str]
    tolerations: list[Toleration]
    runtimeClassName: str
    gpuResourceName: str


class GpuNodePool(components.GpuNodePool):
    """GPU nodes of a stack: device plugin, RuntimeClass, optional Karpenter NodePool. Inputs: the gpuPool keys."""

    scheduling: pulumi.Output[GpuScheduling]  # type: ignore[assignment]  # the wire form, see below
    """Node selector, tolerations, runtime class and GPU resource name of the pool."""
    gpu_budget: pulumi.Output[int] | None  # type: ignore[assignment]
    """GPUs the pool may hold, when a budget is set."""

    def __init__(self, name: str, args: GpuPool, opts: pulumi.ResourceOptions | None = None) -> None:
        pool = gpu_pool_config(name, args)
        try:
            shared_capacity(pool)
        except GpuBudgetError as error:
            raise ValueError(f"invalid GpuNodePool {name!r}: {error}") from None
        super().__init__(name, components.GpuNodePoolArgs(pool=pool), opts)
        # The library keeps scheduling as a dataclass for Python callers (ModelServiceArgs.scheduling);
        # other languages get it as an output object of the same fields.
        wire = specs.gpu_scheduling(pool)
        self.scheduling = pulumi.Output.from_input(
            GpuScheduling(
                nodeSelector=dict(wire.node_selector),
                tolerations=[
                    Toleration(key=t["key"], operator=t["operator"], effect=t["effect"]) for t in wire.tolerations
                ],
                runtimeClassName=wire.runtime_class_name,
                gpuResourceName=wire.gpu_resource_name,
            )
        )


class ModelService(components.ModelService):
    """One model served in its own namespace. Inputs: one entry of models, the gpuPool it runs on, its secrets."""

    endpoint: pulumi.Output[str]
    """In-cluster URL of the model's Service."""
    image_ref: pulumi.Output[str]
    """The image the pods run (the pushed digest when built and pushed)."""
    namespace: pulumi.Output[str]
    """The model's namespace."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        model, stack = model_config(name, args)
        pool = stack.gpu_pool
        try:
            capacity = shared_capacity(pool)
        except GpuBudgetError as error:
            raise ValueError(f"invalid ModelService {name!r}: {error}") from None
        super().__init__(
            name,
            components.ModelServiceArgs(
                model=model,
                # The pool's ledger travels with the scheduling: the library component reserves the model's GPUs.
                scheduling=PoolScheduling.of(specs.gpu_scheduling(pool), capacity),
                hub_token=args.get("hubToken"),
                registry_password=args.get("registryPassword"),
                monitoring=stack.monitoring,
                gateway=stack.gateway,
            ),
            opts,
        )


COMPONENTS: list[type[pulumi.ComponentResource]] = [GpuNodePool, ModelService]
