"""The GitHub workflows and the Makefile agree: CI sets up with `make ci-setup` and runs pulumi/actions with the
flags of `make preview` (diff, the policy pack, the stack's policy config), on the stacks that exist, with the
CLI version the bootstrap pins. actionlint (in `make lint`) checks the workflows' syntax and action inputs."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.harness import ROOT, STACKS

WORKFLOWS = ROOT / ".github" / "workflows"
MAKEFILE = (ROOT / "Makefile").read_text()


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return dict(data)


def _recipe(target: str) -> str:
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", MAKEFILE, re.MULTILINE)
    assert match, f"no make target {target}"
    return match.group(1)


@pytest.fixture(scope="module")
def stack_workflow() -> dict[str, Any]:
    return _load("pulumi-stack.yml")


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workflow["jobs"]["pulumi"]["steps"])


def _action(workflow: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in _steps(workflow) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert re.fullmatch(r"pulumi/actions@v\d+", step["uses"]), "pinned to a major version"
    return dict(step["with"])


def test_set_up_is_one_make_target(stack_workflow: dict[str, Any]) -> None:
    runs = [s["run"].strip() for s in _steps(stack_workflow) if "run" in s]
    assert "make ci-setup" in runs
    setup = re.search(r"^ci-setup:(.*)$", MAKEFILE, re.MULTILINE)
    assert setup and {"venv", "pulumi"} <= set(setup.group(1).split())


def test_pulumi_actions_runs_what_make_preview_runs(stack_workflow: dict[str, Any]) -> None:
    action = _action(stack_workflow)
    preview = _recipe("preview")
    assert "--diff" in preview and action["diff"] is True
    assert "--policy-pack policy" in preview and action["policyPacks"] == "policy"
    assert "policy/config/$(STACK).json" in MAKEFILE
    assert action["policyPackConfigs"] == "policy/config/${{ inputs.stack }}.json"
    assert action["command"] == "${{ inputs.command }}"
    assert action["comment-on-pr"] == "${{ inputs.command == 'preview' }}"


def test_up_runs_the_policy_pack_as_preview_does(stack_workflow: dict[str, Any]) -> None:
    """`make up` and the workflow's `up` both run the pack with the stack's config: a mandatory violation stops the
    update before anything is applied, exactly as it fails a preview."""
    up = _recipe("up")
    assert re.search(r"pulumi up .*--policy-pack policy \$\(POLICY_CONFIG\)", up), up
    action = _action(stack_workflow)
    # The same inputs whatever the command: nothing makes the pack depend on preview versus up.
    for key in ("policyPacks", "policyPackConfigs"):
        assert "inputs.command" not in str(action[key]), key
    assert "--policy-pack-config policy/config/$(STACK).json" in MAKEFILE


def test_preview_and_up_check_the_stacks_plugins_first() -> None:
    for target in ("preview", "up"):
        lines = [line.strip() for line in _recipe(target).splitlines()]
        assert "$(BIN)/python scripts/stack_plugins.py $(STACK)" in lines[0], (target, lines)
    # A preview goes on without the plugins: it passes what the check prints (a pinned-images config) to pulumi.
    assert "--preview" in _recipe("preview").splitlines()[0] and "$$pinned" in _recipe("preview")


def test_the_action_uses_the_pinned_cli(stack_workflow: dict[str, Any]) -> None:
    pinned = re.search(r"^PULUMI_VERSION=(\S+)$", (ROOT / "scripts" / "pulumi-versions.env").read_text(), re.MULTILINE)
    assert pinned
    assert str(_action(stack_workflow)["pulumi-version"]) == pinned.group(1)


def test_previews_cover_every_deployed_stack() -> None:
    preview = _load("pulumi-preview.yml")
    assert "pull_request" in preview["on"]
    job = preview["jobs"]["preview"]
    stacks = job["strategy"]["matrix"]["stack"]
    # render renders files; local and e2e deploy to the machine's own local cluster (make up, make e2e), which
    # runners lack.
    assert set(stacks) == set(STACKS) - {"render", "local", "e2e"}
    for stack in stacks:
        assert (ROOT / "policy" / "config" / f"{stack}.json").exists()
    assert job["with"]["command"] == "preview"
    assert preview["permissions"]["pull-requests"] == "write"


def test_main_updates_dev_then_prod_behind_approval() -> None:
    up = _load("pulumi-up.yml")
    assert up["on"]["push"]["branches"] == ["main"]
    dev, prod = up["jobs"]["dev"], up["jobs"]["prod"]
    assert (dev["with"]["command"], dev["with"]["stack"]) == ("up", "dev")
    assert (prod["with"]["command"], prod["with"]["stack"], prod["with"]["environment"]) == ("up", "prod", "production")
    assert prod["needs"] == "dev"


def test_one_update_per_stack_at_a_time(stack_workflow: dict[str, Any]) -> None:
    job = stack_workflow["jobs"]["pulumi"]
    assert job["environment"] == "${{ inputs.environment }}"
    group = job["concurrency"]["group"]
    assert "format('pulumi-up-{0}', inputs.stack)" in group, "updates of a stack share one group"
    assert job["concurrency"]["cancel-in-progress"] == "${{ inputs.command != 'up' }}", "an update is never cancelled"


def test_lint_checks_the_workflows() -> None:
    lint = _recipe("lint")
    assert "scripts/install-actionlint" in lint and "actionlint" in lint
