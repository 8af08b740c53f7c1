"""Part 5: the app image's size against the seed's approach, as ``scripts/image-test`` measures them.

The script builds ``app/`` on a locally made Debian base and the seed's approach (the same base plus
``libopenblas-dev`` and ``gfortran``), tests the container, and, with ``IMAGE_TEST_SIZES_FILE``,
writes both sizes as JSON. It starts its own dockerd, which needs root (or a running daemon).

With ``IMAGE_TEST_SERVING_BENCH`` it also runs the serving benchmark against the container while it is
up (``python -m bench.serving``: tokens/s, latency and the GEMM efficiency over HTTP); those figures
are returned under ``serving`` (or why not, under ``serving_reason``) for ``detail.serving.container``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.util import progress, rounded
from tests.harness import ROOT

SCRIPT = ROOT / "scripts" / "image-test"
SIZES = ROOT / ".cache" / "bench" / "image-sizes.json"
SERVING = ROOT / ".cache" / "bench" / "image-serving.json"


def _engine_unavailable() -> str | None:
    """Why no Docker engine can be started here, or None if image-test may try."""
    if os.geteuid() == 0:
        return None
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode == 0:
        return None
    return "no Docker daemon answers and starting one needs root"


def container_figures(path: Path, log: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The serving benchmark's figures from the container (``IMAGE_TEST_SERVING_BENCH``), or why there are none."""
    if not path.exists():
        return None, f"scripts/image-test wrote no serving figures (see {log})"
    figures = json.loads(path.read_text())
    if figures.get("reason"):
        return None, f"the serving benchmark against the container failed: {figures['reason']}"
    return figures, None


def run() -> dict[str, Any]:
    reason = _engine_unavailable()
    if reason is not None:
        return {"image_size_ratio": None, "reason": reason, "serving": None, "serving_reason": reason}
    SIZES.parent.mkdir(parents=True, exist_ok=True)
    SIZES.unlink(missing_ok=True)
    SERVING.unlink(missing_ok=True)
    log = SIZES.with_suffix(".log")
    progress(f"image: scripts/image-test (builds both images, tests the container, benchmarks it; log {log})")
    env = {
        **os.environ,
        "IMAGE_TEST_SIZES_FILE": str(SIZES),
        "IMAGE_TEST_COMPARE_SEED": "1",
        "IMAGE_TEST_SERVING_BENCH": str(SERVING),
    }
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run([str(SCRIPT)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=3600)
    seconds = time.monotonic() - start
    container, why_not = container_figures(SERVING, log)
    serving = {"serving": container, "serving_reason": why_not}
    if not SIZES.exists():
        lines = log.read_text(errors="replace").splitlines()
        errors = [line for line in lines if "ERROR" in line or "FAILED" in line] or lines[-3:]
        return {
            "image_size_ratio": None,
            "reason": f"scripts/image-test exit {result.returncode}: {errors[-1:]}",
            **serving,
        }
    sizes = json.loads(SIZES.read_text())
    app, seed = sizes["app_bytes"], sizes["seed_bytes"]
    return {
        "image_size_ratio": rounded(app / seed),
        "app_mb": rounded(app / 1e6, 1),
        "seed_mb": rounded(seed / 1e6, 1),
        "llamacpp_mb": rounded(sizes["llamacpp_bytes"] / 1e6, 1) if "llamacpp_bytes" in sizes else None,
        "image_test_exit": result.returncode,
        "image_test_s": round(seconds),
        "serving_bench_s": None if container is None else container.get("seconds"),
        **serving,
    }
