#!/usr/bin/env python3
"""stack_plugins.py STACK [--preview]: before `pulumi up` or `pulumi preview` of a stack (the Makefile runs it),
make sure the resource plugins the stack needs beyond kubernetes are installed.

The Makefile's environment never downloads plugins on its own (PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION), so a
stack that builds its image (a model with ``image.build`` and no ``model-serving:imageRefOverride``) would otherwise
fail deep in the engine with "no resource plugin 'pulumi-resource-docker'". This installs the docker plugin with
`make docker-plugin` when it is missing. When that fails too (no download possible: docs/engine.md, "The real
engine, offline"):

- for `up`, it stops with one line saying what to run;
- with ``--preview``, the preview goes on without building: each such model's image is pinned to what this machine
  built (the local cluster's image lock, ``.cluster/images.json``, for the same repository) or else to the digest of
  its build inputs, in a copy of the stack's config under ``.stack-config/``. It prints ``--config-file <copy>`` for
  the preview's command line and says so in one line; the policy pack still runs.

PATH and PULUMI_HOME as the Makefile exports them. Prints nothing and exits 0 when nothing is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import ImageBuildConfig  # noqa: E402
from components.config.kinds import IMAGE_REF  # noqa: E402
from components.image import context_digest  # noqa: E402

PREFIX = "model-serving:"
LOCK = ROOT / ".cluster" / "images.json"


def docker_plugin_version() -> str:
    manifest = resources.files("pulumi_docker").joinpath("pulumi-plugin.json").read_text()
    return str(json.loads(manifest)["version"])


def installed(version: str) -> bool:
    listed = subprocess.run(["pulumi", "plugin", "ls", "--json"], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        return False
    plugins = json.loads(listed.stdout or "[]") or []
    return any(
        p.get("name") == "docker" and p.get("kind") == "resource" and p.get("version") == version for p in plugins
    )


def building(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The models whose image the stack builds (none when imageRefOverride replaces every image)."""
    models = config.get(f"{PREFIX}models") or []
    if config.get(f"{PREFIX}imageRefOverride") or not isinstance(models, list):
        return []
    return [m for m in models if isinstance(m, dict) and isinstance(m.get("image"), dict) and m["image"].get("build")]


def repository(ref: str) -> str:
    """``registry.example.com/model-serving/server:dev`` -> ``model-serving/server``: the path without the
    registry host (docker.io's implicit one included), tag and digest."""
    match = IMAGE_REF.match(ref)
    name = match["name"] if match else ref
    first, _, rest = name.partition("/")
    return rest if rest and ("." in first or ":" in first or first == "localhost") else name


def pinned_ref(build: dict[str, Any]) -> tuple[str, str]:
    """The reference a building model is previewed with, and where it comes from."""
    image_name = str(build.get("imageName", ""))
    match = IMAGE_REF.match(image_name)
    name = match["name"] if match else image_name
    if LOCK.is_file():
        for ref, pinned in json.loads(LOCK.read_text()).items():
            if repository(ref) == repository(image_name):
                digest = pinned.rpartition("@")[2]
                return f"{name}@{digest}", f"the digest of the image this machine built, {LOCK.relative_to(ROOT)}"
    given = {"image_name": image_name, "context": build.get("context"), "dockerfile": build.get("dockerfile")}
    given["args"] = {str(k): str(v) for k, v in (build.get("args") or {}).items()}
    given["platform"] = build.get("platform")
    spec = ImageBuildConfig(**{k: v for k, v in given.items() if v is not None})  # the schema's defaults else
    return f"{name}@sha256:{context_digest(spec, ROOT)}", f"the digest of its build inputs, {spec.context}/"


def preview_config(stack: str, document: dict[str, Any], models: list[dict[str, Any]]) -> tuple[Path, list[str]]:
    """A copy of the stack's config in which each building model deploys its pinned image instead."""
    notes = []
    for model in models:
        ref, source = pinned_ref(model["image"]["build"])
        model["image"] = {"ref": ref}
        notes.append(f"{model.get('name')} as {ref} ({source})")
    target = ROOT / ".stack-config" / f"Pulumi.{stack}.preview.yaml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        f"# Written by scripts/stack_plugins.py from stacks/Pulumi.{stack}.yaml for a preview: do not edit.\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    return target, notes


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-") or argv[1:] not in ([], ["--preview"]):
        print("usage: stack_plugins.py STACK [--preview]", file=sys.stderr)
        return 2
    stack, preview = argv[0], argv[1:] == ["--preview"]
    stack_file = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        return 0  # a new stack: pulumi creates its file, and it builds nothing yet
    document = yaml.safe_load(stack_file.read_text()) or {}
    models = building(document.get("config") or {})
    if not models:
        return 0
    version = docker_plugin_version()
    if installed(version):
        return 0
    log = ROOT / ".cache" / "docker-plugin.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        make = os.environ.get("MAKE", "make")
        done = subprocess.run([make, "--no-print-directory", "-C", str(ROOT), "docker-plugin"], stdout=out, stderr=out)
    if done.returncode == 0 and installed(version):
        return 0
    names = " ".join(str(m.get("name")) for m in models)
    why = (
        f"the pulumi-docker provider plugin v{version} cannot be installed here "
        "(make docker-plugin: .cache/docker-plugin.log)"
    )
    if preview:
        target, notes = preview_config(stack, document, models)
        print(
            f"note: previewing stack '{stack}' without building its images, as {why}: {'; '.join(notes)}",
            file=sys.stderr,
        )
        print(f"--config-file {target}")
        return 0
    print(
        f"error: stack '{stack}' builds the image of model(s) {names}, which needs the pulumi-docker provider plugin "
        f"v{version}, and installing it failed (make docker-plugin: .cache/docker-plugin.log); run 'make "
        f"docker-plugin' where it can be downloaded (or 'pulumi plugin install resource docker {version} --file "
        f"<plugin tarball>'), or deploy a prebuilt image: pulumi config set --stack {stack} "
        f"{PREFIX}imageRefOverride <image ref>",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
