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
# Advisories a stack accepts knowingly, with the reason.
ACCEPTED = {
    # dev scales its single GPU model on CPU: no metrics adapter on a dev cluster.
    "dev": {"hpa-gpu-scaling-signal"},
}


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
    """The harness is live: a container patch that drops the memory limit is caught."""
    from tests.harness import stack_config

    config = stack_config("local")
    config["model-serving:models"][0]["containerPatch"] = {"resources": {"limits": {"memory": None}}}
    found = findings("local", run_stack("local", config=config))
    assert any(v.policy_name == "container-resource-limits" and v.blocking for v in found), found
