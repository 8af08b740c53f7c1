"""Part 7: ``pulumi up`` and ``destroy`` on the local cluster, against kubectl doing the same with the same objects.

For N models (1 and 20), in a throwaway copy of the project on the running local cluster (``make cluster-up``):

- ``pulumi``: ``pulumi up --skip-preview`` of a stack of N copies of the e2e stack's embeddings model (CPU,
  fake nodes, an HPA), timed until it returns (Pulumi waits for every Deployment to be Available), then
  ``pulumi destroy`` timed until it returns (it waits for the objects, namespaces included, to be gone);
- ``kubectl``: the same stack rendered to YAML (``renderDirectory``), then ``kubectl apply --server-side`` of
  the namespaces and of the rest, ``kubectl wait --for=condition=Available`` on every Deployment and
  ``kubectl rollout status`` of each (Available alone holds at once when maxUnavailable covers the replicas),
  timed together; then ``kubectl delete --wait`` of everything, timed until the namespaces are gone.

The ratios are pulumi / kubectl in the same run (the order alternating between repeats); absolute times are
context. No policy pack runs (``make up`` adds one), nothing of the cluster is left behind.

Pulumi runs with ``--parallel PARALLEL``: at the CLI's default (8 on 2 cores) each Service's await (which holds
a slot for 10 s after its endpoints last change) queues the Deployments behind it.

Each pulumi run is profiled (``profile`` per size: :func:`profile`) from its engine events: ``--event-log`` on a
FIFO, every event stamped with the second it arrived (the log's own timestamps are whole seconds), and, for the
critical path, the dependencies the state records (``pulumi stack export`` after ``up``, not timed).
"""

from __future__ import annotations

import copy
import json
import os
import selectors
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from bench.preview import _copy, _default_sigint, _env, _pulumi
from bench.util import median, progress, rounded
from tests.harness import PROJECT, ROOT, stack_config

SIZES = (1, 20)
STACK = "bench"
RENDER_STACK = "bench-render"  # the same objects, written to YAML for kubectl
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
SELECTOR = "app.kubernetes.io/part-of=model-serving"
# Steps the engine runs at once (``--parallel``; the CLI's default is 4 per core, 8 here). At 20 models up runs
# up to ~55 object steps at once with 64 (no queueing); 32 and 256 measured the same within noise.
PARALLEL = 64


def _kubectl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(KUBECONFIG), *args], capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result


def cluster_running() -> bool:
    if not (KUBECONFIG.exists() and KUBECTL.exists()):
        return False
    probe = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(KUBECONFIG), "get", "--raw", "/readyz"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


def stack_values(n: int, render: Path | None = None) -> dict[str, Any]:
    """The e2e stack's embeddings model, n times (``bench-m<i>`` in namespaces ``bench-m<i>``), on the cluster."""
    e2e = stack_config("e2e")
    template = next(m for m in e2e[f"{PROJECT}:models"] if m["name"] == "embeddings")
    models = []
    for i in range(n):
        model = copy.deepcopy(template)
        model["name"] = f"m{i:02d}"
        model.pop("routing", None)  # its own Service, as the classic e2e model (no Gateway in this stack)
        model["service"] = {"type": "ClusterIP", "port": 80}
        # Small enough for 20 models on the cluster's two fake CPU nodes (16 CPUs each).
        model["resources"] = {"cpu": "500m", "memory": "1Gi", "ephemeralStorage": "4Gi", "gpus": 0}
        model["modelCache"] = {"type": "emptyDir", "size": "1Gi"}
        model["autoscaling"] = {**model["autoscaling"], "minReplicas": 1, "maxReplicas": 2}
        models.append(model)
    values: dict[str, Any] = {f"{PROJECT}:namespace": STACK, f"{PROJECT}:models": models}
    if render is not None:  # written, not applied: no cluster to name
        values[f"{PROJECT}:renderDirectory"] = str(render)
    else:
        values[f"{PROJECT}:kubeconfig"] = ".cluster/kubeconfig"
        values[f"{PROJECT}:kubeContext"] = e2e[f"{PROJECT}:kubeContext"]
    return values


