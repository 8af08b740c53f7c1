"""The GPUs a pool may hold, handed out to the models placed on it.

``gpuPool.gpuBudget`` is a guarantee about the whole pool, not about one stack file: every workload that lands
on the pool counts, however it was composed (one stack config, several ``ModelService``s built from the Python
package, or the component provider serving YAML and TypeScript stacks). ``GpuNodePool`` owns one
:class:`GpuCapacity`; it travels beside the pool's scheduling contract as a :class:`PoolScheduling`, and each
``ModelService`` reserves its peak from it before registering anything, so the model that would exceed the budget
stops the program with a message naming it, the pool and the budget.

The ledger is the only state of the library; the builders (:mod:`components.specs`) never see it. Pure Python: no
Pulumi, no Kubernetes.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from components.config import ModelConfig
from components.specs import GpuScheduling


class GpuBudgetError(ValueError):
    """A model does not fit the GPUs its pool has left."""


def describe_peak(model: ModelConfig) -> str:
    pods = f"maxReplicas {model.max_replicas} + maxSurge {model.rollout.max_surge}"
    if model.canary is not None:
        pods += f" + canary {model.canary.replicas} + its maxSurge {model.rollout.max_surge}"
    return f"({pods}) × {model.resources.gpus} GPU{'s' if model.resources.gpus != 1 else ''}"


@dataclass(frozen=True)
class Reservation:
    model: str
    gpus: int


class GpuCapacity:
    """The ledger of one pool: its budget (None: unlimited) and the peak GPUs each model reserved."""

    def __init__(self, pool: str, budget: int | None = None) -> None:
        self.pool = pool
        self.budget = budget
        self._reservations: list[Reservation] = []
        self._lock = threading.Lock()

    @property
    def reservations(self) -> tuple[Reservation, ...]:
        return tuple(self._reservations)

    @property
    def reserved(self) -> int:
        return sum(r.gpus for r in self._reservations)

    def reserve(self, model: ModelConfig) -> None:
        """Reserve ``model``'s peak GPUs, or raise :class:`GpuBudgetError` naming the model, pool and budget."""
        gpus = model.peak_gpus  # the config's own definition, which its stack-wide budget rule uses too
        with self._lock:
            if self.budget is not None and self.reserved + gpus > self.budget:
                raise GpuBudgetError(self._exceeded(model.name, gpus, describe_peak(model)))
            self._reservations.append(Reservation(model.name, gpus))

    def limit(self, budget: int | None) -> None:
        """Set the pool's budget after models may already have reserved (the component provider's order is free).

        A pool has one budget: a second, different one is an error, as is a budget the reservations exceed.
        """
        if budget is None:
            return
        with self._lock:
            if self.budget is not None and self.budget != budget:
                raise GpuBudgetError(
                    f"GPU pool {self.pool!r} has gpuBudget {self.budget}, but another gpuPool block for it says "
                    f"{budget}: give every component of the pool the same gpuPool"
                )
            if self.reserved > budget:
                held = ", ".join(f"{r.model!r} {r.gpus}" for r in self._reservations)
                raise GpuBudgetError(
                    f"GPU pool {self.pool!r}: the models placed on it may run {self.reserved} GPUs at peak "
                    f"({held}), more than its gpuBudget {budget}"
                )
            self.budget = budget

    def _exceeded(self, model: str, gpus: int, peak: str) -> str:
        held = ", ".join(f"{r.model!r} {r.gpus}" for r in self._reservations) or "none"
        return (
            f"model {model!r} does not fit GPU pool {self.pool!r}: it may run {gpus} GPUs at peak ({peak}), "
            f"the models already placed on the pool reserve {self.reserved} ({held}), and gpuPool.gpuBudget "
            f"is {self.budget}; raise the budget or lower maxReplicas, maxSurge or GPUs per replica"
        )


@dataclass(frozen=True, eq=False)
class PoolScheduling(GpuScheduling):
    """A pool's scheduling contract with the ledger its models reserve GPUs from (``GpuNodePool.scheduling``).

    The ledger is no part of its value: it equals the bare contract, and ``wire()`` exports the contract alone.
    """

    capacity: GpuCapacity = field(compare=False, repr=False, kw_only=True)

    @classmethod
    def of(cls, scheduling: GpuScheduling, capacity: GpuCapacity) -> PoolScheduling:
        return cls(**contract_fields(scheduling), capacity=capacity)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GpuScheduling):
            return NotImplemented
        return contract_fields(self) == contract_fields(other)

    __hash__ = GpuScheduling.__hash__


def contract_fields(scheduling: GpuScheduling) -> dict[str, Any]:
    return {f.name: getattr(scheduling, f.name) for f in dataclasses.fields(GpuScheduling)}


def reserve(model: ModelConfig, scheduling: GpuScheduling) -> GpuScheduling:
    """Reserve the model's peak GPUs from the pool behind ``scheduling`` (when it is a pool's): raises
    :class:`GpuBudgetError` when the budget would be exceeded. Returns the bare contract."""
    if not isinstance(scheduling, PoolScheduling):
        return scheduling
    scheduling.capacity.reserve(model)
    return GpuScheduling(**contract_fields(scheduling))
