"""The local cluster's fake nodes follow the e2e stack's GPU pool: the GPUs add up to its budget."""

from __future__ import annotations

import pytest

from tests.harness import ROOT, load_script
from tests.unit.mocking import typed

nodes = load_script("cluster_nodes", ROOT / "scripts" / "cluster" / "nodes.py")


@pytest.mark.parametrize("per_node", [1, 2, 3])
def test_gpu_nodes_add_up_to_the_budget_and_carry_the_pool_labels_and_taint(per_node: int) -> None:
    pool = typed("e2e").gpu_pool
    budget = pool.gpu_budget
    assert budget is not None
    per_node = pool.gpus_per_node or per_node  # the stack's node shape wins over the default
    made = nodes.stack_nodes("e2e", per_node, 2)
    gpu = [n for n in made if "nvidia.com/gpu" in n["status"]["allocatable"]]
    cpu = [n for n in made if n not in gpu]
    assert sum(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in gpu) == budget
    assert max(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in gpu) == min(per_node, budget)
    for n in gpu:
        assert n["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
        assert n["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert len(cpu) == 2 and all(n["spec"]["taints"] == [] for n in cpu)
    for n in made:
        assert n["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert len({n["metadata"]["name"] for n in made}) == len(made)


def test_a_stack_without_a_budget_cannot_size_gpu_nodes() -> None:
    with pytest.raises(SystemExit, match="gpuBudget"):
        nodes.stack_nodes("local", 2, 2)
