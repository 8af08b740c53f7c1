"""cluster-assets (scripts/cluster/go/assets, built by scripts/install-k8s): the CRDs the local cluster installs hold
every custom object the stacks register, and Prometheus' own PromQL parser reads every query the program writes the
way the policy pack does."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from model_serving_policy.promql import metric_names

from tests.harness import ROOT, STACKS, run_stack
from tests.kube_checks import promql_queries
from tests.project import require
from tests.unit.mocking import stack_values

ASSETS = ROOT / ".tools" / "bin" / "cluster-assets"

# Stack variants whose objects differ from the shipped stacks': scale to zero woken by each gateway, an external
# metric with a selector (quotes escaped in its label value).
VARIANTS = [
    ("prod", {"models[0].autoscaling.minReplicas": 0, "models[0].autoscaling.wake": "istio"}),
    ("prod", {"models[0].autoscaling.minReplicas": 0, "models[0].autoscaling.wake": "ingress-nginx"}),
    (
        "prod",
        {
            "models[0].autoscaling.metric": {
                "type": "external",
                "name": "vllm:num_requests_running",
                "targetValue": "20",
                "selector": {"model_name": 'meta-llama/"8b"'},
            }
        },
    ),
]


@pytest.fixture(scope="module")
def assets() -> str:
    require(ASSETS.exists(), "cluster-assets is missing: run scripts/install-k8s (make test does)")
    return str(ASSETS)


def _objects() -> Iterator[dict[str, Any]]:
    for stack in STACKS:
        yield from (r.inputs for r in run_stack(stack).kubernetes_objects())
    for stack, edits in VARIANTS:
        yield from (r.inputs for r in run_stack(stack, config=stack_values(stack, edits)).kubernetes_objects())


@cache
def _all_objects() -> tuple[dict[str, Any], ...]:
    return tuple(_objects())


# --- CRDs ------------------------------------------------------------------------------------------------------


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD's schema as the API server applies it with strict field validation: unknown fields are errors."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


@pytest.fixture(scope="module")
def crds(assets: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the served version's openAPIV3Schema."""
    out = subprocess.run([assets, "crds"], capture_output=True, text=True, check=True).stdout
    schemas = {}
    for crd in yaml.safe_load_all(out):
        if not crd:
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_the_crds_include_keda_and_prometheus_operator(crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert {
        ("karpenter.sh/v1", "NodePool"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    } <= set(crds)


def test_every_custom_object_of_every_stack_validates_against_its_crd(
    crds: dict[tuple[str, str], dict[str, Any]],
) -> None:
    seen = set()
    for obj in _all_objects():
        key = (obj["apiVersion"], obj["kind"])
        if "." not in obj["apiVersion"].split("/")[0] or obj["apiVersion"].endswith(".k8s.io/v1"):
            continue  # a built-in kind: tests/unit validates it against the OpenAPI schema
        assert key in crds, f"no CRD for {key}"
        body = {k: v for k, v in obj.items() if v is not None}
        errors = sorted(Draft202012Validator(_strict(crds[key])).iter_errors(body), key=str)
        assert not errors, f"{key} {obj['metadata']['name']}: " + "; ".join(
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )
        seen.add(key)
    assert {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "PrometheusRule")} <= seen


# --- PromQL --------------------------------------------------------------------------------------------------------


def _parse(assets: str, queries: list[str]) -> tuple[int, list[dict[str, Any]]]:
    result = subprocess.run([assets, "promql"], input="\n".join(queries) + "\n", capture_output=True, text=True)
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def test_every_query_the_program_writes_parses_with_prometheus_parser(assets: str) -> None:
    queries = sorted(set(promql_queries(_all_objects())))
    assert len(queries) > 20
    assert all("\n" not in q for q in queries)  # one a line, as cluster-assets reads them
    code, results = _parse(assets, queries)
    errors = [r for r in results if "error" in r]
    assert code == 0 and not errors, errors
    assert [r["query"] for r in results] == queries
    # The policy pack's PromQL reading names exactly the metrics Prometheus' parser finds.
    for r in results:
        assert metric_names(r["query"]) == r.get("metrics", []), r


def test_the_parser_refuses_what_prometheus_would(assets: str) -> None:
    code, results = _parse(assets, ['sum(vllm:num_requests_waiting{namespace="a"}', "up"])
    assert code == 1
    assert "error" in results[0] and results[1] == {"query": "up", "metrics": ["up"]}