def _write_stack(project: Path, stack: str, values: dict[str, Any]) -> None:
    """Set the stack file's model-serving config to ``values``, keeping what ``_copy`` set (image, secret)."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    kept = {k: v for k, v in (document.get("config") or {}).items() if k.endswith((":imageRefOverride", ":hubToken"))}
    document["config"] = {**kept, **values}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _timed(func: Any, *args: Any) -> float:
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------------
# Profile of one pulumi run, from its engine events (pure: the unit tests feed it a synthetic log)

Stamped = tuple[float, dict[str, Any]]  # an engine event and the second it arrived, counted from the CLI's start


@dataclass(frozen=True)
class Span:
    """One resource's step: from its resourcePreEvent to its resOutputsEvent (or resOpFailedEvent)."""

    type: str
    start: float
    end: float
    custom: bool  # an object a provider manages (not a component, the stack or a provider)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def kind(self) -> str:
        return kind_of(self.type)


def kind_of(type_token: str) -> str:
    """``kubernetes:apps/v1:Deployment``: ``Deployment``; ``pulumi:providers:kubernetes``: ``provider:kubernetes``."""
    if type_token.startswith("pulumi:providers:"):
        return "provider:" + type_token.removeprefix("pulumi:providers:")
    return type_token.rsplit(":", 1)[-1]


def stamped_events(lines: Iterable[tuple[float, str]]) -> list[Stamped]:
    """The event log's lines (one JSON event each) with the second each arrived; blank or torn lines are skipped."""
    events: list[Stamped] = []
    for at, line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append((at, event))
    return events


def resource_spans(events: Iterable[Stamped]) -> dict[str, Span]:
    """Per URN, its first pre-event to its last outputs (or failure) event; previews' planning events are left out."""
    starts: dict[str, tuple[float, str, bool]] = {}
    ends: dict[str, float] = {}
    for at, event in events:
        for key in ("resourcePreEvent", "resOutputsEvent", "resOpFailedEvent"):
            payload = event.get(key)
            if not payload or payload.get("planning"):
                continue
            meta = payload["metadata"]
            urn = meta["urn"]
            if key == "resourcePreEvent":
                state = meta.get("new") or meta.get("old") or {}
                custom = bool(state.get("custom")) and not meta["type"].startswith("pulumi:providers:")
                starts.setdefault(urn, (at, meta["type"], custom))
            else:
                ends[urn] = at
    return {
        urn: Span(type_token, start, ends[urn], custom)
        for urn, (start, type_token, custom) in starts.items()
        if urn in ends
    }


def state_dependencies(exported: Mapping[str, Any]) -> dict[str, list[str]]:
    """URN: the URNs it depends on, from ``pulumi stack export``'s document."""
    resources = (exported.get("deployment") or {}).get("resources") or []
    return {r["urn"]: list(r.get("dependencies") or []) for r in resources}


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    return {"median": rounded(statistics.median(values), 2), "max": rounded(max(values), 2)}


