"""The README's commands on a checkout, with the real CLI: what they leave behind and when they stop.

- `make up` runs the policy pack with the stack's config, as `make preview` does: a mandatory violation stops
  the update before anything is applied (issue 12, 4a). Here through `make render` (`make up` of the render
  stack, which needs no cluster).
- `make render`, creating the stacks and `make preview STACK=dev|prod` change no tracked file: the stack files
  state their secrets provider (a committed `encryptionsalt`) and write numbers as the CLI writes them back
  (issue 12, 6). The copy is a git repository of its own, so `git status --porcelain` is the judge.
- A stack that builds its image without the docker provider plugin stops at once with one line saying what to
  run, after trying `make docker-plugin` (issue 12, 7).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT
from tests.project import Project, cli_available, copy_project, require

pytestmark = pytest.mark.integration

PREBUILT = "registry.example.com/model-serving/server:1.0.0@sha256:" + "c" * 64


def _git(project: Project, *args: str) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    result = subprocess.run(
        ["git", "-C", str(project.path), *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def _status(project: Project) -> str:
    return _git(project, "status", "--porcelain", "--untracked-files=all")


def _copy(tmp_path_factory: pytest.TempPathFactory, name: str) -> Project:
    require(cli_available(), "the Pulumi CLI is missing: run scripts/install-pulumi (make test does)")
    project = copy_project(tmp_path_factory.mktemp(name))
    shutil.copy2(ROOT / ".gitignore", project.path / ".gitignore")
    return project


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A fresh checkout: the project's files committed in a repository of their own, no stack created yet."""
    project = _copy(tmp_path_factory, "checkout")
    _git(project, "init", "--quiet")
    _git(project, "add", "--all")
    _git(project, "commit", "--quiet", "--message", "fresh checkout")
    assert _status(project) == "", "the checkout's own files (.venv/.tools links among them) are ignored or tracked"
    return project


def test_make_render_runs_the_policy_pack_and_changes_no_tracked_file(checkout: Project) -> None:
    result = checkout.make("render")
    output = result.stdout + result.stderr
    assert "model-serving-policies" in output.split("Policy Packs run:")[-1], output
    assert "warning:" not in output, output  # the provider comes from PULUMI_HOME, not from PATH with a warning
    assert list((checkout.path / "rendered" / "render").rglob("*.yaml"))
    assert _status(checkout) == ""


def test_creating_the_stacks_writes_nothing_into_their_files(checkout: Project) -> None:
    """`make preview`/`make up` begin with `pulumi stack select --create`: with the salt committed and numbers in
    the CLI's own form, the stack files stay as checked in."""
    for stack in ("dev", "prod"):
        checkout.pulumi("stack", "select", "--create", stack)
        assert _status(checkout) == "", stack


def test_previews_of_dev_and_prod_change_no_tracked_file(checkout: Project) -> None:
    """A team sets its secrets (and here a prebuilt image: no docker plugin on this machine) and commits them;
    `config set` adds exactly those keys and nothing else, and the previews then leave the files alone."""
    settings = {
        "dev": [("--secret", "registryPassword", "registry-test-password"), ("", "imageRefOverride", PREBUILT)],
        "prod": [("--secret", "hubToken", "hf_preview_only"), ("", "imageRefOverride", PREBUILT)],
    }
    for stack, values in settings.items():
        for flag, key, value in values:
            args = ["config", "set", *([flag] if flag else []), "--stack", stack, f"model-serving:{key}", value]
            checkout.pulumi(*args)
    diff = _git(checkout, "diff", "--unified=0")
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == [], diff
    for stack in settings:
        config = yaml.safe_load((checkout.stack_file(stack)).read_text())["config"]
        assert config["model-serving:imageRefOverride"] == PREBUILT
    _git(checkout, "commit", "--quiet", "--all", "--message", "the team's secrets")
    for stack in settings:
        result = checkout.make("preview", f"STACK={stack}")
        assert "[mandatory]" not in result.stdout + result.stderr
        assert _status(checkout) == "", stack


def test_up_stops_at_a_mandatory_violation_before_anything_is_applied(checkout: Project) -> None:
    rendered = checkout.path / "rendered" / "render"
    before = {p.relative_to(rendered): p.read_text() for p in rendered.rglob("*.yaml")}
    assert before, "make render ran first"
    config = yaml.safe_load(checkout.stack_file("render").read_text())["config"]
    models = config["model-serving:models"]
    # Valid config, an object the pack rejects: GPU requests unequal to the GPU limit.
    models[0]["containerPatch"] = {"resources": {"requests": {"nvidia.com/gpu": "2"}}}
    checkout.edit_config("render", {"models": models})
    result = checkout.make("render", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"\[mandatory\].*\bgpu-resources\b", output), output
    after = {p.relative_to(rendered): p.read_text() for p in rendered.rglob("*.yaml")}
    assert after == before, "the update stopped before a single manifest was written"


def test_a_stack_that_builds_its_image_without_the_docker_plugin_stops_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """No plugin can be downloaded here: `make docker-plugin` is tried, then `up` stops with one line saying what to
    run, before a stack exists."""
    project = _copy(tmp_path_factory, "no-docker-plugin")
    project.env["PULUMI_HOME"] = str(tmp_path / "pulumi-home")  # a plugin cache without the docker plugin
    result = project.make("up", "STACK=dev", check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: stack 'dev' builds the image of model(s) minilm"), errors[0]
    assert "make docker-plugin" in errors[0] and "model-serving:imageRefOverride" in errors[0], errors[0]
    assert "pulumi-resource-docker" not in result.stdout + result.stderr, "stopped before the engine"
    log = (project.path / ".cache" / "docker-plugin.log").read_text()
    assert "docker" in log and "failed" in log, log
    assert not list((project.path / ".pulumi-state").rglob("dev.json*")), "no stack was created"


def test_a_preview_without_the_docker_plugin_pins_the_images_it_would_build(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The README's next step, `make preview STACK=prod` on a fresh checkout where the docker plugin cannot be had
    and no hub token is set: the preview runs, with the pack, on the images pinned to their build inputs (no local
    cluster in this copy) and a placeholder token, and says each once."""
    project = _copy(tmp_path_factory, "preview-no-docker-plugin")
    # A plugin cache with the kubernetes plugin (as the Makefile's holds it) and without the docker plugin.
    home = tmp_path / "pulumi-home"
    for plugin in (ROOT / ".tools" / "pulumi-home" / "plugins").glob("resource-kubernetes-*"):
        if plugin.is_dir():
            shutil.copytree(plugin, home / "plugins" / plugin.name)
    project.env["PULUMI_HOME"] = str(home)
    stack_file = project.stack_file("prod").read_text()
    result = project.make("preview", "STACK=prod", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: previewing stack 'prod'")]
    assert len(notes) == 1, result.stderr
    assert "without building its images" in notes[0] and "the digest of its build inputs" in notes[0], notes[0]
    assert "pulumi-resource-docker" not in output and "[mandatory]" not in output
    assert output.count("model-serving:hubToken is not set: this preview uses a placeholder") == 1, output
    assert "Policy Packs run:" in result.stdout and "model-serving-policies" in result.stdout, "the policy pack ran"
    assert "kubernetes:apps/v1:Deployment" in result.stdout
    assert "docker:index/image:Image" not in result.stdout, "nothing is built"
    assert project.stack_file("prod").read_text() == stack_file, "the stack file is untouched"
