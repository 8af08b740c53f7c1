"""The whole program, under mocks, for every stack file: graph, schema, names, key fields."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.harness import STACKS, Run, run_stack
from tests.kube_checks import check_name, manifest, validate_object

COMPONENT_TOKENS = {
    "model-serving:index:GpuNodePool",
    "model-serving:index:ModelService",
    "model-serving:index:ModelImage",
    "model-serving:index:ModelDeployment",
    "model-serving:index:LoadBalancedService",
    "model-serving:index:Autoscaler",
}


@pytest.fixture(scope="module", params=STACKS)
def run(request: pytest.FixtureRequest) -> Run:
    return run_stack(request.param)


def test_every_stack_file_is_covered() -> None:
    assert set(STACKS) >= {"local", "dev", "prod"}


def test_every_kubernetes_object_validates_against_the_1_31_schema(run: Run) -> None:
    objects = run.kubernetes_objects()
    assert objects
    for resource in objects:
        validate_object(manifest(resource.inputs))


def test_logical_names_are_dns_names(run: Run) -> None:
    for resource in run.resources:
        check_name("Service", resource.name)  # auto-naming would turn these into object names


def test_object_names_equal_logical_names(run: Run) -> None:
    for resource in run.kubernetes_objects():
        assert resource.inputs["metadata"]["name"] == resource.name


def test_every_object_is_parented_by_a_component(run: Run) -> None:
    by_urn = {r.urn: r for r in run.resources}
    for resource in run.kubernetes_objects():
        assert by_urn[resource.parent].type in COMPONENT_TOKENS, resource.urn
    assert {r.type for r in run.resources if not r.custom} <= COMPONENT_TOKENS


def test_every_container_states_its_user_and_a_read_only_root(run: Run) -> None:
    """Every container of every workload says who it runs as, itself; only the device plugin is root."""
    for resource in run.kubernetes_objects():
        if resource.kind not in ("Deployment", "DaemonSet"):
            continue
        for container in resource.inputs["spec"]["template"]["spec"]["containers"]:
            context = container["securityContext"]
            assert "runAsUser" in context and "runAsGroup" in context, resource.urn
            assert context["readOnlyRootFilesystem"] is True, resource.urn
            if context["runAsUser"] < 10000:
                assert resource.name == "nvidia-device-plugin", resource.urn


def test_no_object_lands_in_the_default_namespace(run: Run) -> None:
    cluster_scoped = {"Namespace", "RuntimeClass", "NodePool"}
    for resource in run.kubernetes_objects():
        if resource.kind not in cluster_scoped:
            assert resource.inputs["metadata"].get("namespace") not in (None, "default"), resource.urn


def test_urns_are_unique(run: Run) -> None:
    assert len({r.urn for r in run.resources}) == len(run.resources)


def _kinds(run: Run) -> Counter[str]:
    return Counter(r.kind for r in run.kubernetes_objects())


def test_local_stack_graph() -> None:
    run = run_stack("local")
    assert _kinds(run) == {
        "Namespace": 2,
        "RuntimeClass": 1,
        "ConfigMap": 1,
        "DaemonSet": 1,
        "ServiceAccount": 1,
        "Deployment": 1,
        "Service": 1,
        "NetworkPolicy": 2,  # the model's, and the device plugin namespace's default deny
    }
    provider = run.one("pulumi:providers:kubernetes", "kubernetes")
    assert provider.inputs["renderYamlToDirectory"] == "rendered/local"
    assert run.outputs["minilm_namespace"] == "local-minilm"
    assert run.outputs["minilm_image_ref"] == "registry.example.com/model-serving/server:0.1.0"
    assert not run.of_type("docker:index/image:Image")


def test_dev_stack_builds_the_app_image_and_autoscales_one_to_two() -> None:
    run = run_stack("dev")
    image = run.one("docker:index/image:Image", "minilm")
    assert image.inputs["build"]["context"] == "app"
    hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "minilm")
    assert (hpa.inputs["spec"]["minReplicas"], hpa.inputs["spec"]["maxReplicas"]) == (1, 2)
    assert "replicas" not in run.one("kubernetes:apps/v1:Deployment", "minilm").inputs["spec"]
    assert run.of_type("kubernetes:policy/v1:PodDisruptionBudget")


def test_prod_stack_graph() -> None:
    run = run_stack("prod")
    kinds = _kinds(run)
    assert kinds["Deployment"] == 2
    assert kinds["HorizontalPodAutoscaler"] == 2
    assert kinds["PodDisruptionBudget"] == 2
    assert kinds["NodePool"] == 1
    node_pool = run.one("kubernetes:karpenter.sh/v1:NodePool", "gpu")
    assert node_pool.inputs["spec"]["limits"] == {"nvidia.com/gpu": "8"}
    for name in ("llama-3-1-8b", "embeddings"):
        hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", name)
        assert hpa.inputs["spec"]["minReplicas"] >= 2
        assert hpa.inputs["spec"]["metrics"][0]["type"] == "Pods"
        svc = run.one("kubernetes:core/v1:Service", name)
        assert svc.inputs["spec"]["type"] == "LoadBalancer"
        assert svc.inputs["spec"]["loadBalancerSourceRanges"]
        assert "@sha256:" in run.outputs[f"{name}_image_ref"]
    llama = run.one("kubernetes:apps/v1:Deployment", "llama-3-1-8b")
    args = llama.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "1"
    assert args[args.index("--max-model-len") + 1] == "8192"


def test_namespaced_objects_wait_for_their_namespace(run: Run) -> None:
    """Pulumi does not pass a component's depends_on to its children: the components do it."""
    namespaces = {r.name: r.urn for r in run.of_type("kubernetes:core/v1:Namespace")}
    for resource in run.kubernetes_objects():
        namespace = resource.inputs["metadata"].get("namespace")
        if namespace is not None:
            assert namespaces[namespace] in resource.dependencies, resource.urn


def test_the_autoscaler_waits_for_its_deployment() -> None:
    run = run_stack("prod")
    for hpa in run.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"):
        # Depending on the ModelDeployment component expands to its children, the Deployment among them.
        assert run.one("kubernetes:apps/v1:Deployment", hpa.name).urn in hpa.dependencies
