"""Real Pulumi CLI runs against a throwaway copy of the project and its own local file backend.

The tests drive the same Makefile targets as the README and CI (`make up`, `make preview`), so
what passes here is what a user and the workflows run. Without the CLI they skip locally and fail
in CI (CI=true), where a skipped engine test would hide a broken bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.project import Project, cli_available, copy_project, require

__all__ = ["Project", "cli_available"]


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    require(cli_available(), "the Pulumi CLI is missing: run scripts/install-pulumi (make test does)")
    yield copy_project(tmp_path_factory.mktemp("model-serving"))