def _max_in_flight(spans: Iterable[Span]) -> int:
    edges = sorted(p for s in spans for p in ((s.start, 1), (s.end, -1)))  # an end sorts before a start at a tie
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def critical_path(
    spans: Mapping[str, Span], dependencies: Mapping[str, Sequence[str]], *, reverse: bool = False
) -> dict[str, Any] | None:
    """The chain of objects that ended last: from the last object to finish, back through the dependency that
    finished last, to one that waited for none. ``working``: the chain's own steps; ``waiting``: the gaps between
    a dependency's end and the next step's start (the program registering it, the engine's queue); ``head``: the
    seconds before the chain's first step. ``reverse``: a destroy, where a resource goes after its dependents."""
    objects = {urn: span for urn, span in spans.items() if span.custom}
    if not objects:
        return None
    waits: dict[str, list[str]] = {urn: [d for d in dependencies.get(urn, ()) if d in objects] for urn in objects}
    if reverse:
        dependents: dict[str, list[str]] = {urn: [] for urn in objects}
        for urn, deps in waits.items():
            for dep in deps:
                dependents[dep].append(urn)
        waits = dependents
    chain = [max(objects, key=lambda urn: objects[urn].end)]
    while waits[chain[-1]]:
        chain.append(max(waits[chain[-1]], key=lambda urn: objects[urn].end))
    chain.reverse()
    links = [
        {
            "kind": objects[urn].kind,
            "name": urn.rsplit("::", 1)[-1],
            "start": rounded(objects[urn].start, 2),
            "seconds": rounded(objects[urn].seconds, 2),
            "waited": rounded(objects[urn].start - objects[before].end, 2) if before is not None else None,
        }
        for before, urn in zip([None, *chain[:-1]], chain, strict=True)
    ]
    return {
        "head": rounded(objects[chain[0]].start, 2),
        "working": rounded(sum(objects[urn].seconds for urn in chain), 2),
        "waiting": rounded(sum(objects[b].start - objects[a].end for a, b in pairwise(chain)), 2),
        "end": rounded(objects[chain[-1]].end, 2),
        "links": links,
    }


