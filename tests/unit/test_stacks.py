"""The whole program, under mocks, for every stack file: graph, schema, names, key fields."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from components.aliases import FORMER_PARENTS
from components.config.policy_facts import KINDS
from tests.harness import ROOT, STACKS, TEST_IMAGE_LOCK, Registered, Run, run_stack
from tests.kube_checks import check_name, manifest, validate_object
from tests.unit.mocking import DELETE, model, stack_values, typed

# The components a stack registers: ModelService registers each model's objects itself (the components it nested
# until 0.1, components.aliases.FORMER_PARENTS, appear in no stack any more).
COMPONENT_TOKENS = {
    "model-serving:index:GpuNodePool",
    "model-serving:index:ModelService",
    "model-serving:index:InferenceGateway",
}


@pytest.fixture(scope="module", params=STACKS)
def run(request: pytest.FixtureRequest) -> Run:
    return run_stack(request.param)


def test_every_stack_file_is_covered() -> None:
    assert set(STACKS) >= {"local", "render", "dev", "prod"}


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
    assert not {r.type for r in run.resources} & set(FORMER_PARENTS.values())


def _pod_templates(resource: Registered) -> list[dict[str, Any]]:
    """The pod templates of a workload: a LeaderWorkerSet has two (leader and worker)."""
    spec = resource.inputs["spec"]
    if resource.kind == "LeaderWorkerSet":
        group = spec["leaderWorkerTemplate"]
        return [group["leaderTemplate"], group["workerTemplate"]]
    return [spec["template"]]


def test_every_container_states_its_user_and_a_read_only_root(run: Run) -> None:
    """Every container of every workload says who it runs as, itself; only the device plugin and the DCGM exporter
    are root."""
    for resource in run.kubernetes_objects():
        if resource.kind not in ("Deployment", "DaemonSet", "LeaderWorkerSet", "Job"):
            continue
        containers = [c for template in _pod_templates(resource) for c in template["spec"]["containers"]]
        for container in containers:
            context = container["securityContext"]
            assert "runAsUser" in context and "runAsGroup" in context, resource.urn
            assert context["readOnlyRootFilesystem"] is True, resource.urn
            if context["runAsUser"] < 10000:
                assert resource.name in ("nvidia-device-plugin", "dcgm-exporter"), resource.urn


def test_no_object_lands_in_the_default_namespace(run: Run) -> None:
    cluster_scoped = {k.kind for k in KINDS if not k.namespaced}
    for resource in run.kubernetes_objects():
        if resource.kind not in cluster_scoped:
            assert resource.inputs["metadata"].get("namespace") not in (None, "default"), resource.urn


def test_urns_are_unique(run: Run) -> None:
    assert len({r.urn for r in run.resources}) == len(run.resources)


def _kinds(run: Run) -> Counter[str]:
    return Counter(r.kind for r in run.kubernetes_objects())


def test_render_stack_graph() -> None:
    run = run_stack("render")
    assert _kinds(run) == {  # a CPU model: no GPU node pool
        "Namespace": 1,
        "ServiceAccount": 1,
        "Deployment": 1,
        "Service": 1,
        "NetworkPolicy": 1,
        # admission: the model's own PriorityClass, its namespace's quota and container defaults
        "PriorityClass": 1,
        "ResourceQuota": 1,
        "LimitRange": 1,
    }
    provider = run.one("pulumi:providers:kubernetes", "kubernetes")
    assert provider.inputs["renderYamlToDirectory"] == "rendered/render"
    assert "kubeconfig" not in provider.inputs
    assert run.outputs["minilm_namespace"] == "local-minilm"
    assert run.outputs["minilm_image_ref"] == "registry.example.com/model-serving/server:0.1.0"
    assert not run.of_type("docker:index/image:Image")


def test_local_stack_deploys_the_locked_image_to_the_local_clusters_node() -> None:
    """The local stack applies to the local cluster: its kubeconfig, the image pinned through the lock that
    `make cluster-up` writes (here the harness's TEST_IMAGE_LOCK), and pods placed on the cluster's real node."""
    run = run_stack("local")
    assert _kinds(run) == {  # two CPU models: no GPU node pool, whose objects are the e2e stack's on that cluster
        "Namespace": 2,
        "ServiceAccount": 2,
        "Deployment": 2,
        "PodDisruptionBudget": 2,  # up to 3 and 2 replicas
        "HorizontalPodAutoscaler": 1,  # minilm's on CPU; gemma's is KEDA's, on queue depth
        "ScaledObject": 1,
        "Service": 2,
        "NetworkPolicy": 2,
        # monitoring: the cluster's Prometheus selects these by the stack's monitoring.labels
        "ServiceMonitor": 2,
        "PrometheusRule": 2,
        "ConfigMap": 2,  # the dashboards
        "PriorityClass": 2,
        "ResourceQuota": 2,
        "LimitRange": 2,
    }
    provider = run.one("pulumi:providers:kubernetes", "kubernetes")
    assert "renderYamlToDirectory" not in provider.inputs
    assert provider.inputs["kubeconfig"] == str(ROOT / ".cluster" / "kubeconfig")
    pinned = TEST_IMAGE_LOCK["model-serving/server:local"]
    assert run.outputs["minilm_image_ref"] == pinned
    pod = run.one("kubernetes:apps/v1:Deployment", "minilm").inputs["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == pinned
    assert pod["nodeSelector"] == {"model-serving.dev/node": "local"}
    assert pod["tolerations"] == [
        {"key": "model-serving.dev/node", "operator": "Equal", "value": "local", "effect": "NoSchedule"}
    ]
    trigger = run.one("kubernetes:keda.sh/v1alpha1:ScaledObject", "gemma").inputs["spec"]["triggers"][0]
    assert trigger["metadata"]["serverAddress"] == "http://prometheus-operated.monitoring:9090"
    assert trigger["metadata"]["query"] == 'sum(llamacpp:requests_deferred{namespace="local-gemma",service="gemma"})'
    assert "runtimeClassName" not in pod  # a CPU model
    service = run.one("kubernetes:core/v1:Service", "minilm").inputs["spec"]
    assert (service["type"], service["loadBalancerSourceRanges"]) == ("LoadBalancer", ["127.0.0.0/8"])
    hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "minilm").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)


def test_local_stack_serves_gemma_on_llama_cpp() -> None:
    """The chat model: llama-server from the locked llamacpp image, its baked GGUF, sized memory and one thread
    per whole CPU of its limit."""
    run = run_stack("local")
    pinned = TEST_IMAGE_LOCK["model-serving/llamacpp:local"]
    assert run.outputs["gemma_image_ref"] == pinned
    pod = run.one("kubernetes:apps/v1:Deployment", "gemma").inputs["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == pinned
    assert _arg(container, "--model") == "/models/gemma-3-270m/model.gguf"
    assert _arg(container, "--alias") == "google/gemma-3-270m"
    assert (_arg(container, "--ctx-size"), _arg(container, "--parallel")) == ("4096", "2")  # 2 slots of 2048
    assert (_arg(container, "--threads"), _arg(container, "--chat-template")) == ("1", "gemma")
    assert "--metrics" in container["args"]
    # 241 MiB of GGUF, 72 MiB of KV cache (18 layers x 1 KV head x 256 x f16 x 2 x 4096), 256 MiB of prompt
    # cache and 256 MiB of overhead.
    assert container["resources"]["limits"] == {"cpu": "600m", "memory": "826Mi", "ephemeral-storage": "3Gi"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert {"name": "DRAIN_SECONDS", "value": "25"} in container["env"]


def test_dev_stack_builds_the_app_image_and_autoscales_one_to_two() -> None:
    run = run_stack("dev")
    image = run.one("docker:index/image:Image", "minilm")
    assert image.inputs["build"]["context"] == "app"
    hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "minilm")
    assert (hpa.inputs["spec"]["minReplicas"], hpa.inputs["spec"]["maxReplicas"]) == (1, 2)
    assert "replicas" not in run.one("kubernetes:apps/v1:Deployment", "minilm").inputs["spec"]
    assert run.of_type("kubernetes:policy/v1:PodDisruptionBudget")


def _arg(container: dict[str, Any], flag: str) -> str:
    args: list[str] = container["args"]
    return args[args.index(flag) + 1]


def test_prod_stack_graph() -> None:
    run = run_stack("prod")
    kinds = _kinds(run)
    stack = typed("prod")
    # The 8B Llama and the embeddings server are Deployments; the 70B Llama spans two nodes: a LeaderWorkerSet.
    assert [m.name for m in stack.models if m.multi_node] == ["llama-3-1-70b"]
    assert kinds["Deployment"] == 2 and kinds["LeaderWorkerSet"] == 1
    # Llama scales with KEDA (its ScaledObject, no HPA), the embeddings server with an HPA; the 70B model with none.
    assert kinds["HorizontalPodAutoscaler"] == kinds["ScaledObject"] == 1
    assert kinds["PodDisruptionBudget"] == 2  # not the 70B model's single replica
    assert kinds["NodePool"] == 1
    # Both Llamas pre-stage their weights into their PVC with a Job.
    prestaged = [m for m in stack.models if m.cache.prestage]
    assert [m.name for m in prestaged] == ["llama-3-1-8b", "llama-3-1-70b"]
    assert kinds["Job"] == kinds["PersistentVolumeClaim"] == len(prestaged)
    # A ServiceMonitor per model and the DCGM exporter's; a PrometheusRule per model.
    assert kinds["ServiceMonitor"] == len(stack.models) + 1 and kinds["PrometheusRule"] == len(stack.models) == 3
    node_pool = run.one("kubernetes:karpenter.sh/v1:NodePool", "gpu")
    assert node_pool.inputs["spec"]["limits"] == {"nvidia.com/gpu": "8"}
    scaled = run.one("kubernetes:keda.sh/v1alpha1:ScaledObject", "llama-3-1-8b").inputs["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 4)
    assert [t["metadata"]["query"] for t in scaled["triggers"]] == [
        'sum(vllm:num_requests_waiting{namespace="prod-llama-3-1-8b",service="llama-3-1-8b"})'
    ]
    hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "embeddings").inputs["spec"]
    assert hpa["minReplicas"] == 2 and hpa["metrics"][0]["type"] == "Pods"
    for name in ("llama-3-1-8b", "embeddings"):
        assert "replicas" not in run.one("kubernetes:apps/v1:Deployment", name).inputs["spec"]
        svc = run.one("kubernetes:core/v1:Service", name)
        assert svc.inputs["spec"]["type"] == "LoadBalancer"
        assert svc.inputs["spec"]["loadBalancerSourceRanges"]
        assert "@sha256:" in run.outputs[f"{name}_image_ref"]
    llama = run.one("kubernetes:apps/v1:Deployment", "llama-3-1-8b")
    args = llama.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "1"
    assert args[args.index("--max-model-len") + 1] == "8192"
    # The 70B model: one replica of two pods (one per node, 2 GPUs each), served by the leader pods.
    big = model("prod", "llama-3-1-70b")
    lws = run.one("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet", big.name).inputs["spec"]
    assert lws["replicas"] == big.replicas == 1
    assert lws["leaderWorkerTemplate"]["size"] == big.nodes_per_replica == 2
    leader = lws["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert _arg(leader, "--tensor-parallel-size") == "2" and _arg(leader, "--pipeline-parallel-size") == "2"
    svc = run.one("kubernetes:core/v1:Service", big.name).inputs["spec"]
    assert svc["type"] == "LoadBalancer" and svc["loadBalancerSourceRanges"]
    assert svc["selector"]["model-serving.dev/role"] == "leader"
    assert svc["selector"].items() <= lws["leaderWorkerTemplate"]["leaderTemplate"]["metadata"]["labels"].items()
    assert "@sha256:" in run.outputs[f"{big.name}_image_ref"]
    assert not any(r.name == big.name for r in run.of_type("kubernetes:policy/v1:PodDisruptionBudget"))


def test_namespaced_objects_wait_for_their_namespace(run: Run) -> None:
    """Pulumi does not pass a component's depends_on to its children: the components do it."""
    namespaces = {r.name: r.urn for r in run.of_type("kubernetes:core/v1:Namespace")}
    for resource in run.kubernetes_objects():
        namespace = resource.inputs["metadata"].get("namespace")
        if namespace is not None:
            assert namespaces[namespace] in resource.dependencies, resource.urn


def test_the_autoscaler_waits_for_its_deployment() -> None:
    run = run_stack("prod")
    scalers = [*run.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")]
    scalers += run.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")
    assert len(scalers) == 2
    for hpa in scalers:
        # The ModelService registers the scaler waiting for the workload's objects, the Deployment among them.
        assert run.one("kubernetes:apps/v1:Deployment", hpa.name).urn in hpa.dependencies


# --- the GPU node pool: registered only where the stack needs it --------------------------------------------

POOL = "model-serving:index:GpuNodePool"
POOL_OBJECTS = [
    ("ConfigMap", "nvidia-device-plugin-config"),
    ("DaemonSet", "nvidia-device-plugin"),
    ("Namespace", "nvidia-device-plugin"),
    ("NetworkPolicy", "default-deny"),
    ("RuntimeClass", "nvidia"),
]
DCGM_OBJECTS = [
    ("ConfigMap", "dcgm-exporter-counters"),
    ("DaemonSet", "dcgm-exporter"),
    ("Namespace", "nvidia-dcgm-exporter"),
    ("NetworkPolicy", "dcgm-exporter"),
    ("Service", "dcgm-exporter"),
    ("ServiceMonitor", "dcgm-exporter"),
]
KARPENTER = {"gpuPool.gpuBudget": 2, "gpuPool.karpenter": {"gpuProducts": ["l4"]}}


def _pool_objects(run: Run) -> list[tuple[str, str]]:
    """The GpuNodePool component's children, (kind, name)."""
    pools = {r.urn for r in run.of_type(POOL)}
    return sorted((r.kind, r.name) for r in run.resources if r.parent in pools)


def test_a_cpu_only_stack_registers_no_gpu_node_pool() -> None:
    """local shares its cluster with e2e: the RuntimeClass and the device plugin are e2e's, not local's to
    create (or delete on destroy). The budget is still exported, as the config states it."""
    run = run_stack("local")
    assert not run.of_type(POOL)
    assert not _pool_objects(run)
    assert {r.kind for r in run.kubernetes_objects()}.isdisjoint({"RuntimeClass", "DaemonSet", "NodePool"})
    # its ConfigMaps are the models' dashboards, none the GPU pool's
    assert {r.name for r in run.of_type("kubernetes:core/v1:ConfigMap")} == {"minilm-dashboard", "gemma-dashboard"}
    assert sorted(r.name for r in run.of_type("kubernetes:core/v1:Namespace")) == ["local-gemma", "local-minilm"]
    assert "gpu_budget" in run.outputs and run.outputs["gpu_budget"] is None


def test_a_gpu_stack_registers_its_gpu_node_pool() -> None:
    run = run_stack("e2e")
    assert [r.name for r in run.of_type(POOL)] == ["gpu"]
    assert _pool_objects(run) == sorted([*POOL_OBJECTS, *DCGM_OBJECTS, ("NodePool", "gpu")])
    pod = run.one("kubernetes:apps/v1:Deployment", "llama").inputs["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert run.outputs["gpu_budget"] == typed("e2e").gpu_pool.gpu_budget == 10


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_registers_the_pool_exactly_when_the_config_needs_it(stack: str) -> None:
    run = run_stack(stack)
    assert bool(run.of_type(POOL)) == typed(stack).needs_gpu_pool
    assert run.outputs["gpu_budget"] == typed(stack).gpu_pool.gpu_budget


@pytest.mark.parametrize(
    ("stack", "edits", "needed"),
    [
        pytest.param("render", {}, False, id="a-cpu-model"),
        pytest.param("dev", {}, False, id="a-cpu-model-and-a-budget"),
        pytest.param("render", {"models[0].engine": "vllm"}, True, id="a-gpu-engine-default"),
        pytest.param("prod", {"gpuPool.karpenter": DELETE}, True, id="gpus-sized-from-the-architecture"),
        pytest.param("render", KARPENTER, True, id="karpenter-asks-for-a-node-pool"),
        # every GPU model (llama, llama-70b) removed; the last first, so that the indices hold
        pytest.param(
            "e2e",
            {"models[3]": DELETE, "models[0]": DELETE, "gpuPool.karpenter": DELETE},
            False,
            id="the-gpu-model-removed",
        ),
    ],
)
def test_the_pool_is_needed_for_a_gpu_model_or_karpenter(stack: str, edits: dict[str, Any], needed: bool) -> None:
    assert typed(stack, edits).needs_gpu_pool is needed


def test_karpenter_on_a_cpu_only_stack_registers_the_pool_and_leaves_the_model_alone() -> None:
    plain = run_stack("render")
    run = run_stack("render", config=stack_values("render", KARPENTER))
    assert _pool_objects(run) == sorted([*POOL_OBJECTS, ("NodePool", "gpu")])
    model = run.one("kubernetes:apps/v1:Deployment", "minilm").inputs
    assert model == plain.one("kubernetes:apps/v1:Deployment", "minilm").inputs
    assert "runtimeClassName" not in model["spec"]["template"]["spec"]


def test_a_gpu_model_on_a_stack_without_karpenter_gets_the_pool_without_a_node_pool() -> None:
    run = run_stack("render", config=stack_values("render", {"models[0].engine": "vllm"}))
    assert _pool_objects(run) == POOL_OBJECTS
    pod = run.one("kubernetes:apps/v1:Deployment", "minilm").inputs["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == run.one("kubernetes:node.k8s.io/v1:RuntimeClass", "nvidia").name


# --- bench/raw_program.py: the same objects without the components -----------------------------------------

RAW_PROGRAM = ROOT / "bench" / "raw_program.py"
PREBUILT = "registry.example.com/model-serving/server:1.0.0@sha256:" + "c" * 64


def _declared(run: Run) -> tuple[list[str], dict[str, Any]]:
    objects = sorted(json.dumps([r.type, r.name, r.inputs, sorted(r.secret_paths)]) for r in run.kubernetes_objects())
    return objects, run.outputs


@pytest.mark.parametrize("stack", ["local", "e2e"])
def test_the_raw_benchmark_program_declares_the_same_objects(stack: str) -> None:
    """The benchmark's baseline registers the component program's plans itself: the GPU pool's only where the
    program does (a CPU-only and a GPU stack), so both still declare the very same objects and outputs."""
    overrides = {"imageRefOverride": PREBUILT}  # the raw program has no docker.Image
    raw = run_stack(stack, overrides=overrides, program=RAW_PROGRAM)
    assert _declared(raw) == _declared(run_stack(stack, overrides=overrides))
