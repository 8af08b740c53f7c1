"""Components one at a time under Pulumi mocks, and typed config taken from the stack files.

``run_components(lambda: ModelService(...))`` runs the lambda as a Pulumi program under mocks and returns
what it built, every resource it registered (recorded as in :mod:`tests.harness`), the options each
resource was registered with, and the outputs each component registered. ``run_model_service(model)`` does
so for one model's ModelService, with its stack's pool, monitoring and gateway: each concern's objects (the
image, workload, network, routing, scaler and monitoring) are the ModelService's children.

``typed("prod", {"models[0].replicas": 3})`` is a stack file's config with edits at key paths (the
paths config errors name), parsed into the typed config the pure builders take.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.config import (
    GatewayConfig,
    ModelConfig,
    MonitoringConfig,
    StackConfig,
    parse_stack_config,
    stack_file_config,
)
from components.specs import GpuScheduling, gpu_scheduling
from tests import harness

if TYPE_CHECKING:
    from components.model_service import ModelService

T = TypeVar("T")
ExtraOutputs = Callable[[mocks.MockResourceArgs], Mapping[str, Any] | None]

# Marks a key to delete in an edit.
DELETE = object()


@dataclass(frozen=True)
class Options:
    """What the engine received besides the inputs."""

    custom_timeouts: dict[str, str]
    dependencies: list[str]


@dataclass
class Components(harness.Run, Generic[T]):
    built: T
    options: dict[str, Options]
    component_outputs: dict[str, dict[str, Any]]
    component_secret_outputs: dict[str, list[str]]

    def options_of(self, type_: str, name: str) -> Options:
        return self.options[self.one(type_, name).urn]


class _Recorder(harness._Recorder):
    def __init__(self, extra: ExtraOutputs | None) -> None:
        self.extra = extra

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        id_, outputs = super().new_resource(args)
        if self.extra is not None:
            outputs.update(self.extra(args) or {})
        return id_, outputs


class _Monitor(harness._Monitor):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__(recorder)
        self.options: dict[str, Options] = {}
        self.component_outputs: dict[str, dict[str, Any]] = {}
        self.component_secret_outputs: dict[str, list[str]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        timeouts = request.customTimeouts
        self.options[response.urn] = Options(
            custom_timeouts={
                k: v
                for k, v in (("create", timeouts.create), ("update", timeouts.update), ("delete", timeouts.delete))
                if v
            },
            dependencies=list(request.dependencies),
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.component_outputs[request.urn] = harness._unwrap(rpc.deserialize_properties(request.outputs))
        self.component_secret_outputs[request.urn] = harness._secret_paths(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)


def run_components(
    build: Callable[[], T], *, outputs: ExtraOutputs | None = None, preview: bool = False
) -> Components[T]:
    """Run ``build`` as the program; ``outputs`` adds provider outputs (e.g. a Service's status)."""
    monitor = _Monitor(_Recorder(outputs))
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=harness.PROJECT, stack="unit", preview=preview, monitor=monitor)
    box: list[T] = []
    _sync_await(run_pulumi_func(lambda: box.append(build())))
    return Components(
        resources=monitor.registered,
        outputs={},
        built=box[0],
        options=monitor.options,
        component_outputs=monitor.component_outputs,
        component_secret_outputs=monitor.component_secret_outputs,
    )


SERVICE = "model-serving:index:ModelService"


def run_model_service(
    m: ModelConfig,
    stack: str = "prod",
    *,
    scheduling: GpuScheduling | None = None,
    hub_token: str | None = "hf_unit_token",
    registry_password: str | None = None,
    monitoring: MonitoringConfig | None = None,
    gateway: GatewayConfig | None = None,
    outputs: ExtraOutputs | None = None,
) -> Components[ModelService]:
    """One ModelService of ``m`` under mocks, with the pool's scheduling, the monitoring and the gateway of ``stack``
    (the model's) unless given; a hub token only when the model mounts one."""
    from components.model_service import ModelService, ModelServiceArgs

    config = typed(stack)
    args = ModelServiceArgs(
        model=m,
        scheduling=scheduling if scheduling is not None else gpu_scheduling(config.gpu_pool),
        hub_token=hub_token if m.hub_token else None,
        registry_password=registry_password,
        monitoring=monitoring if monitoring is not None else config.monitoring,
        gateway=gateway if gateway is not None else config.gateway,
    )
    return run_components(lambda: ModelService(m.name, args), outputs=outputs)


def resolve(value: Any) -> Any:
    return _sync_await(pulumi.Output.from_input(value).future())


def is_secret(value: Any) -> bool:
    return bool(_sync_await(pulumi.Output.from_input(value).is_secret()))


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def edit(values: dict[str, Any], path: str, value: Any, *, prefix: str = "") -> None:
    """Set (or with :data:`DELETE` remove) ``models[0].autoscaling.maxReplicas``-style paths in place.

    ``prefix`` is prepended to the first key: ``"model-serving:"`` for a stack file's ``config:`` block.
    """
    keys: list[str | int] = [name if name else int(index) for name, index in _TOKEN.findall(path)]
    assert "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".") == path, path
    keys[0] = f"{prefix}{keys[0]}"
    node: Any = values
    for key, following in itertools.pairwise(keys):
        if isinstance(key, str) and node.get(key) is None:
            node[key] = [] if isinstance(following, int) else {}
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = copy.deepcopy(value)


def stack_values(stack: str, edits: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A stack file's ``config:`` block (prefixed keys, for ``run_stack(config=...)``), edited at key paths."""
    values = harness.stack_config(stack)
    for path, value in (edits or {}).items():
        edit(values, path, value, prefix=f"{harness.PROJECT}:")
    return values


def raw_config(stack: str, edits: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A stack file's ``model-serving:`` config without the prefix, edited at key paths."""
    raw = stack_file_config(harness.ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    for path, value in (edits or {}).items():
        edit(raw, path, value)
    return raw


def typed(stack: str = "prod", edits: Mapping[str, Any] | None = None) -> StackConfig:
    """The stack's config, edited and parsed, with both secrets present."""
    return parse_stack_config(raw_config(stack, edits), has_hub_token=True, has_registry_password=True)


def model(stack: str = "prod", name: str | None = None, edits: Mapping[str, Any] | None = None) -> ModelConfig:
    models = typed(stack, edits).models
    return models[0] if name is None else next(m for m in models if m.name == name)
