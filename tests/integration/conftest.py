"""Real Pulumi CLI runs against a throwaway copy of the project and its own local file backend.

The tests drive the same Makefile targets as the README and CI (`make up`, `make preview`), so
what passes here is what a user and the workflows run. Without the CLI they skip locally and fail
in CI (CI=true), where a skipped engine test would hide a broken bootstrap.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT

COPIED = ["Pulumi.yaml", "__main__.py", "Makefile", "components", "stacks", "policy", "scripts", "app"]
COPIED += ["requirements.txt", "requirements-dev.txt"]
LINKED = [".venv", ".tools"]


def _cli_available() -> bool:
    env_path = f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return shutil.which("pulumi", path=env_path) is not None


@dataclass
class Project:
    """A copy of the project in a temp dir, with its own state; commands run through make."""

    path: Path

    def make(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        result = subprocess.run(
            ["make", "--silent", "--no-print-directory", "-C", str(self.path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            # A job started in the background ignores SIGINT, and so would the CLI's plugins: the CLI
            # then waits 5 s for each one at exit. Give the commands the default handler back.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"make {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.make("pulumi-cmd", f"ARGS={' '.join(args)}", check=check)

    def stack_file(self, stack: str) -> Path:
        return self.path / "stacks" / f"Pulumi.{stack}.yaml"

    def edit_config(self, stack: str, values: dict[str, Any]) -> None:
        """Set ``model-serving:<key>`` values in the copy's stack file (plain, non-secret)."""
        path = self.stack_file(stack)
        data = yaml.safe_load(path.read_text())
        for key, value in values.items():
            data["config"][f"model-serving:{key}"] = value
        path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    if not _cli_available():
        message = "the Pulumi CLI is missing: run scripts/install-pulumi (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    path = tmp_path_factory.mktemp("model-serving")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__", "config.local.json"))
        elif source.exists():
            shutil.copy2(source, path / name)
    for name in LINKED:
        (path / name).symlink_to(ROOT / name)
    yield Project(path)
