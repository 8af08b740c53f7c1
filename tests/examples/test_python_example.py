"""examples/python: another stack builds ModelService and GpuNodePool from the library, under mocks."""

from __future__ import annotations

import pytest

from tests.examples.mock_program import run_program
from tests.harness import ROOT, Run
from tests.kube_checks import manifest, validate_object

EXAMPLE = ROOT / "examples" / "python"
PROJECT = "model-serving-python-example"
SERVICE = "model-serving:index:ModelService"


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program(EXAMPLE / "__main__.py", project=PROJECT)


def test_example_is_a_project_of_its_own() -> None:
    text = (EXAMPLE / "Pulumi.yaml").read_text()
    assert f"name: {PROJECT}" in text
    requirements = (EXAMPLE / "requirements.txt").read_text().splitlines()
    assert "../.." in requirements, "installs the component package (the repository root) like any dependency"


def test_one_model_service_per_model_on_one_pool(run: Run) -> None:
    assert sorted(r.name for r in run.of_type(SERVICE)) == ["embeddings", "reranker"]
    assert [r.name for r in run.of_type("model-serving:index:GpuNodePool")] == ["gpu"]
    assert set(run.outputs["endpoints"]) == {"embeddings", "reranker"}
    assert run.outputs["gpu_budget"] == 4


def test_every_object_is_valid_and_lives_in_the_models_namespace(run: Run) -> None:
    objects = run.kubernetes_objects()
    assert objects
    for obj in objects:
        validate_object(manifest(obj.inputs))
    deployments = {r.name: r.inputs for r in run.of_type("kubernetes:apps/v1:Deployment")}
    assert {d["metadata"]["namespace"] for d in deployments.values()} == {"search-embeddings", "search-reranker"}


def test_pods_ask_for_the_gpu_and_land_on_the_pool(run: Run) -> None:
    deployment = run.one("kubernetes:apps/v1:Deployment", "reranker").inputs
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.com/mirror/vllm-openai:v0.11.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["runtimeClassName"] == "nvidia"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_renders_to_a_directory_by_default(run: Run) -> None:
    provider = run.one("pulumi:providers:kubernetes", "kubernetes").inputs
    assert provider["renderYamlToDirectory"] == "rendered"


def test_config_overrides_reach_the_components() -> None:
    run = run_program(
        EXAMPLE / "__main__.py",
        project=PROJECT,
        config={"image": "registry.example.com/team/server:2.0.0", "gpuBudget": "8"},
    )
    images = {
        r.inputs["spec"]["template"]["spec"]["containers"][0]["image"]
        for r in run.of_type("kubernetes:apps/v1:Deployment")
    }
    assert images == {"registry.example.com/team/server:2.0.0", "registry.example.com/mirror/vllm-openai:v0.11.0"}
    assert run.outputs["gpu_budget"] == 8


def test_a_config_mistake_stops_the_program_naming_the_key() -> None:
    with pytest.raises(Exception, match=r"gpuPool.gpuBudget is too small"):
        run_program(EXAMPLE / "__main__.py", project=PROJECT, config={"gpuBudget": "1"})
