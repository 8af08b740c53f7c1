"""One program run under the Pulumi mocks of ``tests/harness.py``, in a process of its own.

``python -m bench.mock_run --program component|raw --models N`` prints one JSON line: the run's
wall and CPU seconds (program start to every registration resolved and the stack outputs read), the process's
peak resident memory, the number of resources registered and a digest of the Kubernetes objects
(the two programs must declare the very same ones). ``gc_seconds`` is the part of the run spent in CPython's
cyclic garbage collector (``gc_collections``: per generation). ``--count-calls`` adds how many
times each Python function ran (cProfile; deterministic, unlike time). ``--check`` also records each object's
dependencies into the digest (kept out of timed runs). ``--profile FILE`` writes a pyinstrument
profile of the run (HTML when FILE ends in .html, else text) and FILE with suffix .json: every
function's own seconds.

The SDKs and every module of ``components`` are imported before the clock starts, in both programs:
imports are a one-off cost of the process, not of the component layer per model. Their time is
reported apart (``import_seconds``; ``component_import_seconds`` for the modules only the component
program needs).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import resource
import runpy
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

t_import = time.perf_counter()
import pulumi  # noqa: E402
import pulumi_kubernetes  # noqa: E402, F401
from pulumi.runtime import mocks  # noqa: E402

from tests import harness  # noqa: E402

for _module in ("config", "specs", "kube", "program"):  # what the raw program imports too
    importlib.import_module(f"components.{_module}")
t_components = time.perf_counter()
for _module in ("gpu_node_pool", "model_service"):  # only the component program's (pulumi_docker among them)
    importlib.import_module(f"components.{_module}")
import_seconds = time.perf_counter() - t_import
component_import_seconds = time.perf_counter() - t_components

from bench.programs import PROGRAMS, models_config  # noqa: E402


async def _run(path: Path) -> None:
    from pulumi.runtime.stack import run_pulumi_func

    def program() -> None:
        runpy.run_path(str(path), run_name="__main__")

    await run_pulumi_func(program)


class _PlainMonitor(mocks.MockMonitor):
    """The SDK's own mock monitor: the harness's, less its recording of every registration."""

    def __init__(self, recorder: mocks.Mocks) -> None:
        super().__init__(recorder)
        self.registered: list[harness.Registered] = []


class _DependencyMonitor(harness._Monitor):
    """The harness's monitor, also keeping each resource's dependencies as ``type::name``."""

    dependencies: ClassVar[dict[str, list[str]]] = {}  # one run per process

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        self.dependencies[response.urn] = sorted(_short(urn) for urn in request.dependencies)
        return response


class GcClock:
    """Collections per generation, and seconds spent in them, while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def _short(urn: str) -> str:
    parts = urn.split("::")
    return f"{parts[-2].rsplit('$', 1)[-1]}::{parts[-1]}"


def run(program: str, n: int, *, check: bool = False, monitor: str = "harness") -> tuple[float, float, harness.Run]:
    """The harness's ``run_stack`` with the program chosen: same mocks, same recording, same outputs.

    ``monitor="plain"`` swaps the harness's recording monitor for the SDK's (nothing recorded).
    """
    config = models_config(n)
    if check:
        harness._Monitor = _DependencyMonitor  # type: ignore[misc]
    elif monitor == "plain":
        harness._Monitor = _PlainMonitor  # type: ignore[misc,assignment]
    start, cpu_start = time.perf_counter(), time.process_time()
    recorder, _ = harness._start("prod", config, None, None, False)
    harness._sync_await(_run(PROGRAMS[program]))
    outputs: dict[str, Any] = {}
    root = pulumi.runtime.settings.get_root_resource()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        outputs[key] = harness._sync_await(pulumi.Output.from_input(value).future())
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, cpu_seconds, harness.Run(resources=recorder.registered, outputs=outputs)


def objects_digest(result: harness.Run) -> str:
    """Type, name, inputs (and with ``--check`` dependencies) of every Kubernetes object, and the stack outputs."""
    dependencies = _DependencyMonitor.dependencies
    records = sorted(
        json.dumps([r.type, r.name, r.inputs, sorted(r.secret_paths), dependencies.get(r.urn)], sort_keys=True)
        for r in result.kubernetes_objects()
    )
    records.append(json.dumps(result.outputs, sort_keys=True, default=str))
    return hashlib.sha256("\n".join(records).encode()).hexdigest()[:16]


def self_times(frame: Any, into: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds spent in each function itself (not in what it called), from a pyinstrument frame tree."""
    into = {} if into is None else into
    children = [c for c in frame.children if not c.is_synthetic]
    if not frame.is_synthetic:
        key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        into[key] = into.get(key, 0.0) + frame.time - sum(c.time for c in children)
    for child in children:
        self_times(child, into)
    return into


def _write_profile(profiler: Any, path: Path) -> None:
    """The call tree (text or HTML) and, beside it as JSON, every function's own seconds."""
    if path.suffix == ".html":
        path.write_text(profiler.output_html())
    else:
        path.write_text(profiler.output_text(unicode=True, color=False))
    session = profiler.last_session
    own = self_times(session.root_frame())
    path.with_suffix(".json").write_text(
        json.dumps({"seconds": session.duration, "self_seconds": dict(sorted(own.items(), key=lambda kv: -kv[1]))})
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mock_run", description=__doc__.splitlines()[0])
    parser.add_argument("--program", choices=sorted(PROGRAMS), required=True)
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--monitor", choices=("harness", "plain"), default="harness", help="plain: no recording")
    parser.add_argument("--check", action="store_true", help="digest dependencies too (not for timing)")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="diagnostic: gc.freeze() after the imports, as a program could (not used by make bench)",
    )
    parser.add_argument("--count-calls", action="store_true", help="count Python calls by function (cProfile)")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the run here")
    args = parser.parse_args(argv)
    if args.gc_freeze:
        gc.freeze()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    counter = None
    if args.count_calls:
        import cProfile

        counter = cProfile.Profile()
        counter.enable()
    clock = GcClock()
    gc.callbacks.append(clock)
    seconds, cpu_seconds, result = run(args.program, args.models, check=args.check, monitor=args.monitor)
    gc.callbacks.remove(clock)
    calls: dict[str, int] | None = None
    if counter is not None:
        counter.disable()
        counter.create_stats()
        calls = {f"{name} ({file}:{line})": stat[1] for (file, line, name), stat in counter.stats.items()}
    if profiler is not None:
        profiler.stop()
        _write_profile(profiler, args.profile)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    json.dump(
        {
            "program": args.program,
            "models": args.models,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "gc_seconds": clock.seconds,
            "gc_collections": clock.collections,
            "import_seconds": import_seconds,
            "component_import_seconds": component_import_seconds,
            "peak_rss_mb": peak_kb / 1024,
            "resources": len(result.resources),
            "kubernetes_objects": len(result.kubernetes_objects()),
            "digest": objects_digest(result),
            **({"calls": calls} if calls is not None else {}),
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
