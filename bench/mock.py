"""Parts 1 and 2: the program under mocks against the raw program, N = 1, 10, 100; peak memory at 100.

Every run is a fresh ``python -m bench.mock_run`` process. Each repeat runs every N with the
programs back to back, in rotating order, so that load from other work on the machine falls on
every side of a ratio; ratios are taken within a repeat and their median reported. At N = 100 the
``bare`` program (the raw one plus as many empty ComponentResources as the component program
registers) runs too: ``bare / raw`` is what registering that many components costs by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.util import median, progress, rounded
from tests.harness import ROOT

SIZES = (1, 10, 100)
FLOOR_SIZE = 100


def programs(n: int) -> tuple[str, ...]:
    return ("component", "bare", "raw") if n == FLOOR_SIZE else ("component", "raw")


def mock_run(program: str, models: int, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.mock_run", "--program", program, "--models", str(models), *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def check_same_objects(models: int = 3) -> str:
    """All programs declare the same objects, inputs, secrets, dependencies and outputs, or stop."""
    digests = {p: mock_run(p, models, "--check")["digest"] for p in programs(FLOOR_SIZE)}
    if len(set(digests.values())) != 1:
        raise RuntimeError(f"the programs do not declare the same objects: {digests}")
    return digests["component"]


def run(repeats: int) -> dict[str, Any]:
    progress("mocks: checking that the programs declare the same Kubernetes objects (N=3)")
    check_same_objects()
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {n: {p: [] for p in programs(n)} for n in SIZES}
    for repeat in range(repeats):
        for n in SIZES:
            names = programs(n)
            shift = repeat % len(names)
            for program in names[shift:] + names[:shift]:
                runs[n][program].append(mock_run(program, n))
            if len({runs[n][p][-1]["digest"] for p in names}) != 1:
                raise RuntimeError(f"N={n}: the programs declared different objects")
        last = runs[FLOOR_SIZE]
        progress(
            f"mocks: repeat {repeat + 1}/{repeats}; N={FLOOR_SIZE}: "
            + ", ".join(f"{p} {last[p][-1]['seconds']:.2f}s" for p in programs(FLOOR_SIZE))
        )

    def values(n: int, program: str, key: str = "seconds") -> list[float]:
        return [r[key] for r in runs[n][program]]

    def outside_gc(n: int, program: str) -> list[float]:
        return [r["seconds"] - r["gc_seconds"] for r in runs[n][program]]

    def paired(a: list[float], b: list[float]) -> float:
        return median([x / y for x, y in zip(a, b, strict=True)])

    sizes = {}
    for n in SIZES:
        row: dict[str, Any] = {f"{p}_s": rounded(median(values(n, p))) for p in programs(n)}
        row["ratio"] = rounded(paired(values(n, "component"), values(n, "raw")))
        row["cpu_ratio"] = rounded(paired(values(n, "component", "cpu_seconds"), values(n, "raw", "cpu_seconds")))
        row["resources"] = {p: runs[n][p][0]["resources"] for p in programs(n)}
        sizes[str(n)] = row
    floor = FLOOR_SIZE
    # The goal holds in every repeat, not in their median: the figure is the worst repeat's ratio.
    each = [x / y for x, y in zip(values(floor, "component"), values(floor, "raw"), strict=True)]
    each_cpu = [
        x / y
        for x, y in zip(values(floor, "component", "cpu_seconds"), values(floor, "raw", "cpu_seconds"), strict=True)
    ]
    return {
        "repeats": repeats,
        "overhead_ratio": rounded(max(each)),
        "overhead_ratio_median": sizes[str(floor)]["ratio"],
        "overhead_ratios": [rounded(x) for x in each],
        "overhead_cpu_ratios": [rounded(x) for x in each_cpu],
        "bare_ratio": rounded(paired(values(floor, "bare"), values(floor, "raw"))),
        "component_over_bare": rounded(paired(values(floor, "component"), values(floor, "bare"))),
        "growth_100_over_10": rounded(paired(values(100, "component"), values(10, "component")), 2),
        "growth_raw_100_over_10": rounded(paired(values(100, "raw"), values(10, "raw")), 2),
        # Time outside CPython's cyclic GC, whose full collections walk a heap that grows with N.
        "growth_100_over_10_outside_gc": rounded(paired(outside_gc(100, "component"), outside_gc(10, "component")), 2),
        "gc_share_100": rounded(median([r["gc_seconds"] / r["seconds"] for r in runs[100]["component"]]), 2),
        "gc_collections_100": runs[100]["component"][0]["gc_collections"],
        "gc_collections_10": runs[10]["component"][0]["gc_collections"],
        "peak_rss_mb_100": rounded(median(values(100, "component", "peak_rss_mb")), 1),
        "peak_rss_mb_100_raw": rounded(median(values(100, "raw", "peak_rss_mb")), 1),
        "import_s": rounded(median(values(1, "component", "import_seconds"))),
        "component_import_s": rounded(median(values(1, "component", "component_import_seconds"))),
        "sizes": sizes,
    }


# Where a profiled run's time goes, by the file of the function it is spent in (first match wins).
AREAS = (
    (
        "stack traces",
        ("traceback.py", "linecache.py", "pathlib.py", "_get_stack_trace", "rpc_frame", "source_position"),
    ),
    ("asyncio scheduling", ("asyncio/", "epoll")),
    ("thread-pool RPC hop", ("concurrent/", "threading.py", "lock.", "_thread")),
    ("Output bookkeeping", ("pulumi/output.py", "contains_unknowns", "_utils.py", "pulumi/_types.py", "typing.py")),
    ("serialization", ("pulumi/runtime/rpc.py", "protobuf", "json_format")),
    ("engine log calls", ("pulumi/log.py", "logging/")),
    ("mocks and harness", ("pulumi/runtime/mocks.py", "tests/harness.py")),
    (
        "SDK resource registration",
        ("pulumi/runtime/resource.py", "pulumi/resource.py", "rpc_manager.py", "settings.py"),
    ),
    ("Kubernetes SDK classes", ("pulumi_kubernetes/",)),
    ("the programs and builders", ("components/", "bench/", "__main__.py")),
    ("other built-in functions (isinstance, getattr, ...)", ("(~:",)),
)


def _area(function: str) -> str:
    for area, needles in AREAS:
        if any(needle in function for needle in needles):
            return area
    return "other"


def profile(directory: Path, models: int = FLOOR_SIZE) -> dict[str, Any]:
    """Where the component layer's cost goes, at N = ``models``.

    Writes a pyinstrument profile of each program to ``directory`` (call tree as text, and every
    function's own seconds as JSON) and counts every Python function call with cProfile: counts do
    not move with the machine's load, so their split by area of the code (:data:`AREAS`) shows
    what the component and bare programs do beyond the raw one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    calls: dict[str, dict[str, int]] = {}
    counted: dict[str, dict[str, Any]] = {}
    files = []
    for program in programs(models):
        path = directory / f"profile-{program}-{models}.txt"
        progress(f"mocks: profiling {program} at N={models} -> {path} (and counting calls)")
        mock_run(program, models, "--profile", str(path))
        files.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
        counted[program] = mock_run(program, models, "--count-calls")
        by_area: dict[str, int] = {}
        for function, count in counted[program]["calls"].items():
            by_area[_area(function)] = by_area.get(_area(function), 0) + count
        calls[program] = by_area
    total = {p: sum(a.values()) for p, a in calls.items()}
    components = counted["component"]["resources"] - counted["raw"]["resources"]

    def extra(program: str) -> dict[str, int]:
        diff = {area: n - calls["raw"].get(area, 0) for area, n in calls[program].items()}
        return dict(sorted(diff.items(), key=lambda kv: -kv[1]))

    return {
        "files": files,
        "python_calls": total,
        "call_ratio": rounded(total["component"] / total["raw"]),
        "bare_call_ratio": rounded(total["bare"] / total["raw"]),
        "components": components,
        "calls_per_bare_component": round((total["bare"] - total["raw"]) / components),
        "calls_per_raw_resource": round(total["raw"] / counted["raw"]["resources"]),
        "extra_calls_by_area": {"component": extra("component"), "bare": extra("bare")},
    }
