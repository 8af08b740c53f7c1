"""What rules observe during one run of the pack, shared between policies.

The engine gives each policy only its own config and, in stack policies, only resource
*outputs*. Two facts therefore travel between policies inside the analyzer process
(one process serves one preview/update; resource analysis of every resource happens
before stack analysis; ``Analyze`` calls may run on several threads, hence the lock):

* Exemptions in use. Every rule keeps its own ``exemptions`` list (the engine passes
  a policy nothing else) and records each exemption it applies here; the advisory stack
  policy ``exempted-resources``, last in the pack, reports and clears them.
* Whether a scalable workload's *inputs* set ``spec.replicas``. Stack policies see
  outputs, where the API server has filled in ``spec.replicas`` once the object exists,
  so ``hpa-target`` uses what the resource policies saw in the inputs.
* Which resources the program registers. Stack analysis after a refresh (``up --refresh``)
  also lists resources the update is about to delete; the resource policies saw only the
  registered ones, so a stack rule can tell the two apart (:func:`about_to_go`).

:func:`model_serving_policy.evaluate` resets this state before each run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ExemptionUse:
    policy: str
    urn: str
    resource: str
    reason: str


_lock = threading.Lock()
_exemptions: dict[tuple[str, str], ExemptionUse] = {}
_replicas_in_inputs: dict[str, bool] = {}
_registered: set[str] = set()


def record_exemption(use: ExemptionUse) -> None:
    with _lock:
        _exemptions[(use.policy, use.urn)] = use


def drain_exemptions() -> list[ExemptionUse]:
    """The exemptions used since the last drain, in a stable order; clears them."""
    with _lock:
        uses = sorted(_exemptions.values(), key=lambda u: (u.urn, u.policy))
        _exemptions.clear()
    return uses


def record_replicas_in_inputs(urn: str, present: bool) -> None:
    with _lock:
        _replicas_in_inputs[urn] = present


def replicas_in_inputs(urn: str) -> bool | None:
    """Whether the inputs of ``urn`` set ``spec.replicas``; ``None`` if never seen."""
    with _lock:
        return _replicas_in_inputs.get(urn)


def record_registered(urn: str) -> None:
    with _lock:
        _registered.add(urn)


def about_to_go(urn: str) -> bool:
    """Whether ``urn`` is in the stack but not registered by the program in this run (the update deletes it);
    False when no resource was analysed in this run (a stack policy called on its own)."""
    with _lock:
        return bool(_registered) and urn not in _registered


def reset() -> None:
    with _lock:
        _exemptions.clear()
        _replicas_in_inputs.clear()
        _registered.clear()
