"""Under CI (``CI=true``) nothing skips: a skipped test or module is reported as a failure.

A skip on a developer's machine says "a tool or package is missing here". In CI the same skip would hide a
broken set-up (a requirement not pinned, a CLI not built, a model not installed), so this plugin turns every
skip, whatever raised it (``pytest.skip``, ``importorskip``, ``skipif``, a module-level skip), into a failure
that keeps the skip's reason. Expected failures (``xfail``) are not skips and are left alone; tests left out
with ``-m``/``-k`` are deselected, not skipped.

Imported by ``tests/conftest.py``; ``tests/test_ci_guard.py`` runs it in a pytest of its own.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _reason(longrepr: Any) -> str:
    # A skip's longrepr is (path, line, "Skipped: <reason>").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where nothing may skip: {_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if in_ci() and report.skipped:
        _fail(report)
