"""What fails must fail early and clearly: a model no node can hold, and a stack over its GPU budget."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from tests.e2e.conftest import Kube, new_stack
from tests.project import Project


def _only_llama(project: Project, stack: str, **changes: Any) -> list[dict[str, Any]]:
    """The e2e stack's config under another stack name, with only its 8B model, changed as given: served by its
    Service, its cache an emptyDir, without the canary and the Gateway (the e2e stack's own, which another stack
    must not take over)."""
    source = {k: v for k, v in project.config("e2e").items() if k != "gateway"}
    llama = copy.deepcopy(next(m for m in source["models"] if m["name"] == "llama"))
    for routed in ("routing", "canary"):
        llama.pop(routed, None)
    llama["service"] = {"type": "LoadBalancer", "port": 80, "sourceRanges": ["127.0.0.0/8"]}
    llama["modelCache"] = {"type": "emptyDir", "size": "40Gi"}  # no prestage Job: the rollout is the subject
    llama.update(changes)
    config = {**source, "namespace": stack, "models": [llama], "gateway": None}
    project.stack_file(stack).write_text(project.stack_file("e2e").read_text())
    project.edit_config(stack, config)
    return [llama]


def test_unschedulable_model_fails_in_bounded_time_naming_the_reason(e2e_project: Project, kube: Kube) -> None:
    # 4 GPUs per pod: within the budget, but every node has 2, so the scheduler can never place it.
    _only_llama(
        e2e_project,
        "unschedulable",
        resources={"cpu": "8", "ephemeralStorage": "50Gi", "gpus": 4},
        autoscaling={"minReplicas": 1, "maxReplicas": 1},
        rollout={"progressDeadlineSeconds": 30},
    )
    # Without gpusPerNode, which would split a 4-GPU replica over two nodes (a LeaderWorkerSet) rather than ask
    # for a node the cluster lacks.
    pool = {k: v for k, v in e2e_project.config("e2e")["gpuPool"].items() if k != "gpusPerNode"}
    # Without the pool's DaemonSets (their exemptions are the e2e policy config's, not this stack's).
    daemons = {"devicePlugin": {"enabled": False}, "dcgmExporter": {"enabled": False}}
    e2e_project.edit_config("unschedulable", {"gpuPool": {**pool, **daemons}})
    stack = new_stack(e2e_project, "unschedulable", secrets={"hubToken": "hf_unschedulable"})
    started = time.monotonic()
    result = stack.make("up", check=False, timeout=600)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < 300, f"up took {elapsed:.0f}s to fail"
    # Pulumi names the Deployment that timed out; the Makefile's explain_rollout.py adds the scheduler's reason.
    assert "ProgressDeadlineExceeded" in output, output
    reason = re.search(r"Deployment unschedulable-llama/llama: pod llama-\S+: Unschedulable: (.*)", output)
    assert reason is not None, output
    assert "Insufficient nvidia.com/gpu" in reason.group(1), output
    stack.make("destroy")


def test_over_budget_config_is_stopped_by_the_policy_pack_before_anything_is_applied(
    e2e_project: Project, kube: Kube
) -> None:
    # The config reader refuses an over-budget stack itself; a container patch raising the GPU count
    # gets past it, and the policy pack must stop the update before the cluster sees a single object.
    gpus = {"nvidia.com/gpu": "3"}
    _only_llama(e2e_project, "overbudget", containerPatch={"resources": {"limits": gpus, "requests": gpus}})
    stack = new_stack(e2e_project, "overbudget", secrets={"hubToken": "hf_overbudget"})
    result = stack.make("up", check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"\[mandatory\].*gpu-budget", output), output
    assert not kube.exists("namespace", "overbudget-llama")
    assert not stack.export()["deployment"].get("resources")
