"""A stack made by the earlier ModelService (a component per part of the model) keeps every object under the
current one: the objects' aliases name their former URNs, so the engine moves them instead of replacing them.

Render mode (``renderDirectory``): the engine and the provider are real, no cluster is needed.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from components.aliases import FORMER_PARENTS
from tests.project import Project, cli_available, copy_project, require

LEGACY = Path(__file__).parent / "legacy" / "model_service.py"
PREBUILT = "registry.example.com/model-serving/server:1.0.0@sha256:" + "c" * 64
FORMER_COMPONENTS = set(FORMER_PARENTS.values())
# What the admission plan added after the nested layout: the upgrade creates these, and only these.
ADDED = {
    "kubernetes:scheduling.k8s.io/v1:PriorityClass",
    "kubernetes:core/v1:LimitRange",
    "kubernetes:core/v1:ResourceQuota",
}


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Project:
    require(cli_available(), "the Pulumi CLI is missing: run scripts/install-pulumi (make test does)")
    return copy_project(tmp_path_factory.mktemp("upgrade"))


@pytest.mark.parametrize("stack", ["prod", "e2e"])
def test_a_stack_of_the_nested_components_upgrades_without_touching_an_object(upgraded: Project, stack: str) -> None:
    current = upgraded.path / "components" / "model_service.py"
    kept = current.read_text()
    upgraded.edit_config(
        stack,
        {
            "renderDirectory": f"rendered/{stack}",
            "imageRefOverride": PREBUILT,
            "kubeconfig": None,
            "kubeContext": None,
            "imageLock": None,
        },
    )
    upgraded.pulumi("stack", "select", "--create", stack)
    upgraded.pulumi("config", "set", "--secret", "--stack", stack, "model-serving:hubToken", "hf_upgrade_test")
    shutil.copy(LEGACY, current)
    try:
        upgraded.pulumi("up", "--stack", stack, "--yes", "--skip-preview", "--non-interactive")
        before = json.loads(upgraded.pulumi("stack", "export", "--stack", stack).stdout)["deployment"]["resources"]
    finally:
        current.write_text(kept)
    nested = Counter(r["type"].rpartition(":")[2] for r in before if r["type"] in FORMER_COMPONENTS)
    assert nested["ModelDeployment"] >= 3, nested  # the state really is the nested layout

    # Nothing but the former components goes; every object stays, by its alias (the JSON lists no "same" step); the
    # objects added since are created.
    preview = json.loads(upgraded.pulumi("preview", "--stack", stack, "--json", "--non-interactive").stdout)
    created = Counter(step["newState"]["type"] for step in preview["steps"] if step["op"] == "create")
    assert set(created) == ADDED, created
    assert preview["changeSummary"] == {
        "create": sum(created.values()),
        "delete": sum(nested.values()),
        "same": len(before) - sum(nested.values()),
    }
    deleted = Counter(
        step["oldState"]["type"].rpartition(":")[2] for step in preview["steps"] if step["op"] == "delete"
    )
    assert deleted == nested

    upgraded.pulumi("up", "--stack", stack, "--yes", "--skip-preview", "--non-interactive")
    after = json.loads(upgraded.pulumi("stack", "export", "--stack", stack).stdout)["deployment"]["resources"]
    ids = lambda resources: {(r["type"], r.get("id")) for r in resources if r["type"].startswith("kubernetes:")}  # noqa: E731
    assert ids(after) >= ids(before)
    assert {t for t, _ in ids(after) - ids(before)} == ADDED
    assert not FORMER_COMPONENTS & {r["type"] for r in after}
