"""Part 3: wall time of the unit and policy suites, the way ``make unit`` runs them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

from bench.util import progress, rounded
from tests.harness import ROOT

SUITES = ["tests/unit", "tests/policy"]


def run() -> dict[str, Any]:
    progress(f"suites: pytest {' '.join(SUITES)}")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *SUITES, "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - start
    summary = [line for line in result.stdout.splitlines() if re.search(r"\b(passed|failed|error)", line)]
    return {
        "suite_seconds": rounded(seconds, 1),
        "exit_code": result.returncode,
        "summary": summary[-1].strip("= ") if summary else result.stdout[-300:],
    }
