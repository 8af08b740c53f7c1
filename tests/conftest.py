"""Shared by every test directory: under CI=true a skip is a failure (see tests/ci_guard.py)."""

from tests.ci_guard import pytest_make_collect_report, pytest_runtest_makereport

__all__ = ["pytest_make_collect_report", "pytest_runtest_makereport"]
