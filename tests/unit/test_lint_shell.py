"""scripts/lint_shell.py (ShellCheck in `make lint`): it finds every shell script by its first line, and checks the
workflows' run: blocks with findings that point at the workflow's own lines."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.harness import ROOT


@pytest.fixture(scope="module")
def lint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lint_shell", ROOT / "scripts" / "lint_shell.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["lint_shell"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_scripts_are_found_by_their_first_line(lint: ModuleType) -> None:
    found = set(lint.shell_scripts())
    assert {".ci/run", "scripts/install-pulumi", "scripts/image-test", "scripts/local-cluster"} <= found
    assert {"scripts/lib-tools.sh", "scripts/lib-go.sh"} <= found, "sourced libraries: # shellcheck shell=bash"
    assert not {p for p in found if p.endswith((".py", ".env", ".go"))}


def test_only_existing_scripts_are_left_out(lint: ModuleType) -> None:
    assert set(lint.PENDING) <= set(lint.shell_scripts())


def test_make_lint_runs_it() -> None:
    assert "scripts/lint_shell.py" in (ROOT / "Makefile").read_text()


WORKFLOW = """\
name: t
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v5
      - name: Fine
        run: echo "${{ inputs.stack }}"
      - name: Unquoted
        env:
          X: y
        run: |
          set -e
          echo $X
      - name: Not shell
        shell: python
        run: print($X)
  b:
    uses: ./.github/workflows/other.yml
"""


def test_run_blocks_keep_their_lines_and_findings_point_at_them(lint: ModuleType, tmp_path: Path) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(WORKFLOW)
    blocks = list(lint.run_blocks(workflow, tmp_path))
    assert [(b.step, b.first_line) for b in blocks] == [
        ("jobs.a.steps[1] (Fine)", 9),
        ("jobs.a.steps[2] (Unquoted)", 14),
    ]
    findings = lint.check_run_blocks(blocks, lint.shellcheck())
    assert len(findings) == 1, findings
    assert findings[0].startswith("w.yml:15:16: info: Double quote to prevent globbing"), findings
    assert "[SC2086] (jobs.a.steps[2] (Unquoted))" in findings[0]