def profile(
    events: Sequence[Stamped],
    seconds: float,
    dependencies: Mapping[str, Sequence[str]] | None = None,
    *,
    reverse: bool = False,
) -> dict[str, Any]:
    """Where a pulumi run of ``seconds`` went, from its stamped events.

    ``phases`` add up to ``seconds``: ``startup`` (CLI, backend, language host and program up to the first resource
    step: for ``up`` the stack's), ``before_objects`` (the provider's start and configuration, the program's first
    registrations), ``objects`` (the first object's step start to the last's end), ``after_objects`` (the
    components' and the stack's outputs), ``exit`` (the final checkpoint, the plugins' shutdown). ``kinds``: per
    kind of resource, the count, its steps' seconds and, for objects that wait for others, ``waited``: from the
    last of those ending to its own step's start. ``max_in_flight``: most object steps at once (``--parallel``
    caps it). ``critical_path``: :func:`critical_path`, with ``dependencies`` (URN: URNs) from the state.
    """
    spans = resource_spans(events)
    if not spans:
        return {"seconds": rounded(seconds, 2), "events": len(events)}
    objects = [span for span in spans.values() if span.custom] or list(spans.values())
    first = min(span.start for span in spans.values())
    last = max(span.end for span in spans.values())
    objects_start = min(span.start for span in objects)
    objects_end = max(span.end for span in objects)
    phases = {
        "startup": first,
        "before_objects": objects_start - first,
        "objects": objects_end - objects_start,
        "after_objects": last - objects_end,
        "exit": seconds - last,
    }
    deps = dependencies or {}
    durations: dict[str, list[float]] = {}
    waited: dict[str, list[float]] = {}
    for urn, span in spans.items():
        durations.setdefault(span.kind, []).append(span.seconds)
        ready = [spans[d].end for d in deps.get(urn, ()) if d in spans and spans[d].custom]
        if span.custom and ready and not reverse:
            waited.setdefault(span.kind, []).append(span.start - max(ready))
    kinds: dict[str, Any] = {}
    for kind, values in sorted(durations.items()):
        kinds[kind] = {"count": len(values), **_summary(values)}
        if kind in waited:
            kinds[kind]["waited"] = _summary(waited[kind])
    return {
        "seconds": rounded(seconds, 2),
        "phases": {name: rounded(value, 2) for name, value in phases.items()},
        "kinds": kinds,
        "max_in_flight": _max_in_flight(span for span in spans.values() if span.custom),
        "critical_path": critical_path(spans, deps, reverse=reverse) if dependencies is not None else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# Running the CLI with its event log


def _pulumi_events(project: Path, *args: str, timeout: float = 900) -> tuple[float, list[Stamped]]:
    """``pulumi *args`` as :func:`bench.preview._pulumi` runs it, plus ``--event-log`` on a FIFO this process reads
    as the events come. Returns the seconds until the CLI exited and its events, stamped with their arrival."""
    env = {**_env(project), "PULUMI_DEBUG_COMMANDS": "true"}  # --event-log is one of the debugging flags
    lines: list[tuple[float, str]] = []
    pending = bytearray()
    with (
        tempfile.TemporaryDirectory(prefix="model-serving-bench-events-") as tmp,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
        selectors.DefaultSelector() as selector,
    ):
        fifo = Path(tmp) / "events"
        os.mkfifo(fifo)
        # Read-write and non-blocking: opening does not wait for the CLI, and reads never see an end of file.
        reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)

        def drain(now: float) -> None:
            while True:
                try:
                    chunk = os.read(reader, 1 << 16)
                except BlockingIOError:
                    return
                if not chunk:
                    return
                pending.extend(chunk)
                *complete, rest = bytes(pending).split(b"\n")
                lines.extend((now, line.decode()) for line in complete if line.strip())
                pending[:] = rest

        exited: int | None = None
        try:
            start = time.perf_counter()
            process = subprocess.Popen(
                ["pulumi", *args, "--event-log", str(fifo)],
                cwd=project,
                env=env,
                stdout=stdout,
                stderr=stderr,
                preexec_fn=_default_sigint,  # as _pulumi: the CLI would wait 5 s for plugins that ignore SIGINT
            )
            # Readable once the CLI exits: the loop wakes then rather than at its next 50 ms poll.
            exited = os.pidfd_open(process.pid) if hasattr(os, "pidfd_open") else None
            selector.register(reader, selectors.EVENT_READ)
            if exited is not None:
                selector.register(exited, selectors.EVENT_READ)
            while process.poll() is None:
                if time.perf_counter() - start > timeout:
                    process.kill()
                    process.wait()
                    raise RuntimeError(f"pulumi {' '.join(args)} in {project} took over {timeout:.0f}s")
                for _ in selector.select(timeout=0.05):
                    drain(time.perf_counter() - start)
            seconds = time.perf_counter() - start
            drain(seconds)
        finally:
            if exited is not None:
                os.close(exited)
            os.close(reader)
        if process.returncode != 0:
            stdout.seek(0)
            stderr.seek(0)
            raise RuntimeError(
                f"pulumi {' '.join(args)} in {project} failed ({process.returncode}):\n"
                f"{stdout.read()[-3000:].decode(errors='replace')}\n{stderr.read()[-3000:].decode(errors='replace')}"
            )
    return seconds, stamped_events(lines)


