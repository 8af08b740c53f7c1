"""Nothing skips in CI: the guard turns every kind of skip into a failure under CI=true, and only there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

SKIPPING = """
import pytest

missing = pytest.importorskip("a_module_that_is_not_installed")


def test_never_runs() -> None:
    pass
"""

SKIPS_AT_RUN_TIME = """
import pytest


def test_skips() -> None:
    pytest.skip("no tool here")


@pytest.mark.skipif(True, reason="not on this machine")
def test_skipif() -> None:
    pass


@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure() -> None:
    raise AssertionError


def test_passes() -> None:
    pass
"""


def _pytest(tmp_path: Path, source: str, ci: str | None) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_sample.py"
    test.write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_guard", "-p", "no:cacheprovider", "-rA", str(test)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("source", [SKIPPING, SKIPS_AT_RUN_TIME], ids=["module", "test"])
def test_a_skip_is_a_failure_in_ci(tmp_path: Path, source: str) -> None:
    result = _pytest(tmp_path, source, "true")
    assert result.returncode in (1, 2), result.stdout + result.stderr  # failed tests, or a collection error
    assert "skipped under CI=true, where nothing may skip" in result.stdout, result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout


def test_run_time_skips_fail_with_their_reason_and_xfail_stays_expected(tmp_path: Path) -> None:
    result = _pytest(tmp_path, SKIPS_AT_RUN_TIME, "true")
    summary = result.stdout.splitlines()[-1]
    # The skipif fires while setting up, so pytest counts it as an error; the other skip as a failure.
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in summary, result.stdout
    assert "no tool here" in result.stdout and "not on this machine" in result.stdout


def test_outside_ci_a_skip_stays_a_skip(tmp_path: Path) -> None:
    result = _pytest(tmp_path, SKIPS_AT_RUN_TIME, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout.splitlines()[-1], result.stdout


def test_the_guard_is_loaded_for_every_test_directory() -> None:
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    assert "pytest_runtest_makereport" in conftest and "pytest_make_collect_report" in conftest


def test_jsonschema_is_pinned_for_the_policy_config_tests() -> None:
    """tests/policy validates the policy configs with jsonschema: a dev requirement, pinned, never skipped."""
    pins = [line.split("==") for line in (ROOT / "requirements-dev.txt").read_text().splitlines() if "==" in line]
    assert "jsonschema" in {name.strip().lower() for name, _ in pins}
