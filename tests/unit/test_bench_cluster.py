"""The cluster benchmark's stack: N copies of the e2e stack's embeddings model that the config accepts."""

from __future__ import annotations

from pathlib import Path

from bench import cluster
from components.config import parse_stack_config
from tests.harness import PROJECT


def test_the_benchmark_stack_is_n_valid_models_in_namespaces_of_their_own() -> None:
    values = cluster.stack_values(20, Path("/tmp/rendered"))
    stack = parse_stack_config({k.removeprefix(f"{PROJECT}:"): v for k, v in values.items()})
    assert [m.name for m in stack.models] == [f"m{i:02d}" for i in range(20)]
    assert {m.namespace for m in stack.models} == {f"bench-m{i:02d}" for i in range(20)}
    assert all(m.service.type == "ClusterIP" and m.routing.mode == "service" for m in stack.models)
    assert all(m.autoscaling is not None and m.resources.gpus == 0 for m in stack.models)
    # Rendering names no cluster (the provider refuses a kubeconfig with renderYamlToDirectory); applying does.
    assert stack.render_directory == "/tmp/rendered" and stack.kubeconfig is None and stack.kube_context is None
    applied = parse_stack_config({k.removeprefix(f"{PROJECT}:"): v for k, v in cluster.stack_values(1).items()})
    assert applied.render_directory is None and applied.kubeconfig == ".cluster/kubeconfig"
