"""Pinned and pre-staged weights (modelRevision, modelCache.prestage) and models larger than one node
(gpuPool.gpusPerNode: a LeaderWorkerSet per model, tensor parallel × pipeline parallel)."""

from __future__ import annotations

from typing import Any

import pytest

from components import specs
from components.config import ConfigError, ModelConfig
from tests.unit.mocking import model, typed

LLAMA = model("e2e", "llama")  # prestaged into a ReadWriteMany PVC
BIG = model("e2e", "llama-70b")  # 2 nodes per replica
SCHEDULING = specs.gpu_scheduling(typed("e2e").gpu_pool)


def _error(edits: dict[str, Any], stack: str = "e2e") -> str:
    with pytest.raises(ConfigError) as caught:
        typed(stack, edits)
    return str(caught.value)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


# --- pre-staged weights -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edits", "key"),
    [
        ({"models[0].modelCache.type": "emptyDir"}, "models[0].modelCache.type"),
        ({"models[0].modelCache.accessMode": "ReadWriteOnce"}, "models[0].modelCache.accessMode"),
        ({"models[0].modelRevision": None}, "models[0].modelRevision"),
        ({"models[2].modelCache": {"type": "pvc", "accessMode": "ReadWriteMany", "prestage": True}}, "models[2]"),
    ],
    ids=["emptydir", "rwo", "no-revision", "server-engine"],
)
def test_prestage_needs_a_shared_pvc_a_revision_and_vllm(edits: dict[str, Any], key: str) -> None:
    message = _error(edits)
    assert message.startswith(key) or f"\n{key}" in message, message


def test_the_job_downloads_exactly_the_revision_with_the_token_as_a_file() -> None:
    job = specs.prestage_job(LLAMA, "img")
    assert job is not None
    assert job["metadata"]["name"] == f"llama-prestage-{LLAMA.model_revision[:12]}"  # type: ignore[index]
    spec = job["spec"]
    assert spec["backoffLimit"] == specs.PRESTAGE_BACKOFF_LIMIT and spec["activeDeadlineSeconds"] == 7200
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    env = _env(container)
    assert env["MODEL_ID"] == LLAMA.model_id and env["MODEL_REVISION"] == LLAMA.model_revision
    assert env["HF_TOKEN_PATH"] == f"{specs.HUB_TOKEN_DIR}/token" and "HF_TOKEN" not in env
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[specs.CACHE_DIR].get("readOnly") is not True  # the one writer
    assert mounts[specs.HUB_TOKEN_DIR]["readOnly"] is True
    claim = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    assert claim["persistentVolumeClaim"]["claimName"] == "llama-cache"
    # The Job's pod is not one of the model's: its Service, PDB and autoscaler never count it.
    assert "app.kubernetes.io/instance" not in spec["template"]["metadata"]["labels"]
    compile(specs.PRESTAGE_SCRIPT, "prestage", "exec")


def test_the_rollout_waits_for_the_job_and_the_pods_read_the_cache_offline() -> None:
    steps = {s.name: s for s in specs.workloads.plan(LLAMA, "img", SCHEDULING, "token", "canary-img")}
    assert "prestage" in steps["deployment"].after and "prestage" in steps["canary-deployment"].after
    assert steps["prestage"].after == ("service-account", "hub-token", "cache-claim")
    for name in ("deployment", "canary-deployment"):
        (container,) = steps[name].obj["spec"]["template"]["spec"]["containers"]
        assert _env(container)["HF_HUB_OFFLINE"] == "1"
        cache = next(m for m in container["volumeMounts"] if m["mountPath"] == specs.CACHE_DIR)
        assert cache["readOnly"] is True


def test_a_new_revision_is_a_new_job() -> None:
    moved = model("e2e", "llama", {"models[0].modelRevision": "1" * 40})
    assert specs.prestage_job_name(moved) != specs.prestage_job_name(LLAMA)
    assert specs.prestage_job(model("e2e", "embeddings"), "img") is None


# --- more than one node -------------------------------------------------------------------------------------


def test_a_model_larger_than_a_node_is_split_tensor_by_pipeline() -> None:
    sized = BIG.sizing
    assert sized is not None
    assert (sized.tensor_parallel_size, sized.pipeline_parallel_size, sized.nodes_per_replica) == (2, 2, 2)
    assert BIG.multi_node and BIG.resources.gpus == 2  # per pod: one node's GPUs
    assert BIG.peak_gpus == 1 * 2 * 2  # one replica of two pods of two GPUs


