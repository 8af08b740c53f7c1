"""Part ``llm``: the local stack's language model (Gemma 3 270M on llama.cpp) through the cluster's LoadBalancer,
against the same ``llama-server`` binary run bare on the host with the same model, flags and CPU quota.

On the running local cluster (``make cluster-up``): a throwaway project copy deploys the local stack's ``gemma``
alone (namespace ``bench-llm``) from the image the cluster imported; the bare server is that image's own binary,
libraries and GGUF, read from the node's containerd (``ctr images mount``) and started with the pod's arguments
under a CPU quota equal to the pod's limit (a cgroup of its own). Both are measured in turns with the same
prompts: streamed chat completions of ``MAX_TOKENS`` tokens each (``ignore_eos``: every answer is as long), at 1
and 4 concurrent streams; generation tokens/s over the wall time, and the time to first token's p50 and p99.

``llm_lb_overhead`` is the bare server's tokens/s over the cluster's at 4 streams (1.0: no cost; the goal is at
most 1.10). Everything started here is stopped and removed, the stack destroyed.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bench.cluster import cluster_running
from bench.preview import _copy, _pulumi
from bench.util import progress, rounded
from components import specs
from components.config import parse_stack_config
from tests.harness import PROJECT, ROOT, stack_config

STACK = "bench-llm"
MODEL = "gemma"
MAX_TOKENS = 48
STREAMS = (1, 4)
REQUESTS_PER_STREAM = 3
ROUNDS = 2
PROMPTS = (
    "Write a short note about the sea.",
    "List three uses of a paperclip.",
    "Describe a quiet morning in a small town.",
    "Explain what a load balancer does.",
)
IMAGE = "docker.io/model-serving/llamacpp:local"
PORT = int(os.environ.get("CLUSTER_PORT", "16443"))
CONTAINERD = f"/run/model-serving-{PORT}/containerd.sock"
CGROUP = Path("/sys/fs/cgroup/cpu/model-serving-bench-llm")


def _stream(url: str, prompt: str) -> tuple[float, float, int]:
    """One streamed chat completion: (time to first token, seconds from the first token to the last, tokens)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "temperature": 0,
        "ignore_eos": True,
    }
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {response.read()[:300]!r}")
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
            if delta:
                now = time.perf_counter()
                first = first or now
                last = now
                tokens += 1
    finally:
        conn.close()
    if not tokens:
        raise RuntimeError(f"{url}: no token streamed")
    return first - start, last - first, tokens


