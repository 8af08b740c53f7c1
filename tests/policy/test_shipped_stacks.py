"""Every shipped stack, run under mocks, goes through the whole pack with zero violations.

New stack files are picked up automatically (``STACKS`` globs ``stacks/``); their policy config is
``policy/config/<stack>.json`` when present, the pack's defaults otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from model_serving_policy.evaluate import ResourceRecord, Violation, evaluate

from tests.harness import ROOT, STACKS, Run, run_stack

# Advisories that are reports, not findings: the exemptions each config file declares.
REPORTS = {"exempted-resources"}
# Advisories a stack accepts knowingly, with the reason. (None: dev's model, which scales on CPU, runs on the
# CPU-only server engine and so uses no GPU that hpa-gpu-scaling-signal would ask a better signal for.)
ACCEPTED: dict[str, set[str]] = {}


def policy_config(stack: str) -> dict[str, Any] | None:
    path = ROOT / "policy" / "config" / f"{stack}.json"
    return json.loads(path.read_text()) if path.exists() else None


def records(run: Run) -> list[ResourceRecord]:
    return [
        ResourceRecord(resource_type=r.type, name=r.name, urn=r.urn, props=r.inputs, parent=r.parent or None)
        for r in run.resources
    ]


def findings(stack: str, run: Run) -> list[Violation]:
    found = evaluate(records(run), policy_config(stack))
    return [v for v in found if v.policy_name not in REPORTS | ACCEPTED.get(stack, set())]


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_has_zero_violations(stack: str) -> None:
    found = findings(stack, run_stack(stack))
    assert found == [], "\n".join(f"{v.policy_name}: {v.message} ({v.urn})" for v in found)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_has_a_policy_config(stack: str) -> None:
    assert (Path(ROOT) / "policy" / "config" / f"{stack}.json").exists()


def test_the_pack_sees_a_bad_patch_in_a_shipped_stack() -> None:
    """The harness is live: a container patch that lifts the memory limit far above the request is caught.

    (A patch that removes the limit never gets this far: the config refuses it.)"""
    from tests.harness import stack_config

    config = stack_config("local")
    config["model-serving:models"][0]["containerPatch"] = {"resources": {"limits": {"memory": "64Gi"}}}
    found = findings("local", run_stack("local", config=config))
    assert any(v.policy_name == "container-limit-request-ratio" and v.blocking for v in found), found


def test_models_placed_on_nodes_of_their_own_pass_the_pack() -> None:
    """A GPU model's nodeSelector and tolerations join the pool's (gpu-scheduling still sees the GPU taint
    tolerated and GPU nodes selected); the local stack's CPU model tolerates only its own node's taint."""
    from tests.harness import stack_config

    config = stack_config("prod")
    config["model-serving:models"][0] |= {
        "nodeSelector": {"topology.kubernetes.io/zone": "eu-west-1a"},
        "tolerations": [{"key": "dedicated", "value": "inference", "effect": "NoSchedule"}],
    }
    assert findings("prod", run_stack("prod", config=config)) == []


def test_mig_passes_the_pack_through_the_device_plugins_declared_exemption() -> None:
    """MIG gives the device plugin SYS_ADMIN (as NVIDIA's chart does): the pod-security exemption the settings of a
    stack running the plugin declare covers it, and names the capability; without the exemption the pack blocks it."""
    from tests.harness import stack_config

    config = stack_config("prod")
    config["model-serving:gpuPool"]["devicePlugin"] = {"migStrategy": "mixed"}
    run = run_stack("prod", config=config)
    assert findings("prod", run) == []
    for stack in STACKS:  # the stacks whose pool runs the plugin: the others' settings exempt nothing
        exemptions = (policy_config(stack) or {}).get("pod-security", {}).get("exemptions", [])
        plugin = [e for e in exemptions if e.get("name") == "nvidia-device-plugin"]
        assert bool(plugin) == (stack in ("prod", "e2e")), stack
        assert all("SYS_ADMIN" in e["reason"] for e in plugin), stack
    unexempted = policy_config("prod") or {}
    unexempted["pod-security"] = {k: v for k, v in unexempted["pod-security"].items() if k != "exemptions"}
    blocked = [v for v in evaluate(records(run), unexempted) if v.policy_name == "pod-security" and v.blocking]
    assert any("SYS_ADMIN" in v.message for v in blocked), blocked
