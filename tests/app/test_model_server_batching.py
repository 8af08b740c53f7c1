"""Dynamic batching, in process: the packed encoder and the Batcher (no HTTP)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from model_server import bert
from model_server.batching import MIN_SPLIT_TOKENS, Batcher
from model_server.bert import SentenceEmbedder

T = TypeVar("T")
ONE_TOKEN_WORDS = (
    "the cat dog house tree car blue red green water fire light time day night man river stone bread music"
)
WORDS = ONE_TOKEN_WORDS.split()  # each is one token: a text of n words has n + 2


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> SentenceEmbedder:
    return SentenceEmbedder.from_dir(model_dir)


def mixed_texts(count: int, seed: int, longest: int = 200) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, longest))) for _ in range(count)]


def run_with_batcher(
    embed: Callable[[list[list[int]]], np.ndarray],
    body: Callable[[Batcher], Awaitable[T]],
    *,
    workers: int = 1,
    wait_seconds: float = 0.0,
    token_budget: int = 4096,
) -> tuple[T, Batcher]:
    async def main() -> tuple[T, Batcher]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            batcher = Batcher(embed, pool, workers=workers, wait_seconds=wait_seconds, token_budget=token_budget)
            batcher.start()
            try:
                return await body(batcher), batcher
            finally:
                await batcher.close()

    return asyncio.run(main())


# ---- the encoder: a text's embedding does not depend on its batch -------------------------------------------------
def test_alone_and_in_a_mixed_batch_agree(embedder: SentenceEmbedder) -> None:
    # Lengths from 3 to 202 tokens, duplicates (attention groups), more than one row chunk and one forward pass.
    texts = [*mixed_texts(60, seed=1), "same length text", "same length word", "same length text"]
    ids = embedder.tokenize(texts)
    assert sum(len(i) for i in ids) > max(embedder.token_budget, bert.ROW_CHUNK)
    batched = embedder.embed_ids(ids)
    alone = np.stack([embedder.embed_ids([one])[0] for one in ids])
    assert np.abs(batched - alone).max() <= 1e-6
    small_budget = SentenceEmbedder(embedder.encoder, embedder.tokenizer, max_seq_length=256, token_budget=300)
    assert np.abs(small_budget.embed_ids(ids) - alone).max() <= 1e-6


def test_attention_handles_rows_far_below_the_peak(embedder: SentenceEmbedder) -> None:
    encoder = embedder.encoder
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    k = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    v = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    q[1, 2, 0] *= 400.0  # one row's scores dwarf the others': a shift by the sequence's peak would underflow them
    q[1, 2, 1] *= -400.0
    scores = (q.astype(np.float64) @ k.astype(np.float64)).astype(np.float64)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    want = (probs / probs.sum(axis=-1, keepdims=True)) @ v
    got = encoder._attention(q, k, v)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=2e-5)


# ---- the Batcher -----------------------------------------------------------------------------------------------------
def test_concurrent_requests_get_their_own_rows(embedder: SentenceEmbedder) -> None:
    requests = [embedder.tokenize(mixed_texts(n, seed=10 + n, longest=60)) for n in (1, 5, 2, 9, 3)]

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return list(await asyncio.gather(*(batcher.embed(ids) for ids in requests)))

    results, batcher = run_with_batcher(embedder.embed_ids, body, wait_seconds=0.05)
    for ids, got in zip(requests, results, strict=True):
        alone = np.stack([embedder.embed_ids([one])[0] for one in ids])
        assert got.shape == (len(ids), embedder.dimension)
        assert np.abs(got - alone).max() <= 1e-6
    # All five requests were pending before the worker took the first batch: one forward pass.
    assert batcher.stats.batches == 1
    assert batcher.stats.largest_inputs == sum(len(ids) for ids in requests)


def fake_embed(batches: list[list[list[int]]]) -> Callable[[list[list[int]]], np.ndarray]:
    """A stand-in encoder: row = (length, sum of ids); a negative id is an input it cannot embed."""

    def embed(batch: list[list[int]]) -> np.ndarray:
        batches.append(batch)
        if any(t < 0 for ids in batch for t in ids):
            raise ValueError("cannot embed a negative token id")
        return np.array([[len(ids), sum(ids)] for ids in batch], dtype=np.float32)

    return embed


def test_a_failing_input_fails_only_its_own_request() -> None:
    batches: list[list[list[int]]] = []
    good_a, bad, good_b = [[1, 2], [3]], [[4, 5], [-1, 6]], [[7, 8, 9]]

    async def body(batcher: Batcher) -> list[np.ndarray | BaseException]:
        return list(await asyncio.gather(*(batcher.embed(r) for r in (good_a, bad, good_b)), return_exceptions=True))

    (a, b, c), batcher = run_with_batcher(fake_embed(batches), body, wait_seconds=0.05)
    assert isinstance(b, ValueError)
    assert isinstance(a, np.ndarray) and a.tolist() == [[2, 3], [1, 3]]
    assert isinstance(c, np.ndarray) and c.tolist() == [[3, 24]]
    # One shared batch failed; then each request ran on its own and only the bad one failed again.
    assert len(batches[0]) == 5
    assert batcher.stats.retried == 1


def test_batches_respect_the_token_budget() -> None:
    batches: list[list[list[int]]] = []
    rng = random.Random(3)
    requests = [[[1] * rng.randint(1, 40) for _ in range(rng.randint(1, 6))] for _ in range(20)]

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return list(await asyncio.gather(*(batcher.embed(r) for r in requests)))

    results, _ = run_with_batcher(fake_embed(batches), body, token_budget=64)
    for request, got in zip(requests, results, strict=True):
        assert got[:, 0].tolist() == [len(ids) for ids in request]
    assert all(sum(len(ids) for ids in batch) <= 64 for batch in batches)
    assert all([len(ids) for ids in batch] == sorted(len(ids) for ids in batch) for batch in batches)
    assert len(batches) < sum(len(r) for r in requests)


def test_a_full_batch_does_not_wait() -> None:
    batches: list[list[list[int]]] = []

    async def body(batcher: Batcher) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batcher.embed([[1] * 30]))
        await asyncio.sleep(0.01)
        await asyncio.gather(first, batcher.embed([[2] * 34]))  # 64 tokens pending: the budget
        return loop.time() - started

    took, _ = run_with_batcher(fake_embed(batches), body, wait_seconds=60.0, token_budget=64)
    assert took < 30  # not the 60 s wait
    assert [len(b) for b in batches] == [2]


def test_idle_workers_share_a_large_request() -> None:
    batches: list[list[list[int]]] = []
    request = [[1] * 100 for _ in range(2 * MIN_SPLIT_TOKENS // 100 + 2)]

    async def body(batcher: Batcher) -> np.ndarray:
        return await batcher.embed(request)

    got, _ = run_with_batcher(fake_embed(batches), body, workers=2, token_budget=4096)
    assert got.shape == (len(request), 2)
    assert len(batches) == 2
    assert all(sum(len(ids) for ids in batch) >= MIN_SPLIT_TOKENS for batch in batches)


def test_a_cancelled_request_costs_no_forward_pass() -> None:
    batches: list[list[list[int]]] = []

    async def body(batcher: Batcher) -> np.ndarray:
        doomed = asyncio.ensure_future(batcher.embed([[5, 5, 5]]))
        await asyncio.sleep(0)
        doomed.cancel()
        return await batcher.embed([[1, 2]])

    got, _ = run_with_batcher(fake_embed(batches), body, wait_seconds=0.05)
    assert got.tolist() == [[2, 3]]
    assert batches == [[[1, 2]]]


def test_waiting_requests_counts_queued_requests() -> None:
    batches: list[list[list[int]]] = []

    async def body(batcher: Batcher) -> tuple[int, int]:
        requests = [asyncio.ensure_future(batcher.embed([[i], [i, i]])) for i in range(1, 4)]
        await asyncio.sleep(0)  # the requests have queued their inputs; no forward pass has started
        queued = batcher.waiting_requests()
        await asyncio.gather(*requests)
        return queued, batcher.waiting_requests()

    (queued, after), _ = run_with_batcher(fake_embed(batches), body)
    assert (queued, after) == (3, 0)
