"""Shared by every test directory: under CI=true a skip is a failure (see tests/ci_guard.py); and every test starts
with an event loop set on the main thread."""

import asyncio
from collections.abc import Iterator

import pytest

from tests.ci_guard import pytest_make_collect_report, pytest_runtest_makereport

__all__ = ["pytest_make_collect_report", "pytest_runtest_makereport"]


@pytest.fixture(autouse=True)
def _main_thread_event_loop() -> Iterator[None]:
    # asyncio.run (the model server's tests run it) leaves the main thread with no event loop; Pulumi's mocks
    # ask for one with get_event_loop, which then fails for every test after them.
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield
