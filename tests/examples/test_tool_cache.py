"""The workflows share one tool cache (the Pulumi and Kubernetes builds in ~/.cache/model-serving/tools): the same
paths and key everywhere, keyed by the pinned versions and the scripts that build the tools; only the test job, which
builds every tool, saves it, and it saves before the tests run."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.harness import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
CACHE = "~/.cache/model-serving/tools"


def _steps(name: str, job: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((WORKFLOWS / name).read_text())["jobs"][job]["steps"])


def _cache_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in steps if str(s.get("uses", "")).startswith("actions/cache")]


@pytest.fixture(scope="module")
def preview() -> list[dict[str, Any]]:
    return _steps("pulumi-stack.yml", "pulumi")


@pytest.fixture(scope="module")
def test_job() -> list[dict[str, Any]]:
    return _steps("test.yml", "test")


def test_one_cache_entry_for_every_job(preview: list[dict[str, Any]], test_job: list[dict[str, Any]]) -> None:
    (restore_preview,) = _cache_steps(preview)
    restore_test = _cache_steps(test_job)[0]
    assert restore_preview["uses"] == restore_test["uses"] == "actions/cache/restore@v4"
    for field in ("path", "key", "restore-keys"):
        assert restore_preview["with"][field] == restore_test["with"][field], field
    paths = restore_preview["with"]["path"].split()
    assert paths == [f"{CACHE}/bin", f"{CACHE}/stamps", f"{CACHE}/k8s", f"{CACHE}/pulumi-home/plugins"]


def test_the_key_follows_the_pinned_versions_and_the_build_scripts(preview: list[dict[str, Any]]) -> None:
    key = _cache_steps(preview)[0]["with"]["key"]
    hashed = set(re.findall(r"'([^']+)'", key))
    builders = {"scripts/install-pulumi", "scripts/install-k8s", "scripts/lib-go.sh", "scripts/lib-tools.sh"}
    versions = {p.relative_to(ROOT).as_posix() for p in (ROOT / "scripts").glob("*-versions.env")}
    assert versions and versions | builders | {"scripts/cluster/go/**"} <= hashed, hashed
    assert _cache_steps(preview)[0]["with"]["restore-keys"] == "model-serving-tools-${{ runner.os }}-"


def test_only_the_job_that_builds_every_tool_saves_it(test_job: list[dict[str, Any]]) -> None:
    names = [s.get("name", s.get("uses")) for s in test_job]
    restore, save = _cache_steps(test_job)
    build = next(i for i, s in enumerate(test_job) if s.get("run", "").strip() == "make pulumi k8s")
    tests = next(i for i, s in enumerate(test_job) if ".ci/run" in s.get("run", ""))
    assert test_job.index(restore) < build < test_job.index(save) < tests, names
    assert save["uses"] == "actions/cache/save@v4"
    assert save["with"]["path"] == restore["with"]["path"]
    assert save["with"]["key"] == "${{ steps.tools.outputs.cache-primary-key }}" and restore["id"] == "tools"


def test_the_preview_restores_before_the_set_up(preview: list[dict[str, Any]]) -> None:
    (restore,) = _cache_steps(preview)
    setup = next(i for i, s in enumerate(preview) if s.get("run", "").strip() == "make ci-setup")
    assert preview.index(restore) < setup
