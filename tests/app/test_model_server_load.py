"""The server under concurrent load: batching across requests, probes while saturated, drain under load."""

from __future__ import annotations

import base64
import random
import signal
import threading
import time
from typing import Any

import numpy as np
from server_harness import ServerProcess
from smoke_client import Response, get, metric, metric_or_zero, parse_metrics, port_refuses, post

ONE_TOKEN_WORDS = (
    "the cat dog house tree car blue red green water fire light time day night man river stone bread music"
)
WORDS = ONE_TOKEN_WORDS.split()


def long_texts(count: int, seed: int, words: int = 240) -> list[str]:
    """Texts of ``words`` + 2 tokens (each word is one token), under the model's 256-token limit."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(count)]


def vectors(resp: Response) -> np.ndarray:
    assert resp.status == 200, resp.body[:300]
    data = sorted(resp.json()["data"], key=lambda d: d["index"])
    return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data])


def embed(url: str, texts: list[str], **kw: Any) -> Response:
    return post(url, "/v1/embeddings", {"input": texts, "encoding_format": "base64"}, **kw)


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn(*args)
        except Exception as exc:  # reported by the test
            result["error"] = repr(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def samples(url: str) -> dict[str, float]:
    return parse_metrics(get(url, "/metrics").body.decode())


def wait_for(url: str, name: str, at_least: float, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric_or_zero(samples(url), name) >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} never reached {at_least}")


def test_concurrent_requests_are_batched_and_get_their_own_results(start_server: Any) -> None:
    server: ServerProcess = start_server(INFERENCE_CONCURRENCY="1", BATCH_WAIT_MS="5")
    server.wait_ready()
    url = server.url
    small = [[f"request {i} text {j} " + " ".join(WORDS[: i + j + 1])] for i in range(8) for j in range(2)]
    smalls = [small[2 * i] + small[2 * i + 1] for i in range(8)]
    alone = [vectors(embed(url, texts)) for texts in smalls]
    before = samples(url)

    # A long request keeps the only worker busy for seconds; the small ones queue up behind it meanwhile.
    blocker_thread, blocker = in_thread(embed, url, long_texts(48, seed=1))
    # Once its first forward pass is done, two more (seconds) are still to go.
    wait_for(url, "model_server_batch_tokens_count", metric_or_zero(before, "model_server_batch_tokens_count") + 1)
    started = [in_thread(embed, url, texts) for texts in smalls]
    bad_thread, bad = in_thread(embed, url, ["fine", " ".join(["word"] * 300)])
    for thread, _ in started:
        thread.join(120)
    bad_thread.join(120)
    blocker_thread.join(120)

    assert "error" not in blocker, blocker
    assert vectors(blocker["value"]).shape == (48, 384)
    for (_, result), want in zip(started, alone, strict=True):
        assert "error" not in result, result
        got = vectors(result["value"])
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-6
    # The oversized input fails its own request only.
    assert bad["value"].status == 400
    assert bad["value"].json()["error"]["code"] == "context_length_exceeded"

    after = samples(url)
    batches = metric(after, "model_server_batch_inputs_count") - metric(before, "model_server_batch_inputs_count")
    inputs = metric(after, "model_server_batch_inputs_sum") - metric(before, "model_server_batch_inputs_sum")
    assert inputs == 48 + 16
    # 48 long inputs fill 3-4 forward passes of TOKEN_BUDGET; the eight small requests share one or two.
    assert batches <= 6 < 1 + len(smalls)


def test_probes_answer_fast_while_the_cpu_is_saturated(start_server: Any) -> None:
    server: ServerProcess = start_server(INFERENCE_CONCURRENCY="2")
    server.wait_ready()
    url = server.url
    stop = threading.Event()
    done: list[int] = []

    def load(seed: int) -> None:
        texts = long_texts(16, seed)  # about 3,900 tokens: one forward pass of TOKEN_BUDGET
        while not stop.is_set():
            done.append(embed(url, texts).status)

    loaders = [threading.Thread(target=load, args=(seed,), daemon=True) for seed in range(4)]
    for thread in loaders:
        thread.start()
    try:
        wait_for(url, "model_server_batch_tokens_count", 1)
        busy_before = metric(samples(url), "model_server_batch_duration_seconds_sum")
        polls: list[float] = []
        window = 4.0
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            started = time.perf_counter()
            resp = get(url, "/healthz", timeout=5)
            polls.append(time.perf_counter() - started)
            assert resp.status == 200
            started = time.perf_counter()
            assert get(url, "/metrics", timeout=5).status == 200
            polls.append(time.perf_counter() - started)
            time.sleep(0.05)
        busy = metric(samples(url), "model_server_batch_duration_seconds_sum") - busy_before
    finally:
        stop.set()
        for thread in loaders:
            thread.join(120)
    # The load really was on: 4 clients keep both workers' queue full (forward-pass seconds ~ 2 x the window).
    assert busy >= window, f"forward passes ran {busy:.1f}s in {window:.0f}s"
    assert done and set(done) == {200}
    print(f"{len(polls)} probes/scrapes: median {np.median(polls) * 1000:.1f} ms, slowest {max(polls) * 1000:.1f} ms")
    assert max(polls) < 0.1, f"slowest probe/scrape {max(polls) * 1000:.0f} ms of {len(polls)}"


def test_sigterm_under_load_finishes_every_request_then_exits_0(start_server: Any) -> None:
    server: ServerProcess = start_server(INFERENCE_CONCURRENCY="2", DRAIN_SECONDS="60")
    server.wait_ready()
    url = server.url
    clients = [in_thread(embed, url, long_texts(12, seed)) for seed in range(6)]
    deadline = time.monotonic() + 30
    while metric(samples(url), "model_server_requests_in_flight") < 1 + len(clients):
        assert time.monotonic() < deadline, "the requests never were all in flight"
        time.sleep(0.02)
    sent = time.monotonic()
    server.signal(signal.SIGTERM)

    deadline = time.monotonic() + 3
    while not port_refuses(url) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert port_refuses(url), "new connections still accepted after SIGTERM"
    for thread, result in clients:
        thread.join(120)
        assert "error" not in result, result
        assert vectors(result["value"]).shape == (12, 384)
    assert server.wait_exit(60) == 0
    assert time.monotonic() - sent < 60
    out = server.output()
    assert "drained; exiting" in out
    assert "Traceback" not in out
