"""Reuse from another language with the real CLI: a Pulumi YAML stack (examples/yaml) adds provider/ with
`pulumi package add`, previews, and renders with `pulumi up` exactly the objects that this Python program renders
for the same config.

What it needs besides the CLI: Pulumi's YAML language host, built from the Go module proxy by
scripts/install-pulumi-yaml (a minute or two the first time, then cached in .tools/), and PyPI or pip's cache
(`pulumi package add` creates provider/.venv from provider/requirements.txt, about 20 s).

Offline workaround, test only: `pulumi package add` installs the plugins the provider's venv declares, which
includes pulumi-docker's (the library imports pulumi_docker for image builds) even though this stack uses a
prebuilt image. It cannot be downloaded here, so a placeholder docker plugin, never started, is installed into
a test-local PULUMI_HOME; with network access the CLI downloads the real one and no placeholder is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import specs
from components.config import parse_stack_config
from tests.harness import ROOT, run_stack
from tests.kube_checks import validate_object
from tests.project import cli_available as _cli_available

pytestmark = pytest.mark.integration

TOOLS = ROOT / ".tools"
EXAMPLE = ROOT / "examples" / "yaml"
# What the provider directory needs from the repository: its own files and the component package.
COPIED = ["components", "provider", "pyproject.toml", "README.md", "requirements.txt"]
IGNORED = shutil.ignore_patterns("__pycache__", ".venv", "build", "*.egg-info")


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class YamlStack:
    path: Path
    env: dict[str, str]

    def pulumi(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["pulumi", *args], cwd=self.path, env=self.env, capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


def _plugin_home(home: Path, stub_dir: Path, env: dict[str, str]) -> None:
    """A PULUMI_HOME with the repository's kubernetes plugin (linked, not copied) and a docker placeholder."""
    plugins = home / "plugins"
    plugins.mkdir(parents=True)
    for plugin in (TOOLS / "pulumi-home" / "plugins").glob("resource-kubernetes-v*"):
        if plugin.is_dir():
            (plugins / plugin.name).symlink_to(plugin)
            (plugins / f"{plugin.name}.lock").touch()
    docker = json.loads(resources.files("pulumi_docker").joinpath("pulumi-plugin.json").read_text())
    stub = stub_dir / "pulumi-resource-docker"
    stub.write_text("#!/bin/sh\necho 'placeholder docker plugin (offline test): not available' >&2\nexit 1\n")
    stub.chmod(0o755)
    subprocess.run(
        ["pulumi", "plugin", "install", "resource", "docker", docker["version"], "--file", str(stub)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def yaml_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YamlStack]:
    if not _cli_available():
        _fail_or_skip("the Pulumi CLI is missing: run scripts/install-pulumi (make test does)")
    if shutil.which("go") is None and not (TOOLS / "bin" / "pulumi-language-yaml").exists():
        _fail_or_skip("Go is missing: scripts/install-pulumi-yaml builds the YAML language host with it")
    built = subprocess.run(
        [str(ROOT / "scripts" / "install-pulumi-yaml")], capture_output=True, text=True, timeout=1800
    )
    if built.returncode != 0:
        pytest.fail(f"scripts/install-pulumi-yaml failed:\n{built.stdout}\n{built.stderr}")

    root = tmp_path_factory.mktemp("reuse")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=IGNORED)
        else:
            shutil.copy2(source, root / name)
    stack_dir = root / "examples" / "yaml"
    stack_dir.mkdir(parents=True)
    shutil.copy2(EXAMPLE / "Pulumi.yaml", stack_dir / "Pulumi.yaml")

    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env |= {
        "PATH": f"{TOOLS / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(root / "pulumi-home"),
        "PULUMI_BACKEND_URL": (root / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "model-serving-local",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    (root / "state").mkdir()
    _plugin_home(root / "pulumi-home", root, env)
    stack = YamlStack(stack_dir, env)
    stack.pulumi("package", "add", "../../provider")
    stack.pulumi("stack", "init", "test")
    yield stack


def test_package_add_records_the_provider(yaml_stack: YamlStack) -> None:
    project = yaml.safe_load((yaml_stack.path / "Pulumi.yaml").read_text())
    assert project["packages"] == {"model-serving": "../../provider"}
    assert (yaml_stack.path.parents[1] / "provider" / ".venv" / "bin" / "python").exists()


def test_preview_builds_the_components(yaml_stack: YamlStack) -> None:
    result = yaml_stack.pulumi("preview", "--stack", "test", "--json")
    steps = json.loads(result.stdout)["steps"]
    types = {step["urn"].split("::")[-2].split("$")[-1] for step in steps}
    assert {"model-serving:index:ModelService", "model-serving:index:GpuNodePool"} <= types
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"} <= types
    assert all(step["op"] == "create" for step in steps)


def _prune(value: Any) -> Any:
    """Manifests as rendered: fields that are empty are left out."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def test_up_renders_what_the_python_program_renders_for_the_same_config(yaml_stack: YamlStack) -> None:
    yaml_stack.pulumi("up", "--yes", "--stack", "test")
    rendered = {}
    for path in sorted((yaml_stack.path / "rendered").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                validate_object(doc)
                rendered[_identity(doc)] = doc

    # The same model and pool as stack config for this repository's own program, run under mocks.
    resources_ = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())["resources"]
    model = dict(resources_["minilm"]["properties"])
    pool = model.pop("gpuPool")
    assert resources_["gpu"]["properties"] == pool, "the example gives both components the same pool"
    config = {"gpuPool": pool, "models": [{"name": "minilm", **model}]}
    program = run_stack("render", config={f"model-serving:{k}": v for k, v in config.items()})
    expected = {_identity(r.inputs): _prune(r.inputs) for r in program.kubernetes_objects()}
    # The example declares its GpuNodePool itself; the program registers the pool only for a stack that needs it
    # (a GPU model or Karpenter), which this CPU model's is not: the pool's objects are those of its plan.
    assert not parse_stack_config(config).needs_gpu_pool
    stack = parse_stack_config(config)
    expected |= {_identity(s.obj): _prune(s.obj) for s in specs.gpu_pool.plan(stack.gpu_pool, stack.monitoring)}
    assert set(rendered) == set(expected)
    for identity, obj in expected.items():
        assert _prune(rendered[identity]) == obj, identity

    outputs = json.loads(yaml_stack.pulumi("stack", "output", "--json", "--stack", "test").stdout)
    assert outputs["namespace"] == "models-minilm"
    assert outputs["imageRef"] == model["image"]["ref"]
    assert outputs["gpuResourceName"] == "nvidia.com/gpu"