def _median_run(profiles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The profile of the run with the median seconds (the lower median of an even count)."""
    ranked = sorted(profiles, key=lambda p: p["seconds"])
    return ranked[(len(ranked) - 1) // 2]


def _dependencies(project: Path) -> dict[str, list[str]]:
    exported = _pulumi(project, "stack", "export", "--stack", STACK).stdout
    return state_dependencies(json.loads(exported))


def _kubectl_up(manifests: Path) -> None:
    namespaces = sorted(manifests.rglob("*namespace*.yaml"))
    _kubectl("apply", "--server-side", *(arg for f in namespaces for arg in ("-f", str(f))))
    _kubectl("apply", "--server-side", "-R", "-f", str(manifests))
    _kubectl("wait", "--for=condition=Available", "deployment", "-A", "-l", SELECTOR, "--timeout=600s")
    # Available holds from the start for a Deployment whose maxUnavailable covers its replicas (the models'
    # default): wait, as Pulumi does, for every rollout to finish with all its pods ready.
    listed = _kubectl("get", "deployment", "-A", "-l", SELECTOR, "-o", "json").stdout
    for item in json.loads(listed)["items"]:
        meta = item["metadata"]
        _kubectl("rollout", "status", "deployment", meta["name"], "-n", meta["namespace"], "--timeout=600s")


def _kubectl_down(manifests: Path) -> None:
    _kubectl("delete", "-R", "-f", str(manifests), "--wait=true", "--ignore-not-found", "--timeout=600s")


def _leftovers() -> list[str]:
    names = _kubectl("get", "namespaces", "-o", "json").stdout
    return [ns["metadata"]["name"] for ns in json.loads(names)["items"] if ns["metadata"]["name"].startswith("bench-")]


def run(repeats: int = 2) -> dict[str, Any]:
    if not cluster_running():
        return {"skipped": "the local cluster is not running (make cluster-up)"}
    if _leftovers():
        return {"skipped": f"namespaces of an earlier run are still there: {', '.join(_leftovers())}"}
    out: dict[str, Any] = {"repeats": repeats, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="model-serving-bench-cluster-") as tmp:
        project = _copy(Path(tmp) / "project", None, stacks=(STACK, RENDER_STACK))
        (project / ".cluster").symlink_to(ROOT / ".cluster")
        for n in SIZES:
            render = Path(tmp) / f"rendered-{n}"
            _write_stack(project, RENDER_STACK, stack_values(n, render))
            progress(f"cluster: rendering {n} model(s) for kubectl")
            _pulumi(project, "up", "--stack", RENDER_STACK, "--yes", "--skip-preview", "--non-interactive")
            _write_stack(project, STACK, stack_values(n))
            manifests = render / "1-manifest"
            times: dict[str, list[float]] = {
                "pulumi_up": [],
                "pulumi_destroy": [],
                "kubectl_up": [],
                "kubectl_down": [],
            }
            profiles: dict[str, list[dict[str, Any]]] = {"up": [], "destroy": []}
            for repeat in range(repeats):
                order = ("pulumi", "kubectl") if repeat % 2 == 0 else ("kubectl", "pulumi")
                for tool in order:
                    if tool == "pulumi":
                        flags = ("--stack", STACK, "--yes", "--skip-preview", "--non-interactive", "--parallel")
                        seconds, events = _pulumi_events(project, "up", *flags, str(PARALLEL))
                        times["pulumi_up"].append(seconds)
                        dependencies = _dependencies(project)
                        profiles["up"].append(profile(events, seconds, dependencies))
                        seconds, events = _pulumi_events(project, "destroy", *flags, str(PARALLEL))
                        times["pulumi_destroy"].append(seconds)
                        profiles["destroy"].append(profile(events, seconds, dependencies, reverse=True))
                    else:
                        times["kubectl_up"].append(_timed(_kubectl_up, manifests))
                        times["kubectl_down"].append(_timed(_kubectl_down, manifests))
                    left = _leftovers()
                    if left:
                        raise RuntimeError(f"{tool} left namespaces behind: {', '.join(left)}")
                progress(
                    f"cluster: {n} model(s), repeat {repeat + 1}/{repeats}: "
                    + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items())
                )
            up_ratio = median([p / k for p, k in zip(times["pulumi_up"], times["kubectl_up"], strict=True)])
            down_ratio = median([p / k for p, k in zip(times["pulumi_destroy"], times["kubectl_down"], strict=True)])
            out["sizes"][str(n)] = {
                "up_ratio": rounded(up_ratio),
                "destroy_ratio": rounded(down_ratio),
                "seconds": {k: rounded(median(v), 2) for k, v in times.items()},
                "objects": len(list(manifests.rglob("*.yaml"))),
                "parallel": PARALLEL,
                # The run whose seconds are the median's (the lower of two): its figures belong together.
                "profile": {op: _median_run(runs) for op, runs in profiles.items()},
            }
    largest = out["sizes"][str(SIZES[-1])]
    out["up_ratio_kubectl"] = largest["up_ratio"]
    out["destroy_ratio_kubectl"] = largest["destroy_ratio"]
    return out
