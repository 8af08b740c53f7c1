"""The real engine: `make render` (the render stack) converges and renders, previews pass the policy pack, bad objects
are blocked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import run_stack
from tests.kube_checks import validate_object
from tests.project import Project

# Stacks that build images need the pulumi-docker provider plugin, which cannot be built here:
# their previews swap the image for a prebuilt reference (a test-only override).
# Advisories a stack accepts knowingly (see tests/policy/test_shipped_stacks.py).
ACCEPTED_ADVISORIES = {"dev": {"hpa-gpu-scaling-signal"}}
PREBUILT = "registry.example.com/model-serving/server:1.0.0@sha256:" + "c" * 64


def _rendered(project: Project) -> list[dict[str, Any]]:
    root = project.path / "rendered" / "render"
    docs = []
    for path in sorted(root.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


@pytest.fixture(scope="module")
def rendered(project: Project) -> Project:
    project.make("render")  # pulumi up of the render stack
    return project


def test_render_writes_one_valid_manifest_per_predicted_object(rendered: Project) -> None:
    files = list((rendered.path / "rendered" / "render").rglob("*.yaml"))
    docs = _rendered(rendered)
    assert len(files) == len(docs), "one manifest per object"
    for doc in docs:
        validate_object(doc)
    predicted = {_identity(r.inputs) for r in run_stack("render").kubernetes_objects()}
    assert {_identity(d) for d in docs} == predicted
    # A CPU-only stack: no GPU node pool (RuntimeClass, device plugin) among its manifests.
    assert {d["kind"] for d in docs}.isdisjoint({"RuntimeClass", "DaemonSet", "ConfigMap", "NodePool"})


def test_second_render_changes_nothing(rendered: Project) -> None:
    result = rendered.pulumi("preview", "--stack", "render", "--expect-no-changes", "--json")
    summary = json.loads(result.stdout)
    assert set(summary["changeSummary"]) == {"same"}
    rendered.make("render")  # and a real second up converges too


def test_destroy_removes_the_rendered_files(project: Project, rendered: Project) -> None:
    rendered.make("destroy", "STACK=render")
    assert not list((rendered.path / "rendered" / "render").rglob("*.yaml"))
    exported = json.loads(rendered.pulumi("stack", "export", "--stack", "render").stdout)
    assert not exported["deployment"].get("resources")
    rendered.make("render")  # leave it as make render would


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_preview_passes_the_policy_pack(project: Project, stack: str) -> None:
    project.edit_config(stack, {"imageRefOverride": PREBUILT})
    if stack == "prod":
        project.pulumi("stack", "select", "--create", stack)
        project.pulumi("config", "set", "--secret", "--stack", stack, "model-serving:hubToken", "hf_preview_only")
    result = project.make("preview", f"STACK={stack}")
    output = result.stdout + result.stderr
    assert "model-serving-policies" in output.split("Policy Packs run:")[-1], output
    assert "[mandatory]" not in output, output
    reported = set(re.findall(r"\[advisory\] \[severity: \w+\]\s+([a-z-]+)", output))
    assert reported <= {"exempted-resources"} | ACCEPTED_ADVISORIES.get(stack, set()), output


@pytest.mark.parametrize(
    ("patch", "rule"),
    [
        # (Removing the limit is refused by the config reader itself: tests/unit/test_config_schema.py.)
        ({"resources": {"limits": {"memory": "lots"}}}, "container-resource-limits"),
        ({"resources": {"requests": {"nvidia.com/gpu": "2"}}}, "gpu-resources"),
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
    assert re.search(rf"\[mandatory\].*\b{rule}\b", output), output
