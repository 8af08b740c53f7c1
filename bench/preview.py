"""Part 4: ``pulumi preview`` of ``prod`` with the real CLI, in throwaway copies of the project.

Three variants, each run in turn (rotating which goes first) so load falls on all of them:

- ``component``: the program as shipped, ``pulumi preview --stack prod``;
- ``policy``: the same with ``--policy-pack policy --policy-pack-config policy/config/prod.json``;
- ``raw``: :mod:`bench.raw_program` as the ``__main__.py`` of a project of its own (same name,
  same stack file), declaring the same objects without components.

Like the integration tests, the copies link ``.venv`` and ``.tools``, keep their state in a file
backend of their own, and set ``imageRefOverride`` to a digest-pinned reference (no docker plugin
here) and a secret ``hubToken``. The environment is the Makefile's.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.programs import PREBUILT, RAW_PROGRAM
from bench.util import median, progress, rounded
from tests.harness import ROOT

STACK = "prod"
COPIED = ["Pulumi.yaml", "__main__.py", "components", "stacks", "policy"]
LINKED = [".venv", ".tools"]
POLICY_ARGS = ["--policy-pack", "policy", "--policy-pack-config", f"policy/config/{STACK}.json"]
VARIANTS = ("component", "policy", "raw")


def cli() -> Path | None:
    path = ROOT / ".tools" / "bin" / "pulumi"
    return path if path.exists() else None


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(
        PATH=os.pathsep.join([str(ROOT / ".tools" / "bin"), str(ROOT / ".venv" / "bin"), env.get("PATH", "")]),
        PULUMI_HOME=str(ROOT / ".tools" / "pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        PULUMI_IGNORE_AMBIENT_PLUGINS="true",
        PULUMI_BACKEND_URL=f"file://{project / '.pulumi-state'}",
        PULUMI_CONFIG_PASSPHRASE="model-serving-local",
    )
    return env


def _default_sigint() -> None:
    # A shell runs background jobs with SIGINT ignored, and children inherit that. The CLI stops its
    # plugins (language host, provider) with SIGINT and waits 5 s before killing those that ignore
    # it: every command would take 5 s longer, and the ratios would shrink toward 1.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _pulumi(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["pulumi", *args],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=_default_sigint,  # the bench runs no threads of its own
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"pulumi {' '.join(args)} in {project} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def _copy(dest: Path, program: Path | None, stacks: tuple[str, ...] = (STACK,)) -> Path:
    dest.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "config.local.json"))
        else:
            shutil.copy2(source, dest / name)
    if program is not None:
        shutil.copy2(program, dest / "__main__.py")
    for name in LINKED:
        (dest / name).symlink_to(ROOT / name)
    (dest / ".pulumi-state").mkdir()
    for stack in stacks:
        _pulumi(dest, "stack", "init", stack)
        _pulumi(dest, "config", "set", "--stack", stack, "model-serving:imageRefOverride", PREBUILT)
        _pulumi(dest, "config", "set", "--secret", "--stack", stack, "model-serving:hubToken", "hf_bench_only")
    return dest


def _preview(project: Path, variant: str) -> tuple[float, str]:
    args = ["preview", "--stack", STACK, "--non-interactive", *(POLICY_ARGS if variant == "policy" else [])]
    start = time.perf_counter()
    result = _pulumi(project, *args)
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    if variant == "policy" and ("model-serving-policies" not in output or "[mandatory]" in output):
        raise RuntimeError(f"the policy pack did not run cleanly:\n{output[-3000:]}")
    return seconds, output


def _creates(output: str) -> int:
    found = re.search(r"\+ (\d+) to create", output)
    return int(found.group(1)) if found else -1


def run(repeats: int) -> dict[str, Any]:
    if cli() is None:
        return {"skipped": "no Pulumi CLI in .tools/bin (make pulumi)"}
    with tempfile.TemporaryDirectory(prefix="model-serving-bench-") as tmp:
        progress("preview: making throwaway copies of the project (component and raw programs)")
        projects = {"component": _copy(Path(tmp) / "component", None), "raw": _copy(Path(tmp) / "raw", RAW_PROGRAM)}
        projects["policy"] = projects["component"]
        creates = {}
        for variant in VARIANTS:  # warm-up: bytecode, plugin and policy-pack start-up caches
            _, output = _preview(projects[variant], variant)
            creates[variant] = _creates(output)
        progress(f"preview: warm-up done; resources to create {creates}")
        if not 0 < creates["raw"] < creates["component"] == creates["policy"]:
            raise RuntimeError(f"unexpected plans (resources to create): {creates}")
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for repeat in range(repeats):
            order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
            for variant in order:
                times[variant].append(_preview(projects[variant], variant)[0])
            progress(
                f"preview: repeat {repeat + 1}/{repeats}: " + ", ".join(f"{v} {times[v][-1]:.2f}s" for v in VARIANTS)
            )

    def paired(a: str, b: str) -> float:
        return median([x / y for x, y in zip(times[a], times[b], strict=True)])

    version = subprocess.run(["pulumi", "version"], env=_env(ROOT), capture_output=True, text=True).stdout.strip()
    return {
        "pulumi": version,
        "repeats": repeats,
        "preview_ratio_raw": rounded(paired("component", "raw")),
        "preview_ratio_policy": rounded(paired("policy", "component")),
        "seconds": {v: rounded(median(times[v]), 2) for v in VARIANTS},
        "resources_to_create": creates,
    }