def test_the_leader_worker_set_runs_vllm_over_ray_on_each_nodes_gpus() -> None:
    lws = specs.workload(BIG, "img", SCHEDULING)
    assert (lws["apiVersion"], lws["kind"]) == ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    spec = lws["spec"]
    assert spec["replicas"] == 1 and spec["leaderWorkerTemplate"]["size"] == 2
    assert spec["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
    # Not the Shared subdomain policy, whose headless Service would be named as the model's Service is.
    assert spec["networkConfig"] == {"subdomainPolicy": "UniquePerReplica"}
    assert specs.service(BIG)["metadata"]["name"] == lws["metadata"]["name"]
    leader = spec["leaderWorkerTemplate"]["leaderTemplate"]
    worker = spec["leaderWorkerTemplate"]["workerTemplate"]
    assert leader["metadata"]["labels"][specs.ROLE_LABEL] == "leader"
    assert worker["metadata"]["labels"][specs.ROLE_LABEL] == "worker"
    (server,) = leader["spec"]["containers"]
    (follower,) = worker["spec"]["containers"]
    args = server["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"
    assert args[args.index("--distributed-executor-backend") + 1] == "ray"
    assert "ray start --head" in server["command"][2] and "startupProbe" in server
    assert "$LWS_LEADER_ADDRESS" in follower["command"][2] and "args" not in follower
    for container in (server, follower):
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    for template in (leader, worker):
        assert template["spec"]["nodeSelector"] == dict(SCHEDULING.node_selector)


def test_a_container_patch_has_the_last_word_in_leader_and_workers_but_gives_workers_no_probes() -> None:
    patch = {"command": ["/bin/engine"], "args": ["--serve"], "env": [{"name": "A", "value": "1"}]}
    patch |= {"readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}}
    patched = model("e2e", "llama-70b", {"models[3].containerPatch": patch})
    template = specs.workload(patched, "img", SCHEDULING)["spec"]["leaderWorkerTemplate"]
    (leader,) = template["leaderTemplate"]["spec"]["containers"]
    (worker,) = template["workerTemplate"]["spec"]["containers"]
    assert leader["command"] == worker["command"] == ["/bin/engine"]
    assert leader["args"] == worker["args"] == ["--serve"] and leader["env"] == worker["env"] == patch["env"]
    assert leader["readinessProbe"]["httpGet"]["path"] == "/ready" and "ports" in leader  # merged, as in a Deployment
    assert not {"ports", "startupProbe", "readinessProbe", "livenessProbe"} & set(worker)


def test_the_service_selects_leaders_and_the_group_talks_to_itself() -> None:
    assert specs.service(BIG)["spec"]["selector"][specs.ROLE_LABEL] == "leader"
    policy = specs.network_policy(BIG, typed("e2e").monitoring)["spec"]
    peers = [{"podSelector": {"matchLabels": specs.model_selector(BIG)}}]
    assert {"from": peers} in policy["ingress"] and {"to": peers} in policy["egress"]


def test_an_autoscaled_multi_node_model_scales_groups() -> None:
    edits = {"models[3].replicas": None, "models[3].autoscaling": {"maxReplicas": 2}, "gpuPool.gpuBudget": 14}
    scaled = model("e2e", "llama-70b", edits)
    hpa = specs.autoscaler(scaled)
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    budget = specs.disruption_budget(scaled)
    assert budget is not None and budget["spec"]["maxUnavailable"] == 2  # one whole group
    assert scaled.peak_gpus == 2 * 2 * 2


def test_a_node_too_small_for_any_split_is_refused_naming_the_key() -> None:
    message = _error({"gpuPool.gpuMemory": "8Gi"})
    assert "models[3].architecture" in message, message


def _multi(m: ModelConfig) -> bool:
    return m.multi_node


def test_prod_serves_the_70b_model_on_two_nodes_within_its_budget() -> None:
    prod = typed("prod")
    big = [m for m in prod.models if _multi(m)]
    assert [m.name for m in big] == ["llama-3-1-70b"]
    assert all(m.model_revision is not None for m in prod.models if m.engine == "vllm")
    assert all(m.cache.prestage for m in prod.models if m.engine == "vllm")
    assert sum(m.peak_gpus for m in prod.models) <= (prod.gpu_pool.gpu_budget or 0)


def test_a_multi_node_models_replica_alert_reads_its_leaders() -> None:
    rules = {r["alert"]: r["expr"] for r in specs.alert_rules(BIG)}
    assert (
        'kube_statefulset_status_replicas_ready{namespace="e2e-llama-70b",statefulset="llama-70b"}'
        in (rules["ModelNotReady"])
    )
    assert "kube_deployment" not in rules["ModelNotReady"]
    assert "kube_deployment_spec_replicas" in {r["alert"]: r["expr"] for r in specs.alert_rules(LLAMA)}["ModelNotReady"]


def test_gpus_per_pod_beyond_a_node_are_refused_naming_the_key() -> None:
    message = _error({"models[0].resources.gpus": 4})
    assert message.startswith("models[0].resources.gpus is per pod and a node has gpuPool.gpusPerNode 2"), message