def measure(url: str, streams: int) -> dict[str, float]:
    """``streams`` clients, ``REQUESTS_PER_STREAM`` requests each: tokens/s over the wall time, TTFT in ms."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(streams * REQUESTS_PER_STREAM)]
    start = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        results = list(pool.map(lambda p: _stream(url, p), prompts))
    wall = time.perf_counter() - start
    ttft = sorted(r[0] * 1000 for r in results)
    return {
        "tokens_per_s": sum(r[2] for r in results) / wall,
        "ttft_p50_ms": statistics.median(ttft),
        "ttft_p99_ms": ttft[min(len(ttft) - 1, round(0.99 * (len(ttft) - 1)))],
    }


def _wait_ready(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become ready in {timeout:.0f}s")


def _ctr(*args: str) -> None:
    subprocess.run(
        ["ctr", "--address", CONTAINERD, "--namespace", "k8s.io", *args], check=True, capture_output=True, timeout=120
    )


@contextmanager
def bare_server(args: Sequence[str], cpu_millis: int, port: int) -> Iterator[str]:
    """The image's llama-server on 127.0.0.1:``port``, run by the image's own loader and libraries, in a cgroup
    whose CPU quota is the pod's limit."""
    mount = Path(tempfile.mkdtemp(prefix="model-serving-bench-llm-"))
    _ctr("images", "mount", IMAGE, str(mount))
    CGROUP.mkdir(exist_ok=True)
    (CGROUP / "cpu.cfs_period_us").write_text("100000")
    (CGROUP / "cpu.cfs_quota_us").write_text(str(cpu_millis * 100))
    libs = ":".join(str(mount / d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/local/lib"))
    flags = list(args)
    flags[flags.index("--host") + 1] = "127.0.0.1"
    flags[flags.index("--port") + 1] = str(port)
    flags[flags.index("--model") + 1] = str(mount / flags[flags.index("--model") + 1].lstrip("/"))
    command = [
        str(mount / "lib64/ld-linux-x86-64.so.2"),
        "--library-path",
        libs,
        str(mount / "usr/local/bin/llama-server"),
    ]
    log = open(mount.parent / f"{mount.name}.log", "wb")  # noqa: SIM115  # closed below
    process = subprocess.Popen(
        [*command, *flags],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: (CGROUP / "tasks").write_text(str(os.getpid())),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)
        _ctr("images", "unmount", str(mount))
        mount.rmdir()
        CGROUP.rmdir()


def _gemma_values() -> dict[str, Any]:
    local = stack_config("local")
    model = next(m for m in local[f"{PROJECT}:models"] if m["name"] == MODEL)
    return {
        f"{PROJECT}:namespace": "bench",
        f"{PROJECT}:kubeconfig": ".cluster/kubeconfig",
        f"{PROJECT}:imageLock": ".cluster/images.json",
        f"{PROJECT}:models": [model],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run() -> dict[str, Any]:
    if not cluster_running():
        return {"skipped": "the local cluster is not running (make cluster-up)"}
    values = _gemma_values()
    model = parse_stack_config({k.split(":", 1)[1]: v for k, v in values.items()}).models[0]
    args, cpu = specs.container_args(model), model.resources.cpu
    cpu_millis = int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)
    runs: dict[str, dict[str, list[dict[str, float]]]] = {"cluster": {}, "bare": {}}
    with tempfile.TemporaryDirectory(prefix="model-serving-bench-llm-") as tmp:
        project = _copy(Path(tmp) / "project", None, stacks=())
        (project / ".cluster").symlink_to(ROOT / ".cluster")
        _pulumi(project, "stack", "init", STACK)
        path = project / "stacks" / f"Pulumi.{STACK}.yaml"
        document = yaml.safe_load(path.read_text()) if path.exists() else {}
        path.write_text(yaml.safe_dump({**(document or {}), "config": values}, sort_keys=False))
        progress(f"llm: deploying {MODEL} alone (stack {STACK}) to the local cluster")
        _pulumi(project, "up", "--stack", STACK, "--yes", "--skip-preview", "--non-interactive")
        try:
            endpoint = json.loads(_pulumi(project, "stack", "output", "--stack", STACK, "--json").stdout)[
                f"{MODEL}_endpoint"
            ]
            _wait_ready(endpoint)
            with bare_server(args, cpu_millis, _free_port()) as bare:
                for url in (endpoint, bare):  # warm-up: page in the GGUF, fill the prompt caches
                    measure(url, 1)
                for round_ in range(ROUNDS):
                    order = (("cluster", endpoint), ("bare", bare))
                    for where, url in order if round_ % 2 == 0 else tuple(reversed(order)):
                        for streams in STREAMS:
                            runs[where].setdefault(str(streams), []).append(measure(url, streams))
                    progress(f"llm: round {round_ + 1}/{ROUNDS} done")
        finally:
            _pulumi(project, "destroy", "--stack", STACK, "--yes", "--skip-preview", "--non-interactive")

    def best(samples: list[dict[str, float]]) -> dict[str, float | None]:
        # The fastest round of each: noise from the rest of the machine only ever slows a run down.
        top = max(samples, key=lambda r: r["tokens_per_s"])
        return {k: rounded(v, 2) for k, v in top.items()}

    out: dict[str, Any] = {
        "model": f"{model.model_id} ({MODEL} of the local stack), {MAX_TOKENS} tokens per answer",
        "cpu_limit": cpu,
        "args": args,
        **{where: {s: best(samples) for s, samples in per.items()} for where, per in runs.items()},
    }
    for streams in STREAMS:
        key = str(streams)
        out[f"ratio_{key}"] = rounded(out["bare"][key]["tokens_per_s"] / out["cluster"][key]["tokens_per_s"])
    out["llm_lb_overhead"] = out[f"ratio_{STREAMS[-1]}"]
    return out
