"""The `e2e` stack's whole life on a real API server: up, no-op up, refresh, in-place update, destroy.

The tests of this module run in order and share one deployed stack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Kube, Stack, new_stack, planned_objects, wait_until
from tests.project import Project

STACK = "e2e"


@pytest.fixture(scope="module")
def stack(e2e_project: Project, hub_token: str) -> Stack:
    return new_stack(e2e_project, STACK, secrets={"hubToken": hub_token})


@pytest.fixture(scope="module")
def deployed(stack: Stack) -> Stack:
    stack.make("up")
    return stack


def _model(stack: Stack, name: str) -> dict[str, Any]:
    return next(m for m in stack.project.config(stack.name)["models"] if m["name"] == name)


def _available(deployment: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in deployment.get("status", {}).get("conditions", [])}
    status = deployment.get("status", {})
    return (
        conditions.get("Available") == "True"
        and status.get("updatedReplicas") == status.get("replicas") == status.get("readyReplicas")
        and status.get("observedGeneration") == deployment["metadata"]["generation"]
    )


def test_up_creates_namespaces_with_pod_security(deployed: Stack, kube: Kube) -> None:
    for name in deployed.namespaces():
        labels = kube.get("namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", name
    plugin = kube.get("namespace", "nvidia-device-plugin")["metadata"]["labels"]
    assert plugin["pod-security.kubernetes.io/enforce"] == "privileged"


def test_every_deployment_is_available(deployed: Stack, kube: Kube) -> None:
    planned = planned_objects(deployed.project, STACK)
    for namespace in deployed.namespaces():
        deployments = kube.items("deployments", namespace)
        expected = sorted(n for n in planned["Deployment"] if n.startswith(f"{namespace}/"))
        assert sorted(f"{namespace}/{d['metadata']['name']}" for d in deployments) == expected
        for deployment in deployments:
            assert _available(deployment), deployment["status"]
    plugin = kube.get("daemonset", "nvidia-device-plugin", "-n", "nvidia-device-plugin")["status"]
    assert plugin["numberReady"] == plugin["desiredNumberScheduled"] > 0


def test_the_weights_were_pre_staged_before_the_rollout(deployed: Stack, kube: Kube) -> None:
    llama = _model(deployed, "llama")
    (job,) = kube.items("jobs", "e2e-llama")
    assert job["metadata"]["name"] == f"llama-prestage-{llama['modelRevision'][:12]}"
    assert job["status"].get("succeeded") == 1, job["status"]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODEL_REVISION"] == llama["modelRevision"]
    claim = kube.get("pvc", "llama-cache", "-n", "e2e-llama")
    assert claim["status"]["phase"] == "Bound" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    # The Deployment was created after the Job completed, and its pods read the cache offline.
    deployment = kube.get("deployment", "llama", "-n", "e2e-llama")
    completed = next(c for c in job["status"]["conditions"] if c["type"] == "Complete")["lastTransitionTime"]
    assert deployment["metadata"]["creationTimestamp"] >= completed
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e.get("value") for e in container["env"]}["HF_HUB_OFFLINE"] == "1"
    assert next(m for m in container["volumeMounts"] if m["mountPath"] == "/cache")["readOnly"] is True


def test_the_multi_node_model_is_a_leader_worker_set_of_two_nodes(deployed: Stack, kube: Kube) -> None:
    lws = kube.get("leaderworkersets.leaderworkerset.x-k8s.io", "llama-70b", "-n", "e2e-llama-70b")
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2 and lws["spec"]["replicas"] == 1
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    args = leader["args"]
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # The API server kept the pod templates' labels (their metadata schema is in the CRD).
    assert template["workerTemplate"]["metadata"]["labels"]["model-serving.dev/role"] == "worker"
    service = kube.get("service", "llama-70b", "-n", "e2e-llama-70b")
    assert service["spec"]["selector"]["model-serving.dev/role"] == "leader"
    # The LeaderWorkerSet controller formed the group: a leader and a worker, one GPU node each (the fake ones).
    pods = kube.items("pods", "e2e-llama-70b", "leaderworkerset.sigs.k8s.io/name=llama-70b")
    roles = sorted(p["metadata"]["labels"]["model-serving.dev/role"] for p in pods)
    assert roles == ["leader", "worker"] and all(p["status"]["phase"] == "Running" for p in pods), roles
    assert len({p["spec"]["nodeName"] for p in pods}) == 2


def test_gpu_pods_land_on_the_pool_with_whole_gpus(deployed: Stack, kube: Kube) -> None:
    config = deployed.project.config(STACK)
    nodes = {n["metadata"]["name"]: n for n in kube.items("nodes")}
    gpu_pods = 0
    for namespace in deployed.namespaces():
        for pod in kube.items("pods", namespace):
            if pod["metadata"].get("ownerReferences", [{}])[0].get("kind") == "Job":
                continue  # the prestage Job's, done
            assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
            limits = pod["spec"]["containers"][0]["resources"]["limits"]
            requests = pod["spec"]["containers"][0]["resources"]["requests"]
            node = nodes[pod["spec"]["nodeName"]]
            if "nvidia.com/gpu" not in limits:
                assert "nvidia.com/gpu" not in node["status"]["allocatable"], "CPU model on a GPU node"
                continue
            gpu_pods += 1
            assert requests["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
            assert int(limits["nvidia.com/gpu"]) >= 1
            assert node["metadata"]["labels"].get("nvidia.com/gpu.present") == "true"
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints", [])}
            assert ("nvidia.com/gpu", "NoSchedule") in taints
    llama, llama_70b = _model(deployed, "llama"), _model(deployed, "llama-70b")
    group = kube.get("leaderworkersets.leaderworkerset.x-k8s.io", "llama-70b", "-n", "e2e-llama-70b")
    group_pods = llama_70b["replicas"] * group["spec"]["leaderWorkerTemplate"]["size"]  # made by the LWS controller
    assert gpu_pods == llama["autoscaling"]["minReplicas"] + llama["canary"].get("replicas", 1) + group_pods
    # The fake GPU nodes add up to the budget (the real node's two GPUs are for the stacks that choose it).
    assert config["gpuPool"]["gpuBudget"] == sum(
        int(n["status"]["allocatable"].get("nvidia.com/gpu", 0))
        for n in nodes.values()
        if n["metadata"]["labels"].get("type") == "kwok"
    )


def test_load_balancers_have_the_exported_address(deployed: Stack, kube: Kube) -> None:
    """A model in mode service has a LoadBalancer; a routed one a ClusterIP behind the Gateway."""
    outputs = deployed.outputs()
    for model in deployed.project.config(STACK)["models"]:
        namespace = f"e2e-{model['name']}"
        service = kube.get("service", model["name"], "-n", namespace)
        if model.get("routing", {}).get("mode", "service") != "service":
            assert service["spec"]["type"] == "ClusterIP"
            assert outputs[f"{model['name']}_endpoint"] == f"http://{service['spec']['clusterIP']}:80"
            continue
        assert service["spec"]["type"] == "LoadBalancer"
        assert service["spec"]["loadBalancerSourceRanges"] == model["service"]["sourceRanges"]
        ingress = service["status"]["loadBalancer"]["ingress"]
        assert len(ingress) == 1 and ingress[0]["ip"].startswith("127.")
        assert outputs[f"{model['name']}_endpoint"] == f"http://{ingress[0]['ip']}:{model['service']['port']}"


def test_autoscalers_budgets_policies_and_node_pool_are_accepted(deployed: Stack, kube: Kube) -> None:
    for model in deployed.project.config(STACK)["models"]:
        namespace = f"e2e-{model['name']}"
        assert kube.items("networkpolicies", namespace), namespace
        if "autoscaling" not in model:
            assert not kube.items("hpa", namespace) and not kube.exists("pdb", model["name"], namespace)
            continue
        if model["autoscaling"].get("driver") == "keda":  # a ScaledObject instead (test_keda_monitoring.py)
            scaled = kube.get("scaledobjects.keda.sh", model["name"], "-n", namespace)
            assert scaled["spec"]["minReplicaCount"] == model["autoscaling"]["minReplicas"]
        else:
            hpa = kube.get("hpa", model["name"], "-n", namespace)
            assert hpa["spec"]["minReplicas"] == model["autoscaling"]["minReplicas"]
            assert hpa["spec"]["metrics"][0]["type"] == "Pods"
        assert kube.exists("pdb", model["name"], namespace)
    pool = kube.get("nodepools.karpenter.sh", "gpu")
    assert pool["spec"]["template"]["spec"]["taints"][0]["key"] == "nvidia.com/gpu"


def test_hub_token_is_in_the_cluster_and_encrypted_in_state(deployed: Stack, kube: Kube, hub_token: str) -> None:
    secrets = [s for s in kube.items("secrets", "e2e-llama") if s.get("type") == "Opaque"]
    values = [v for s in secrets for v in kube.secret_data(s["metadata"]["name"], "e2e-llama").values()]
    assert hub_token in values
    state_files = list((deployed.project.path / ".pulumi-state").rglob("*.json"))
    assert state_files
    for path in state_files:
        assert hub_token not in path.read_text(errors="replace"), path
    assert hub_token not in json.dumps(deployed.export())


def test_second_up_changes_nothing_and_refresh_finds_no_drift(deployed: Stack) -> None:
    deployed.make("preview", "PREVIEW_ARGS=--expect-no-changes")
    deployed.pulumi("refresh", "--yes", "--expect-no-changes", "--skip-preview")


def test_admission_holds_each_model_to_its_peak(deployed: Stack, kube: Kube) -> None:
    """Every model's namespace has the quota and container defaults the program planned, and its pods the model's
    priority; what the quota counts matches what runs (the pickers and the pre-stage Job included)."""
    planned = planned_objects(deployed.project, STACK)
    for kind, resource in (("ResourceQuota", "resourcequotas"), ("LimitRange", "limitranges")):
        found = [f"{ns}/{i['metadata']['name']}" for ns in deployed.namespaces() for i in kube.items(resource, ns)]
        assert sorted(found) == sorted(planned[kind]), kind
    for namespace in deployed.namespaces():
        (quota,) = kube.items("resourcequotas", namespace)
        used, hard = quota["status"]["used"], quota["status"]["hard"]
        assert set(used) == set(hard), namespace  # Kubernetes counts every pod there against it
        assert kube.get("priorityclass", namespace)["value"] == 1_000_000
        for pod in kube.items("pods", namespace):
            assert pod["spec"].get("priority") == 1_000_000, pod["metadata"]["name"]


def test_scaling_a_gpu_model_past_its_quota_by_hand_is_refused(deployed: Stack, kube: Kube) -> None:
    """`kubectl scale` bypasses the policy pack's budget; the namespace's quota does not (KEDA paused meanwhile,
    so that only the hand sets the replica count)."""
    ns, gpu = "e2e-llama", "requests.nvidia.com/gpu"
    kube.run("annotate", "scaledobject", "llama", "-n", ns, "autoscaling.keda.sh/paused=true", "--overwrite")
    try:
        quota = kube.get("resourcequota", "llama", "-n", ns)
        hard, used = int(quota["status"]["hard"][gpu]), int(quota["status"]["used"][gpu])
        deployment = kube.get("deployment", "llama", "-n", ns)
        per_pod = int(
            deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"]
        )
        replicas = deployment["spec"]["replicas"]
        admitted = replicas + (hard - used) // per_pod
        kube.run("scale", "deployment", "llama", "-n", ns, f"--replicas={admitted + 1}")

        def refusal() -> str:
            rs = [r for r in kube.items("replicasets", ns) if r["metadata"]["name"].startswith("llama-")]
            conditions = [c for r in rs for c in r.get("status", {}).get("conditions", [])]
            return next((c["message"] for c in conditions if c["type"] == "ReplicaFailure"), "")

        wait_until("the quota's refusal", lambda: "exceeded quota: llama" in refusal(), timeout=60)
        assert gpu in refusal(), refusal()
        pods = kube.items("pods", ns, selector="app.kubernetes.io/instance=llama")
        assert len(pods) == admitted, [p["metadata"]["name"] for p in pods]
        assert kube.get("resourcequota", "llama", "-n", ns)["status"]["used"][gpu] == str(hard)
    finally:
        kube.run(
            "scale",
            "deployment",
            "llama",
            "-n",
            ns,
            f"--replicas={_model(deployed, 'llama')['autoscaling']['minReplicas']}",
        )
        kube.run("annotate", "scaledobject", "llama", "-n", ns, "autoscaling.keda.sh/paused-")
    wait_until(
        "llama back at its minimum",
        lambda: len(kube.items("pods", ns, selector="app.kubernetes.io/instance=llama")) == 1,
        timeout=120,
    )


def test_memory_and_env_changes_update_in_place_and_roll_out(deployed: Stack, kube: Kube) -> None:
    config = deployed.project.config(STACK)
    models = config["models"]
    embeddings = next(m for m in models if m["name"] == "embeddings")
    embeddings["resources"]["memory"] = "5Gi"
    llama = next(m for m in models if m["name"] == "llama")
    llama["env"] = {**llama.get("env", {}), "E2E_ROLL": "2"}
    deployed.project.edit_config(STACK, {"models": models})
    preview = json.loads(deployed.pulumi("preview", "--json").stdout)
    ops = {(s["urn"].rsplit("::", 1)[-1], s["op"]) for s in preview["steps"] if s["op"] != "same"}
    # The canary runs the model's env too.
    assert ops == {("embeddings", "update"), ("llama", "update"), ("llama-canary", "update")}, ops
    deployed.make("up")
    memory = kube.get("deployment", "embeddings", "-n", "e2e-embeddings")["spec"]["template"]["spec"]
    assert memory["containers"][0]["resources"]["limits"]["memory"] == "5Gi"
    gpu = kube.get("deployment", "llama", "-n", "e2e-llama")
    env = {e["name"]: e.get("value") for e in gpu["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["E2E_ROLL"] == "2"
    assert gpu["spec"]["strategy"]["rollingUpdate"]["maxSurge"] in (0, "0", "0%")
    # Pulumi awaited the rollout: every pod runs the new template, on nodes holding exactly the budgeted GPUs.
    assert _available(gpu)
    pods = kube.items("pods", "e2e-llama", selector="app.kubernetes.io/name=llama")
    assert len(pods) == llama["autoscaling"]["minReplicas"] + 1  # and the canary's
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["E2E_ROLL"] == "2"


def _backends(kube: Kube, model: str) -> list[tuple[str, str, int]]:
    route = kube.get("httproutes.gateway.networking.k8s.io", model, "-n", f"e2e-{model}")
    (rule,) = route["spec"]["rules"]
    return [(ref["kind"], ref["name"], ref["weight"]) for ref in rule["backendRefs"]]


def test_routes_pools_and_pickers_are_what_the_server_accepted(deployed: Stack, kube: Kube) -> None:
    gateway = kube.get("gateways.gateway.networking.k8s.io", "inference-gateway", "-n", "e2e-gateway")
    (listener,) = gateway["spec"]["listeners"]
    allowed = listener["allowedRoutes"]["namespaces"]["selector"]["matchExpressions"][0]["values"]
    assert allowed == ["e2e-embeddings", "e2e-llama"]
    assert _backends(kube, "embeddings") == [("Service", "embeddings", 100)]
    assert _backends(kube, "llama") == [("InferencePool", "llama", 90), ("InferencePool", "llama-canary", 10)]
    assert not kube.exists("httproutes.gateway.networking.k8s.io", "reranker", "e2e-reranker")
    for track in ("llama", "llama-canary"):
        pool = kube.get("inferencepools.inference.networking.k8s.io", track, "-n", "e2e-llama")
        assert pool["spec"]["endpointPickerRef"]["name"] == f"{track}-epp"
        # The pool selects exactly the pods of its track's Deployment.
        selector = ",".join(f"{k}={v}" for k, v in pool["spec"]["selector"]["matchLabels"].items())
        pods = kube.items("pods", "e2e-llama", selector=selector)
        owners = {p["metadata"]["ownerReferences"][0]["name"].rsplit("-", 1)[0] for p in pods}
        assert pods and owners == {track}, owners


def test_promoting_the_canary_then_removing_it_converges(deployed: Stack, kube: Kube) -> None:
    config = deployed.project.config(STACK)
    models = config["models"]
    llama = next(m for m in models if m["name"] == "llama")
    llama["canary"]["weight"] = 100
    deployed.project.edit_config(STACK, {"models": models})
    preview = json.loads(deployed.pulumi("preview", "--json").stdout)
    ops = {(s["urn"].rsplit("::", 1)[-1], s["op"]) for s in preview["steps"] if s["op"] != "same"}
    assert ops == {("llama", "update")}, ops  # the HTTPRoute alone: requests move, no pod does
    assert [s["urn"].split("::")[-2].rsplit("$", 1)[-1] for s in preview["steps"] if s["op"] == "update"] == [
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
    ]
    deployed.make("up")
    assert _backends(kube, "llama") == [("InferencePool", "llama", 0), ("InferencePool", "llama-canary", 100)]
    # Promotion done: the model runs the canary's image, and the canary goes.
    llama["image"]["ref"] = llama.pop("canary")["image"]
    deployed.project.edit_config(STACK, {"models": models})
    deployed.make("up")
    assert _backends(kube, "llama") == [("InferencePool", "llama", 100)]
    for kind in ("deployments", "services", "inferencepools.inference.networking.k8s.io", "roles", "serviceaccounts"):
        left = [i["metadata"]["name"] for i in kube.items(kind, "e2e-llama") if "canary" in i["metadata"]["name"]]
        assert left == [], (kind, left)
    wait_until(
        "the canary's pods to be gone",
        lambda: not kube.items("pods", "e2e-llama", selector="app.kubernetes.io/instance=llama-canary"),
        timeout=60,
    )
    container = kube.get("deployment", "llama", "-n", "e2e-llama")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == llama["image"]["ref"]


def test_destroy_leaves_nothing(deployed: Stack, kube: Kube) -> None:
    deployed.make("destroy")
    for namespace in [*deployed.namespaces(), "nvidia-device-plugin", "e2e-gateway"]:
        wait_until(f"namespace {namespace} to be gone", lambda ns=namespace: not kube.exists("namespace", ns))
    assert not kube.exists("nodepools.karpenter.sh", "gpu")
    assert not kube.exists("runtimeclass", "nvidia")
    # Only this stack's: a user's `make up` of the local stack may be serving beside it.
    gone = {*deployed.namespaces(), "nvidia-device-plugin", "nvidia-dcgm-exporter"}
    pods = kube.items("pods", selector="app.kubernetes.io/part-of=model-serving")
    assert not [p for p in pods if p["metadata"]["namespace"] in gone]
    resources = deployed.export()["deployment"].get("resources") or []
    assert resources == []
