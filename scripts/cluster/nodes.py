"""The local cluster's nodes, as a YAML stream for ``kubectl apply``: fake (kwok) GPU and CPU nodes; with
``--real-node-gpus N``, what makes the real node a GPU node of the same pool instead (see :func:`real_node_gpus`).

GPU nodes are made from a stack's own ``gpuPool`` through the program's config reader and scheduling builder, so
they carry exactly the labels the models select and the taint they tolerate, and advertise the pool's GPU
resource. Their GPUs add up to the pool's ``gpuBudget``: a stack that fits its budget schedules, one that needs
more cannot. CPU nodes (no taint) take the CPU-only models.

Usage: python scripts/cluster/nodes.py [--stack e2e] [--gpus-per-node 2] [--cpu-nodes 2] [--real-node-gpus N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from components.config import parse_stack_config, stack_file_config  # noqa: E402
from components.specs import gpu_scheduling  # noqa: E402

KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}  # kwok manages nodes carrying it (local-cluster's selector)


def node(name: str, labels: dict[str, str], capacity: dict[str, str], taints: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": dict(KWOK_ANNOTATION),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **labels,
            },
        },
        "spec": {"taints": taints},
        "status": {"allocatable": dict(capacity), "capacity": dict(capacity)},
    }


def stack_nodes(stack: str, gpus_per_node: int, cpu_nodes: int) -> list[dict[str, Any]]:
    """GPU nodes adding up to the stack's gpuBudget, then ``cpu_nodes`` CPU nodes."""
    raw = stack_file_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    config = parse_stack_config(raw, has_hub_token=True, has_registry_password=True)
    pool = config.gpu_pool
    if pool.gpu_budget is None:
        raise SystemExit(f"stacks/Pulumi.{stack}.yaml: model-serving:gpuPool.gpuBudget is needed to size the GPU nodes")
    gpus_per_node = pool.gpus_per_node or gpus_per_node  # the pool's own node shape, when it says
    scheduling = gpu_scheduling(pool)
    taint = {"key": pool.taint.key, "value": pool.taint.value, "effect": pool.taint.effect}
    nodes = []
    remaining, index = pool.gpu_budget, 0
    while remaining > 0:
        gpus = min(gpus_per_node, remaining)
        capacity = {
            "cpu": "48",
            "memory": "384Gi",
            "ephemeral-storage": "1Ti",
            "pods": "110",
            scheduling.gpu_resource_name: str(gpus),
        }
        labels = {**scheduling.node_selector, "nvidia.com/gpu.count": str(gpus)}
        nodes.append(node(f"{pool.name}-{index}", labels, capacity, [taint]))
        remaining -= gpus
        index += 1
    cpu = {"cpu": "16", "memory": "64Gi", "ephemeral-storage": "200Gi", "pods": "110"}
    nodes += [node(f"cpu-{i}", {}, cpu, []) for i in range(cpu_nodes)]
    return nodes


def real_node_gpus(stack: str, gpus: int) -> tuple[dict[str, str], dict[str, Any]]:
    """The labels and the status patch that make the real node hold ``gpus`` GPUs of the stack's pool: the pool's
    node labels and its GPU resource as an extended resource (the documented node status patch; nothing in a
    container pretends to be a GPU). The pool's taint is left off: the real node's own taint keeps every pod that
    does not choose it away, GPU pods of the fake nodes included."""
    raw = stack_file_config(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    scheduling = gpu_scheduling(parse_stack_config(raw, has_hub_token=True, has_registry_password=True).gpu_pool)
    labels = {**scheduling.node_selector, "nvidia.com/gpu.count": str(gpus)}
    return labels, {"status": {"capacity": {scheduling.gpu_resource_name: str(gpus)}}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="e2e", help="stack whose gpuPool the GPU nodes follow (default: e2e)")
    parser.add_argument(
        "--gpus-per-node", type=int, default=2, help="GPUs per GPU node unless gpuPool.gpusPerNode says (default: 2)"
    )
    parser.add_argument("--cpu-nodes", type=int, default=2, help="CPU-only nodes (default: 2)")
    parser.add_argument(
        "--real-node-gpus",
        type=int,
        help="print the real node's labels (key=value, one line) and its status patch (JSON, the next line)",
    )
    args = parser.parse_args(argv)
    if args.real_node_gpus is not None:
        labels, patch = real_node_gpus(args.stack, args.real_node_gpus)
        print(" ".join(f"{k}={v}" for k, v in labels.items()))
        print(json.dumps(patch))
        return
    yaml.safe_dump_all(stack_nodes(args.stack, args.gpus_per_node, args.cpu_nodes), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
