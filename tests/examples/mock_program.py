"""Runs a Pulumi program file (another project's ``__main__.py``) under mocks, recording what it registers."""

from __future__ import annotations

import json
import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tests import harness
from tests.unit import mocking


def run_program(
    path: Path, *, project: str, config: Mapping[str, Any] | None = None, stack: str = "test"
) -> harness.Run:
    """Run ``path`` as project ``project``'s program with ``config`` (keys without the project prefix)."""
    monitor = mocking._Monitor(mocking._Recorder(None))
    pulumi.runtime.settings.ROOT.set(None)
    flat = {f"{project}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in (config or {}).items()}
    pulumi.runtime.set_all_config(flat, secret_keys=[])
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(path), run_name="__main__")))
    outputs: dict[str, Any] = {}
    root = pulumi.runtime.settings.get_root_resource()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        outputs[key] = _sync_await(pulumi.Output.from_input(value).future())
    pulumi.runtime.set_all_config({}, secret_keys=[])
    return harness.Run(resources=monitor.registered, outputs=outputs)
