"""The local cluster's helper scripts that need no cluster: retargeting a stack at your own cluster, and the
preflight that stops a user without root before anything is built."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from components.config import parse_stack_config
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
        # A plain cluster has no node of the local cluster's: its nodeSelector and tolerations go, the rest stays.
        for model, kept in zip(config["model-serving:models"], original["model-serving:models"], strict=True):
            assert "model-serving.dev/node" in kept["nodeSelector"]
            assert "nodeSelector" not in model and "tolerations" not in model
            assert {k: v for k, v in model.items()} == {
                k: v for k, v in kept.items() if k not in ("nodeSelector", "tolerations")
            }
        assert yaml.safe_load(written.read_text())["encryptionsalt"] == yaml.safe_load(before)["encryptionsalt"]
    finally:
        written.unlink()
    assert stack_file.read_text() == before
    # One line names the images the nodes need and how to load them.
    images = [line for line in result.stderr.splitlines() if "must have" in line]
    assert len(images) == 1 and "model-serving/server:local" in images[0] and "kind load docker-image" in images[0]


def _context_config() -> ModuleType:
    spec = importlib.util.spec_from_file_location("context_config", ROOT / "scripts" / "context_config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCAL = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())


def test_context_config_keeps_the_placement_when_asked() -> None:
    document, notes = _context_config().retarget(LOCAL, "ctx", keep_placement=True)
    models = document["config"]["model-serving:models"]
    assert models == LOCAL["config"]["model-serving:models"] and notes == []


def test_context_config_turns_off_what_the_cluster_lacks() -> None:
    document, notes = _context_config().retarget(LOCAL, "ctx", api_groups={"apps", "autoscaling"})
    config = document["config"]
    assert config["model-serving:monitoring"]["enabled"] is False
    gemma = next(m for m in config["model-serving:models"] if m["name"] == "gemma")
    assert "autoscaling" not in gemma and gemma["replicas"] == 1
    assert len(notes) == 2 and "prometheus-operator" in notes[0] and "gemma" in notes[1] and "KEDA" in notes[1]
    prefix = "model-serving:"
    parse_stack_config({k.removeprefix(prefix): v for k, v in config.items() if k.startswith(prefix)})  # still valid
    # Where the cluster has both, nothing is turned off.
    groups = {"monitoring.coreos.com", "keda.sh"}
    document, notes = _context_config().retarget(LOCAL, "ctx", api_groups=groups)
    assert notes == [] and document["config"]["model-serving:monitoring"] == LOCAL["config"]["model-serving:monitoring"]


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
