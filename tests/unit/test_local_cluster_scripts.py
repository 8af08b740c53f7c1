"""The local cluster's helper scripts that need no cluster: retargeting a stack at your own cluster, and the
preflight that stops a user without root before anything is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT


def test_context_config_retargets_the_local_stack_without_touching_it(tmp_path: Path) -> None:
    stack_file = ROOT / "stacks" / "Pulumi.local.yaml"
    before = stack_file.read_text()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "context_config.py"), "local", "kind-models"],
        capture_output=True,
        text=True,
        check=True,
    )
    written = Path(result.stdout.strip())
    try:
        assert written.parent == ROOT / ".stack-config"
        config = yaml.safe_load(written.read_text())["config"]
        original = yaml.safe_load(before)["config"]
        assert config["model-serving:kubeContext"] == "kind-models"
        for local_only in ("model-serving:kubeconfig", "model-serving:imageLock"):
            assert local_only in original and local_only not in config
        assert config["model-serving:models"] == original["model-serving:models"]
        assert yaml.safe_load(written.read_text())["encryptionsalt"] == yaml.safe_load(before)["encryptionsalt"]
    finally:
        written.unlink()
    assert stack_file.read_text() == before


def test_context_config_rejects_an_unknown_stack() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "context_config.py"), "nosuchstack", "ctx"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Pulumi.nosuchstack.yaml" in result.stderr


@pytest.fixture
def scripts_copy() -> Iterator[Path]:
    """The scripts in a directory of their own, whose .cluster/ holds no running cluster whatever runs here, and
    which any user may read (pytest's own tmp_path is root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="local-cluster-"))
    top.chmod(0o755)
    shutil.copytree(ROOT / "scripts", top / "scripts")
    yield top / "scripts" / "local-cluster"
    shutil.rmtree(top)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop to a user")
def test_preflight_without_root_points_to_render_and_kube_context(scripts_copy: Path) -> None:
    result = subprocess.run(
        [
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            str(scripts_copy),
            "preflight",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CLUSTER_PORT": "17943"},
    )
    assert result.returncode == 1
    assert "make render" in result.stderr and "KUBE_CONTEXT" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the real node's preflight runs as root")
def test_preflight_as_root_says_what_the_real_node_changes(scripts_copy: Path) -> None:
    result = subprocess.run(
        [str(scripts_copy), "preflight"],
        capture_output=True,
        text=True,
        env={**os.environ, "CLUSTER_PORT": "17943"},
    )
    assert result.returncode == 0, result.stderr
    for change in ("kernel.panic", "/kubepods", "make cluster-down", "msnode0"):
        assert change in result.stdout
