"""The programs the benchmark compares under mocks, and the N-model stack config they run with."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.harness import PROJECT, ROOT, stack_config

COMPONENT_PROGRAM = ROOT / "__main__.py"
RAW_PROGRAM = Path(__file__).resolve().parent / "raw_program.py"
BARE_PROGRAM = Path(__file__).resolve().parent / "bare_program.py"
PROGRAMS = {"component": COMPONENT_PROGRAM, "raw": RAW_PROGRAM, "bare": BARE_PROGRAM}

# A digest-pinned prebuilt reference: no docker.Image (and no docker plugin) in either program.
PREBUILT = "registry.example.com/model-serving/server:1.0.0@sha256:" + "c" * 64
BASE_STACK = "prod"


def models_config(n: int) -> dict[str, Any]:
    """``prod``'s config with ``n`` models: its model entries in turn, renamed ``<name>-<i>``.

    The GPU budget is raised to 16 GPUs per model, above any model's peak demand (so it validates
    at any N), and every image is :data:`PREBUILT` through ``imageRefOverride``.
    """
    values = copy.deepcopy(stack_config(BASE_STACK))
    templates = values[f"{PROJECT}:models"]
    models = []
    for i in range(n):
        model = copy.deepcopy(templates[i % len(templates)])
        model["name"] = f"{model['name']}-{i:03d}"
        models.append(model)
    values[f"{PROJECT}:models"] = models
    pool = values[f"{PROJECT}:gpuPool"]
    pool["gpuBudget"] = max(int(pool.get("gpuBudget", 1)), 16 * n)
    values[f"{PROJECT}:imageRefOverride"] = PREBUILT
    return values
