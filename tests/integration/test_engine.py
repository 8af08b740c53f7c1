"""The real engine: `make up` of local converges and renders, previews pass the policy pack, bad objects are blocked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import run_stack
from tests.integration.conftest import Project
from tests.kube_checks import validate_object

# Stacks that build images need the pulumi-docker provider plugin, which cannot be built here:
# their previews swap the image for a prebuilt reference (a test-only override).
PREBUILT = "registry.example.com/model-serving/server:1.0.0@sha256:" + "c" * 64


def _rendered(project: Project) -> list[dict[str, Any]]:
    root = project.path / "rendered" / "local"
    docs = []
    for path in sorted(root.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


@pytest.fixture(scope="module")
def local_up(project: Project) -> Project:
    project.make("up", "STACK=local")
    return project


def test_up_renders_one_valid_manifest_per_predicted_object(local_up: Project) -> None:
    files = list((local_up.path / "rendered" / "local").rglob("*.yaml"))
    docs = _rendered(local_up)
    assert len(files) == len(docs), "one manifest per object"
    for doc in docs:
        validate_object(doc)
    predicted = {_identity(r.inputs) for r in run_stack("local").kubernetes_objects()}
    assert {_identity(d) for d in docs} == predicted


def test_second_up_changes_nothing(local_up: Project) -> None:
    result = local_up.pulumi("preview", "--stack", "local", "--expect-no-changes", "--json")
    summary = json.loads(result.stdout.split("\n", 1)[1] if result.stdout.startswith("pulumi") else result.stdout)
    assert set(summary["changeSummary"]) == {"same"}
    local_up.make("up", "STACK=local")  # and a real second up converges too


def test_destroy_removes_the_rendered_files(project: Project, local_up: Project) -> None:
    local_up.make("destroy", "STACK=local")
    assert not list((local_up.path / "rendered" / "local").rglob("*.yaml"))
    exported = json.loads(local_up.pulumi("stack", "export", "--stack", "local").stdout.split("\n", 1)[-1])
    assert not exported["deployment"].get("resources")
    local_up.make("up", "STACK=local")  # leave it as make up would


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_preview_passes_the_policy_pack(project: Project, stack: str) -> None:
    project.edit_config(stack, {"imageRefOverride": PREBUILT})
    if stack == "prod":
        project.pulumi("config", "set", "--secret", "--stack", stack, "model-serving:hubToken", "hf_preview_only")
    result = project.make("preview", f"STACK={stack}")
    output = result.stdout + result.stderr
    assert "Policies:" not in output or "violation" not in output.lower(), output
    assert "mandatory" not in output.lower(), output


@pytest.mark.parametrize(
    ("patch", "rule"),
    [
        ({"resources": {"limits": {"memory": None}}}, "memory"),
        ({"resources": {"requests": {"nvidia.com/gpu": "2"}}}, "gpu"),
    ],
)
def test_policy_pack_blocks_bad_objects(project: Project, patch: dict[str, Any], rule: str, tmp_path: Path) -> None:
    config = yaml.safe_load(project.stack_file("dev").read_text())["config"]
    models = config["model-serving:models"]
    models[0]["containerPatch"] = patch
    project.edit_config("dev", {"models": models, "imageRefOverride": PREBUILT})
    try:
        result = project.make("preview", "STACK=dev", check=False)
    finally:
        models[0].pop("containerPatch")
        project.edit_config("dev", {"models": models})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "mandatory" in output.lower(), output
    assert rule in output.lower(), output
