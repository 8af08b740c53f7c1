"""The GPUs a pool may hold, handed out to the models placed on it.

``gpuPool.gpuBudget`` is a guarantee about the whole pool, not about one stack file: every workload that lands
on the pool counts, however it was composed (one stack config, several ``ModelService``s built from the Python
package, or the component provider serving YAML and TypeScript stacks). ``GpuNodePool`` owns one
:class:`GpuCapacity`; it travels with the pool's :class:`~components.specs.GpuScheduling`, and each
``ModelDeployment`` reserves its peak from it before registering anything, so the model that would exceed the
budget stops the program with a message naming it, the pool and the budget.

Pure Python: no Pulumi, no Kubernetes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from components.config import ModelConfig


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
