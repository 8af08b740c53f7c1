"""Runs the real ``__main__.py`` under Pulumi mocks with a stack file's config, and records the graph.

``run_stack("prod")`` returns every resource the program registered (type, logical name, inputs as
the engine would see them, parent URN, which input paths are secret) and the stack outputs.
"""

from __future__ import annotations

import atexit
import copy
import importlib.util
import json
import logging
import runpy
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
PROJECT = "model-serving"

# The values the integration tests and README use for secrets in throwaway stacks.
TEST_SECRETS = {"hubToken": "hf_test_token_value", "registryPassword": "registry-test-password"}

# What `make cluster-up` writes to .cluster/images.json, for the tests: a run whose imageLock names a file of the
# local cluster (.cluster/…, the local stack's) reads this lock instead, written to a temporary file, so that no
# test depends on a cluster having been started. Other imageLock values (absolute temporary paths) are kept.
LOCAL_CLUSTER_DIR = ".cluster/"
TEST_IMAGE_LOCK = {
    "model-serving/server:local": "docker.io/model-serving/server@sha256:" + "d" * 64,
    "model-serving/llamacpp:local": "docker.io/model-serving/llamacpp@sha256:" + "e" * 64,
}
_lock_dir: Path | None = None


def load_script(name: str, path: Path) -> ModuleType:
    """A script that is not in a package (scripts/cluster/nodes.py, …) imported as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def image_lock_file() -> Path:
    """:data:`TEST_IMAGE_LOCK` as a JSON file in a temporary directory of this process (removed at exit)."""
    global _lock_dir
    if _lock_dir is None:
        _lock_dir = Path(tempfile.mkdtemp(prefix="model-serving-image-lock-"))
        atexit.register(shutil.rmtree, _lock_dir, ignore_errors=True)
    path = _lock_dir / "images.json"
    if not path.exists():
        path.write_text(json.dumps(TEST_IMAGE_LOCK))
    return path


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    secret_paths: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    # The URNs it was known by before: its aliases (a URN, or an alias spec's parent URN).
    aliases: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]


@dataclass
class Run:
    resources: list[Registered]
    outputs: dict[str, Any]

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registered:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        assert len(found) == 1, f"expected one {type_} {name!r}, found {len(found)}"
        return found[0]

    def kubernetes_objects(self) -> list[Registered]:
        return [r for r in self.resources if r.custom and r.type.startswith("kubernetes:") and "Provider" not in r.type]


def _secret_paths(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        if value.get(_special_sig_key) == _special_secret_sig:
            return [path or "."]
        return [p for k, v in value.items() for p in _secret_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, f"{path}[{i}]")]
    return []


class _Recorder(mocks.Mocks):
    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            name = args.inputs.get("imageName", "image")
            outputs["repoDigest"] = f"{name.split(':')[0]}@sha256:{'ab' * 32}"
        return f"{args.name}-id", outputs

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _Monitor(mocks.MockMonitor):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__(recorder)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = json_format.MessageToDict(request.object)
            inputs = _sync_await(_deserialize(request.object))
            self.registered.append(
                Registered(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=inputs,
                    secret_paths=_secret_paths(raw),
                    dependencies=list(request.dependencies),
                    aliases=[a.urn or a.spec.parentUrn for a in request.aliases if a.urn or a.spec.parentUrn],
                )
            )
        return response


async def _deserialize(obj: Any) -> dict[str, Any]:
    from pulumi.runtime import rpc

    return dict(_unwrap(rpc.deserialize_properties(obj)))


def _unwrap(value: Any) -> Any:
    """Plain values: secrets are recorded in ``secret_paths``, not left wrapped."""
    if isinstance(value, dict):
        if value.get(_special_sig_key) == _special_secret_sig:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def stack_config(stack: str) -> dict[str, Any]:
    """The ``config:`` block of ``stacks/Pulumi.<stack>.yaml``."""
    data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return dict(data.get("config") or {})


def run_stack(
    stack: str,
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    preview: bool = False,
    program: Path | None = None,
) -> Run:
    """Run ``__main__.py`` (or ``program``, another program of this project) under mocks with the stack file's config.

    ``overrides`` replace ``model-serving:<key>`` values; ``config`` replaces the whole block.
    Secrets default to :data:`TEST_SECRETS` and are set as secret config, like ``--secret``.
    An ``imageLock`` under ``.cluster/`` reads :data:`TEST_IMAGE_LOCK` instead.
    """
    monitor, _ = _start(stack, config, overrides, secrets, preview)
    _sync_await(_run_program(program))
    outputs: dict[str, Any] = {}
    root = pulumi.runtime.settings.get_root_resource()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        outputs[key] = _sync_await(pulumi.Output.from_input(value).future())
    return Run(resources=monitor.registered, outputs=outputs)


@dataclass
class Failure:
    """A program run that stopped: the error, what was registered before it, and errors logged."""

    error: BaseException
    resources: list[Registered]
    logged_errors: list[str]


def run_stack_failure(
    stack: str,
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Failure:
    """Like :func:`run_stack` for a program expected to stop; raises AssertionError if it completes."""
    monitor, logged = _start(stack, config, overrides, secrets, False)
    try:
        _sync_await(_run_program())
    except Exception as error:
        return Failure(error=error, resources=monitor.registered, logged_errors=logged.messages)
    raise AssertionError(f"the program completed and registered {len(monitor.registered)} resources")


# What the program logs through the engine (pulumi.log); errors are also kept by the run's _ErrorLog.
_ENGINE_LOG = logging.getLogger(f"{__name__}.engine")


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _start(
    stack: str,
    config: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None,
    secrets: Mapping[str, str] | None,
    preview: bool,
) -> tuple[_Monitor, _ErrorLog]:
    values = copy.deepcopy(dict(config) if config is not None else stack_config(stack))
    for key, value in (overrides or {}).items():
        values[f"{PROJECT}:{key}"] = value
    secret_values = dict(TEST_SECRETS if secrets is None else secrets)
    for key, value in secret_values.items():
        values[f"{PROJECT}:{key}"] = value
    lock = values.get(f"{PROJECT}:imageLock")
    if isinstance(lock, str) and lock.startswith(LOCAL_CLUSTER_DIR):
        values[f"{PROJECT}:imageLock"] = str(image_lock_file())
    flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}

    monitor = _Monitor(_Recorder())
    logged = _ErrorLog()
    for handler in list(_ENGINE_LOG.handlers):
        _ENGINE_LOG.removeHandler(handler)
    _ENGINE_LOG.addHandler(logged)
    pulumi.runtime.settings.ROOT.set(None)  # a fresh Stack resource per run
    pulumi.runtime.set_all_config(flat, secret_keys=[f"{PROJECT}:{k}" for k in secret_values])
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=preview, logger=_ENGINE_LOG, monitor=monitor
    )
    return monitor, logged


async def _run_program(path: Path | None = None) -> None:
    from pulumi.runtime.stack import run_pulumi_func

    def program() -> None:
        runpy.run_path(str(path or ROOT / "__main__.py"), run_name="__main__")

    mocks.SETTINGS.rpc_manager.clear() if hasattr(mocks, "SETTINGS") else None
    await run_pulumi_func(program)
