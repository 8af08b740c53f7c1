"""Dynamic batching: the inputs of concurrent requests share forward passes.

Requests hand their tokenized inputs to a :class:`Batcher` and wait for their
own rows. The batcher runs on the event loop; forward passes run in a bounded
worker pool (one pass per worker at a time), so the loop stays free for
probes and metrics while the CPU is saturated.

When a worker is free, the pending inputs are taken oldest first into a batch
of at most ``token_budget`` tokens, and that batch is embedded sorted by
length (the encoder packs sequences without padding; equally long ones share
their attention products). With ``wait_seconds`` > 0 the batcher holds the
oldest pending input up to that long for company, unless a full batch is
already waiting; while every worker is busy, inputs gather anyway. With
several idle workers, pending work is shared among them (at least
``MIN_SPLIT_TOKENS`` each), so one large request uses the idle cores.

A batch that fails is retried request by request, so an error fails only the
request whose inputs cause it, never another request batched with it.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

EmbedFn = Callable[[list[list[int]]], np.ndarray]
# Below this many tokens per forward pass, splitting pending work across idle workers costs more
# (small matrix products run far below the CPU's peak) than running it on one.
MIN_SPLIT_TOKENS = 256


@dataclass(eq=False)
class _Job:
    """One request: its inputs' rows are filled in as their batches finish."""

    count: int
    future: asyncio.Future[np.ndarray]
    out: np.ndarray | None = None
    remaining: int = 0

    def deliver(self, index: int, vector: np.ndarray) -> None:
        if self.future.done():
            return
        if self.out is None:
            self.out = np.empty((self.count, vector.shape[0]), dtype=np.float32)
        self.out[index] = vector
        self.remaining -= 1
        if self.remaining == 0:
            self.future.set_result(self.out)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass(eq=False)
class _Item:
    job: _Job
    index: int
    ids: list[int]
    arrived: float


@dataclass
class BatchStats:
    """What the batcher has done (for tests and the benchmark)."""

    batches: int = 0
    inputs: int = 0
    tokens: int = 0
    largest_inputs: int = 0
    retried: int = 0


class Batcher:
    def __init__(
        self,
        embed: EmbedFn,
        executor: Executor,
        *,
        workers: int,
        wait_seconds: float,
        token_budget: int,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._embed = embed
        self._executor = executor
        self.workers = workers
        self.wait_seconds = max(0.0, wait_seconds)
        self.token_budget = token_budget
        self._on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._pending_tokens = 0
        self._idle = workers
        self._wakeup = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.stats = BatchStats()

    # ---- public ----------------------------------------------------------
    def start(self) -> None:
        if self._scheduler is None:
            self._scheduler = asyncio.get_running_loop().create_task(self._schedule(), name="batcher")

    async def close(self) -> None:
        """Stop scheduling; pending requests fail with CancelledError."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
            self._scheduler = None
        while self._pending:
            self._pending.popleft().job.future.cancel()
        self._pending_tokens = 0

    async def embed(self, token_ids: list[list[int]]) -> np.ndarray:
        """Embeddings (len(token_ids), dimension) of one request's tokenized inputs."""
        if not token_ids:
            raise ValueError("nothing to embed")
        if self._scheduler is None or self._scheduler.done():
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        job = _Job(len(token_ids), loop.create_future(), remaining=len(token_ids))
        now = loop.time()
        for index, ids in enumerate(token_ids):
            self._pending.append(_Item(job, index, ids, now))
            self._pending_tokens += len(ids)
        self._wakeup.set()
        return await job.future

    @property
    def pending_inputs(self) -> int:
        return len(self._pending)

    def waiting_requests(self) -> int:
        """Requests with inputs still queued for a forward pass (the queue depth autoscaling can use)."""
        return len({id(item.job) for item in self._pending if not item.job.future.done()})

    # ---- scheduling ------------------------------------------------------
    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_abandoned()
            if not self._pending or self._idle == 0:
                await self._sleep(None)
                continue
            if self.wait_seconds > 0 and self._pending_tokens < self.token_budget:
                delay = self._pending[0].arrived + self.wait_seconds - loop.time()
                if delay > 0:
                    await self._sleep(delay)
                    continue
            batch = self._take(self._batch_tokens())
            self._idle -= 1
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _sleep(self, timeout: float | None) -> None:
        """Until something changes (an input arrives, a worker frees up) or ``timeout`` passes."""
        self._wakeup.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    def _drop_abandoned(self) -> None:
        """Inputs of requests that already failed or were cancelled are not worth a forward pass."""
        if any(item.job.future.done() for item in self._pending):
            keep = [item for item in self._pending if not item.job.future.done()]
            self._pending = deque(keep)
            self._pending_tokens = sum(len(item.ids) for item in keep)

    def _batch_tokens(self) -> int:
        """Tokens for the next batch: the budget, or a fair share of the pending work per idle worker."""
        if self._idle <= 1:
            return self.token_budget
        share = math.ceil(self._pending_tokens / self._idle)
        return min(self.token_budget, max(share, MIN_SPLIT_TOKENS))

    def _take(self, tokens: int) -> list[_Item]:
        batch: list[_Item] = []
        used = 0
        while self._pending:
            size = len(self._pending[0].ids)
            if batch and used + size > tokens:
                break
            batch.append(self._pending.popleft())
            used += size
        self._pending_tokens -= used
        batch.sort(key=lambda item: len(item.ids))
        return batch

    # ---- running ---------------------------------------------------------
    async def _run(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            try:
                vectors = await loop.run_in_executor(self._executor, self._embed, [item.ids for item in batch])
            except Exception as exc:
                await self._retry_per_request(batch, exc)
            else:
                for item, vector in zip(batch, vectors, strict=True):
                    item.job.deliver(item.index, vector)
            tokens = sum(len(item.ids) for item in batch)
            self.stats.batches += 1
            self.stats.inputs += len(batch)
            self.stats.tokens += tokens
            self.stats.largest_inputs = max(self.stats.largest_inputs, len(batch))
            if self._on_batch is not None:
                self._on_batch(len(batch), tokens, loop.time() - started)
        finally:
            self._idle += 1
            self._wakeup.set()

    async def _retry_per_request(self, batch: list[_Item], exc: Exception) -> None:
        """The batch failed: run each request's inputs on their own; only failing requests fail."""
        loop = asyncio.get_running_loop()
        jobs: dict[_Job, list[_Item]] = {}
        for item in batch:
            jobs.setdefault(item.job, []).append(item)
        if len(jobs) == 1:
            next(iter(jobs)).fail(exc)
            return
        self.stats.retried += 1
        for job, items in jobs.items():
            if job.future.done():
                continue
            try:
                vectors = await loop.run_in_executor(self._executor, self._embed, [item.ids for item in items])
            except Exception as own:
                job.fail(own)
            else:
                for item, vector in zip(items, vectors, strict=True):
                    job.deliver(item.index, vector)
