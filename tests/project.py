"""A throwaway copy of the project driven through its Makefile, as a user and CI run it.

Shared by the integration tests (real CLI, file backend) and the end-to-end tests (real CLI against the local
cluster). The copy links ``.venv`` and ``.tools`` and keeps its own state, stacks and rendered files, so the
checkout's ``git status`` stays clean whatever a test changes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import stack_file_config
from tests.harness import ROOT

COPIED = ["Pulumi.yaml", "__main__.py", "Makefile", "components", "stacks", "policy", "scripts", "app"]
COPIED += ["requirements.txt", "requirements-dev.txt"]
LINKED = [".venv", ".tools"]


def cli_available() -> bool:
    env_path = f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return shutil.which("pulumi", path=env_path) is not None


def require(condition: bool, message: str) -> None:
    """Skip when a tool is missing on a developer's machine; fail in CI, where a skip would hide a broken setup."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def restore_sigint() -> None:
    # A job started in the background ignores SIGINT, and so would the CLI's plugins: the CLI then waits 5 s
    # for each one at exit. Give the commands the default handler back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Project:
    """A copy of the project in a temp dir, with its own state; commands run through make."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        return {**base, **self.env}

    def make(self, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["make", "--silent", "--no-print-directory", "-C", str(self.path), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=restore_sigint,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"make {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def pulumi(self, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return self.make("pulumi-cmd", f"ARGS={' '.join(args)}", check=check, timeout=timeout)

    def stack_file(self, stack: str) -> Path:
        return self.path / "stacks" / f"Pulumi.{stack}.yaml"

    def edit_config(self, stack: str, values: dict[str, Any]) -> None:
        """Set ``model-serving:<key>`` values in the copy's stack file (plain, non-secret); None removes a key."""
        path = self.stack_file(stack)
        data = yaml.safe_load(path.read_text())
        for key, value in values.items():
            if value is None:
                data["config"].pop(f"model-serving:{key}", None)
            else:
                data["config"][f"model-serving:{key}"] = value
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def config(self, stack: str) -> dict[str, Any]:
        """The copy's ``model-serving:`` config of ``stack``, keys without the namespace."""
        return stack_file_config(self.stack_file(stack))


def copy_project(path: Path) -> Project:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__", "config.local.json"))
        elif source.exists():
            shutil.copy2(source, path / name)
    for name in LINKED:
        (path / name).symlink_to(ROOT / name)
    return Project(path)
