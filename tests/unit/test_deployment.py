"""A model's workload: the Deployment's pods, their identity, storage, probes, rollout and disruption budget."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import specs
from components.config import ConfigError, ModelConfig
from components.model_service import ModelService
from tests.kube_checks import validate_object
from tests.unit.mocking import SERVICE, Components, model, run_model_service, typed

IMAGE = "registry.example.com/model-serving/server:1.2.3"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
GPU = "nvidia.com/gpu"
TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "models", "effect": "NoSchedule"}


def _scheduling(stack: str = "prod", edits: dict[str, Any] | None = None) -> specs.GpuScheduling:
    return specs.gpu_scheduling(typed(stack, edits).gpu_pool)


def _deployment(m: ModelConfig, stack: str = "prod") -> dict[str, Any]:
    return specs.deployment(m, IMAGE, _scheduling(stack))


def _pod(m: ModelConfig) -> dict[str, Any]:
    pod: dict[str, Any] = _deployment(m)["spec"]["template"]["spec"]
    return pod


def _container(m: ModelConfig) -> dict[str, Any]:
    container: dict[str, Any] = _pod(m)["containers"][0]
    return container


LLAMA = model("prod", "llama-3-1-8b")  # vllm, sized from its architecture, hub token, pre-staged RWX cache, 2-4
EMBEDDINGS = model("prod", "embeddings")  # server engine, emptyDir cache, HPA 2-3
MINILM = model("render")  # one fixed replica, no HPA
MODELS = pytest.mark.parametrize("m", [LLAMA, EMBEDDINGS, MINILM], ids=lambda m: m.name)


# --- resources ------------------------------------------------------------------------------------


@MODELS
def test_requests_equal_limits_and_include_a_whole_number_of_gpus(m: ModelConfig) -> None:
    resources = _container(m)["resources"]
    assert resources["requests"] == resources["limits"]
    if not m.engine_spec.uses_gpus:  # the server engine is CPU-only: no GPU at all
        assert set(resources["limits"]) == {"cpu", "memory", "ephemeral-storage"}
        return
    assert set(resources["limits"]) == {"cpu", "memory", "ephemeral-storage", GPU}
    assert re.fullmatch(r"[1-9][0-9]*", resources["limits"][GPU])
    assert int(resources["limits"][GPU]) == m.resources.gpus


def test_resources_follow_the_config_and_the_sizing() -> None:
    limits = _container(MINILM)["resources"]["limits"]
    assert limits == {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "4Gi"}
    # Llama's memory and GPUs come from its architecture, not from the stack file.
    assert LLAMA.sizing is not None
    llama = _container(LLAMA)["resources"]["limits"]
    assert llama[GPU] == str(LLAMA.sizing.gpus_per_replica)
    assert llama["memory"] == LLAMA.resources.memory
    assert llama["cpu"] == "8"


def test_several_gpus_per_replica_are_one_limit_and_tensor_parallel_args() -> None:
    m = model("render", edits={"models[0].resources.gpus": 4, "models[0].engine": "vllm"})
    assert _container(m)["resources"]["limits"][GPU] == "4"
    args = _container(m)["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"


def test_the_gpu_resource_name_comes_from_the_pool() -> None:
    edits = {"gpuPool.gpuResourceName": "amd.com/gpu", "models[0].engine": "vllm"}
    m = model("render", edits=edits)
    resources = specs.deployment(m, IMAGE, _scheduling("render", edits))["spec"]["template"]["spec"]["containers"][0][
        "resources"
    ]
    assert resources["limits"]["amd.com/gpu"] == "1"
    assert GPU not in resources["limits"]


def test_gpu_pods_land_on_the_pool_and_tolerate_its_taint() -> None:
    pod = _pod(LLAMA)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["runtimeClassName"] == "nvidia"


def test_a_cpu_only_model_asks_for_no_gpu_and_no_gpu_node() -> None:
    m = model("render", edits={"models[0].resources.gpus": 0})
    pod = _pod(m)
    assert GPU not in pod["containers"][0]["resources"]["limits"]
    for key in ("nodeSelector", "tolerations", "runtimeClassName"):
        assert key not in pod


# --- placement: the model's nodeSelector and tolerations ------------------------------------------

NODE = {"model-serving.dev/node": "local"}
NODE_TOLERATION = {"key": "model-serving.dev/node", "operator": "Equal", "value": "local", "effect": "NoSchedule"}
PLACED = {"models[0].nodeSelector": NODE, "models[0].tolerations": [NODE_TOLERATION]}


def test_a_cpu_model_lands_where_its_own_node_selector_and_tolerations_say() -> None:
    pod = _pod(model("render", edits=PLACED))
    assert pod["nodeSelector"] == NODE
    assert pod["tolerations"] == [NODE_TOLERATION]
    assert "runtimeClassName" not in pod


def test_a_toleration_defaults_to_equal_and_leaves_an_unset_value_out() -> None:
    m = model("render", edits={"models[0].tolerations": [{"key": "dedicated", "effect": "NoExecute"}]})
    assert _pod(m)["tolerations"] == [{"key": "dedicated", "operator": "Equal", "effect": "NoExecute"}]
    exists = model(
        "render", edits={"models[0].tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}
    )
    assert _pod(exists)["tolerations"] == [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]


def test_a_gpu_model_adds_its_placement_to_the_pools() -> None:
    m = model(
        "prod", "llama-3-1-8b", edits={"models[0].nodeSelector": NODE, "models[0].tolerations": [NODE_TOLERATION]}
    )
    pod = _pod(m)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true", **NODE}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},  # the pool's first
        NODE_TOLERATION,
    ]
    assert pod["runtimeClassName"] == "nvidia"


def test_a_gpu_model_may_repeat_the_pools_placement_without_duplicates() -> None:
    pool_toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    edits = {"models[0].nodeSelector": {"nvidia.com/gpu.present": "true"}, "models[0].tolerations": [pool_toleration]}
    pod = _pod(model("prod", "llama-3-1-8b", edits=edits))
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [pool_toleration]


def test_a_gpu_models_node_selector_never_overrides_the_pools() -> None:
    """The config names the key (models[i].nodeSelector.<label>); the builder refuses callers that bypass it."""
    with pytest.raises(ConfigError) as caught:
        typed("prod", {"models[0].nodeSelector": {"nvidia.com/gpu.present": "false"}})
    assert caught.value.path == "models[0].nodeSelector.nvidia.com/gpu.present"
    m = model("prod", "llama-3-1-8b")
    other_pool = dataclasses.replace(_scheduling(), node_selector={"gpu": "a100"})
    m = dataclasses.replace(m, node_selector={"gpu": "h100"})
    with pytest.raises(ValueError, match=r"model 'llama-3-1-8b': nodeSelector gpu conflicts with the GPU pool"):
        specs.deployment(m, IMAGE, other_pool)


def test_placed_deployments_validate_against_the_schema() -> None:
    validate_object(_deployment(model("render", edits=PLACED)))
    validate_object(_deployment(model("prod", "llama-3-1-8b", edits=PLACED)))


# --- probes ---------------------------------------------------------------------------------------


@MODELS
def test_probes_hit_the_engine_health_paths_on_the_named_port(m: ModelConfig) -> None:
    container = _container(m)
    paths = {"vllm": ("/health", "/health"), "server": ("/readyz", "/healthz")}[m.engine]
    assert container["startupProbe"]["httpGet"] == {"port": "http", "path": paths[0]}
    assert container["readinessProbe"]["httpGet"] == {"port": "http", "path": paths[0]}
    assert container["livenessProbe"]["httpGet"] == {"port": "http", "path": paths[1]}
    assert container["ports"] == [{"name": "http", "containerPort": m.port, "protocol": "TCP"}]


def _startup_budget(probe: dict[str, Any]) -> int:
    return int(probe["periodSeconds"]) * int(probe["failureThreshold"])


@MODELS
def test_the_startup_probe_waits_for_the_model_to_load(m: ModelConfig) -> None:
    startup = _container(m)["startupProbe"]
    assert _startup_budget(startup) >= m.probes.model_load_seconds
    assert _startup_budget(startup) < m.probes.model_load_seconds + startup["periodSeconds"]
    # Liveness only starts after startup succeeds; its own budget is short.
    assert _startup_budget(_container(m)["livenessProbe"]) < 120


@settings(max_examples=40, deadline=None)
@given(load=st.integers(min_value=10, max_value=4 * 3600), period=st.integers(min_value=1, max_value=300))
def test_the_startup_budget_covers_any_configured_load_time(load: int, period: int) -> None:
    m = model("render", edits={"models[0].probes": {"modelLoadSeconds": load, "periodSeconds": period}})
    startup = _container(m)["startupProbe"]
    assert startup["periodSeconds"] == period
    assert _startup_budget(startup) >= load
    assert _deployment(m)["spec"]["progressDeadlineSeconds"] > _startup_budget(startup)


def test_vllm_gets_a_longer_default_load_budget_than_the_server() -> None:
    vllm = model("render", edits={"models[0].engine": "vllm", "models[0].probes": {}})
    server = model("render", edits={"models[0].probes": {}})
    assert _startup_budget(_container(vllm)["startupProbe"]) >= 1800
    assert _startup_budget(_container(server)["startupProbe"]) >= 600


# --- volumes ----------------------------------------------------------------------------------------


def _volumes(m: ModelConfig) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _pod(m)["volumes"]}


def _mounts(m: ModelConfig) -> dict[str, dict[str, Any]]:
    return {mount["mountPath"]: mount for mount in _container(m)["volumeMounts"]}


@MODELS
def test_shared_memory_is_a_sized_memory_empty_dir(m: ModelConfig) -> None:
    mount = _mounts(m)["/dev/shm"]
    assert _volumes(m)[mount["name"]] == {
        "name": mount["name"],
        "emptyDir": {"medium": "Memory", "sizeLimit": m.shm_size},
    }


def test_shared_memory_size_follows_the_config_and_the_gpu_count() -> None:
    assert _volumes(model("render", edits={"models[0].shmSize": "4Gi"}))["dshm"]["emptyDir"]["sizeLimit"] == "4Gi"
    two_gpus = {"models[0].resources.gpus": 2, "models[0].engine": "vllm"}
    assert _volumes(model("render", edits=two_gpus))["dshm"]["emptyDir"]["sizeLimit"] == "8Gi"


def test_a_pvc_cache_mounts_the_claim_the_component_creates() -> None:
    claim = specs.model_cache_claim(LLAMA)
    assert claim is not None
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "100Gi"}},
        "storageClassName": "efs-sc",
    }
    mount = _mounts(LLAMA)[specs.CACHE_DIR]
    assert _volumes(LLAMA)[mount["name"]]["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert claim["metadata"]["namespace"] == LLAMA.namespace


def test_an_empty_dir_cache_has_its_size_limit_and_no_claim() -> None:
    assert specs.model_cache_claim(MINILM) is None
    mount = _mounts(MINILM)[specs.CACHE_DIR]
    assert _volumes(MINILM)[mount["name"]]["emptyDir"] == {"sizeLimit": "2Gi"}
    resized = model(
        "render", edits={"models[0].modelCache": {"size": "50Gi"}, "models[0].resources.ephemeralStorage": "60Gi"}
    )
    assert _volumes(resized)["model-cache"]["emptyDir"] == {"sizeLimit": "50Gi"}


def test_the_hub_token_secret_is_mounted_as_a_read_only_file() -> None:
    secret = specs.hub_token_secret(LLAMA, "not-a-real-token")
    assert secret["metadata"]["namespace"] == LLAMA.namespace
    assert set(secret["stringData"]) == {"token"}
    mount = _mounts(LLAMA)[specs.HUB_TOKEN_DIR]
    assert mount["readOnly"] is True
    volume = _volumes(LLAMA)[mount["name"]]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable
    env = {e["name"]: e for e in _container(LLAMA)["env"]}
    assert env["HF_TOKEN_PATH"]["value"] == f"{specs.HUB_TOKEN_DIR}/token"
    # The token reaches the pod as a file, never as an environment value.
    assert all("valueFrom" not in e for e in env.values())


def test_without_a_hub_token_nothing_is_mounted() -> None:
    assert specs.HUB_TOKEN_DIR not in _mounts(EMBEDDINGS)
    assert not any("secret" in v for v in _volumes(EMBEDDINGS).values())
    assert not any(e["name"].startswith("HF_TOKEN") for e in _container(EMBEDDINGS)["env"])


# --- security -----------------------------------------------------------------------------------------


@MODELS
def test_pods_run_as_a_high_non_root_uid_with_runtime_default_seccomp(m: ModelConfig) -> None:
    context = _pod(m)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] >= 10000
    assert context["runAsGroup"] >= 10000
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


@MODELS
def test_containers_drop_all_capabilities_and_cannot_escalate(m: ModelConfig) -> None:
    context = _container(m)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True


@MODELS
def test_containers_state_their_own_high_uid_and_gid(m: ModelConfig) -> None:
    """Not only the pod: a container that states nothing runs as whatever its image says (checkov CKV_K8S_40)."""
    context = _container(m)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] >= 10000 and context["runAsGroup"] >= 10000
    assert (context["runAsUser"], context["runAsGroup"]) == (_pod(m)["securityContext"]["runAsUser"], 10001)


@MODELS
def test_a_read_only_root_still_has_writable_tmp_cache_and_home(m: ModelConfig) -> None:
    """A pre-staged cache is the exception: the Job wrote it, the pods only read it (offline)."""
    volumes = _volumes(m)
    writable = {
        path: mount
        for path, mount in _mounts(m).items()
        if not mount.get("readOnly")
        and ("emptyDir" in volumes[mount["name"]] or "persistentVolumeClaim" in volumes[mount["name"]])
    }
    assert "/tmp" in writable
    assert "emptyDir" in volumes[writable["/tmp"]["name"]]
    env = {e["name"]: e["value"] for e in _container(m)["env"]}
    homes = ("HOME", "XDG_CACHE_HOME") if m.cache.prestage else ("HOME", "HF_HOME", "XDG_CACHE_HOME")
    for name in homes:
        assert any(env[name] == path or env[name].startswith(f"{path}/") for path in writable), name
    if not m.cache.prestage:
        assert specs.CACHE_DIR in writable
        return
    cache = _mounts(m)[specs.CACHE_DIR]
    assert specs.CACHE_DIR not in writable and cache["readOnly"] is True
    assert "persistentVolumeClaim" in volumes[cache["name"]]
    assert env["HF_HOME"] == specs.CACHE_DIR
    assert env["HF_HUB_OFFLINE"] == "1"


def test_only_the_prestaged_model_reads_its_cache_offline() -> None:
    assert LLAMA.cache.prestage and not EMBEDDINGS.cache.prestage and not MINILM.cache.prestage
    for m in (EMBEDDINGS, MINILM):
        assert "HF_HUB_OFFLINE" not in {e["name"] for e in _container(m)["env"]}
        assert not _mounts(m)[specs.CACHE_DIR].get("readOnly")


def test_a_hub_mirror_and_a_download_image_reach_the_server_and_the_pre_stage_job() -> None:
    mirror, staging = "http://hub-mirror.internal:8080", "registry.example.com/tools/hub-download:1.0"
    llama = model("e2e", "llama", {"models[0].hubEndpoint": mirror, "models[0].modelCache.prestageImage": staging})
    job = specs.prestage_job(llama, IMAGE)
    assert job is not None
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == staging
    assert {e["name"]: e["value"] for e in container["env"]}["HF_ENDPOINT"] == mirror
    assert {e["name"]: e["value"] for e in _container(llama)["env"]}["HF_ENDPOINT"] == mirror
    # The model's own placement, without the GPU pool's: the download needs no GPU.
    placed = model("e2e", "llama", {"models[0].nodeSelector": {"zone": "a"}, "models[0].tolerations": [TOLERATION]})
    job = specs.prestage_job(placed, IMAGE)
    assert job is not None
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"zone": "a"} and pod["tolerations"] == [{**TOLERATION}]
    assert "nodeSelector" not in (specs.prestage_job(LLAMA, IMAGE) or {})["spec"]["template"]["spec"]
    # Unset: the model's own image, and huggingface_hub's default hub.
    job = specs.prestage_job(LLAMA, IMAGE)
    assert job is not None and job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert "HF_ENDPOINT" not in {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "HF_ENDPOINT" not in {e["name"] for e in _container(LLAMA)["env"]}


@pytest.mark.parametrize("bad", ["hub-mirror:8080", "ftp://hub", "http://"])
def test_a_hub_endpoint_that_is_no_http_url_is_refused_naming_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.hubEndpoint"):
        model("e2e", "llama", {"models[0].hubEndpoint": bad})


@MODELS
def test_the_service_account_token_is_never_mounted(m: ModelConfig) -> None:
    account = specs.service_account(m)
    assert account["automountServiceAccountToken"] is False
    pod = _pod(m)
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False
    assert account["metadata"]["namespace"] == m.namespace


# --- rollout, spreading, replicas, disruption ---------------------------------------------------------


def test_the_default_rollout_frees_a_gpu_before_asking_for_one() -> None:
    strategy = _deployment(MINILM)["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_the_rollout_follows_the_config() -> None:
    m = model("render", edits={"models[0].rollout": {"maxSurge": 1, "maxUnavailable": 0}})
    assert _deployment(m)["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


@MODELS
def test_pods_spread_over_zones_and_hosts(m: ModelConfig) -> None:
    constraints = _pod(m)["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for constraint in constraints:
        assert constraint["labelSelector"] == {"matchLabels": specs.selector_labels(m)}
        assert constraint["maxSkew"] == 1


def test_replicas_are_left_to_the_hpa_when_autoscaling() -> None:
    assert "replicas" not in _deployment(LLAMA)["spec"]
    assert "replicas" not in _deployment(EMBEDDINGS)["spec"]


@pytest.mark.parametrize("replicas", [1, 3])
def test_replicas_are_set_without_autoscaling(replicas: int) -> None:
    m = model("render", edits={"models[0].replicas": replicas})
    assert _deployment(m, "render")["spec"]["replicas"] == replicas


@pytest.mark.parametrize(
    ("stack", "edits", "expected"),
    [
        ("render", None, False),
        ("render", {"models[0].replicas": 2}, True),
        ("dev", None, True),  # autoscaling 1..2
        ("dev", {"models[0].autoscaling.maxReplicas": 1}, False),
        ("prod", None, True),
    ],
)
def test_a_disruption_budget_exists_once_there_can_be_more_than_one_replica(
    stack: str, edits: dict[str, Any] | None, expected: bool
) -> None:
    m = model(stack, edits=edits)
    budget = specs.disruption_budget(m)
    assert (budget is not None) is expected
    if budget is not None:
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["selector"] == _deployment(m, stack)["spec"]["selector"]
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# --- metadata ------------------------------------------------------------------------------------------


@MODELS
def test_objects_and_pods_carry_the_recommended_labels(m: ModelConfig) -> None:
    deployment = _deployment(m)
    expected = {
        "app.kubernetes.io/name": m.name,
        "app.kubernetes.io/instance": m.name,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "model-serving",
        "app.kubernetes.io/managed-by": "pulumi",
    }
    assert deployment["metadata"]["labels"] == expected
    assert deployment["spec"]["template"]["metadata"]["labels"] == expected
    assert deployment["spec"]["selector"]["matchLabels"].items() <= expected.items()
    assert deployment["metadata"]["namespace"] == m.namespace


@MODELS
def test_pods_are_annotated_for_prometheus_on_the_serving_port(m: ModelConfig) -> None:
    annotations = _deployment(m)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(m.port),
        "prometheus.io/path": "/metrics",
    }


def test_the_server_port_reaches_the_container_and_the_annotations() -> None:
    m = model("render", edits={"models[0].port": 9000})
    assert _container(m)["ports"][0]["containerPort"] == 9000
    assert {"name": "PORT", "value": "9000"} in _container(m)["env"]


@MODELS
def test_the_progress_deadline_outlasts_the_model_load(m: ModelConfig) -> None:
    deadline = _deployment(m)["spec"]["progressDeadlineSeconds"]
    assert deadline >= 600  # the Kubernetes default would fail a healthy GPU rollout
    assert deadline > _startup_budget(_container(m)["startupProbe"])


@MODELS
def test_the_deployment_validates_against_the_schema(m: ModelConfig) -> None:
    validate_object(_deployment(m))
    validate_object(specs.service_account(m))
    for obj in (
        specs.model_cache_claim(m),
        specs.disruption_budget(m),
        specs.hub_token_secret(m, "x"),
        specs.prestage_job(m, IMAGE),
    ):
        if obj is not None:
            validate_object(obj)


# --- the component ---------------------------------------------------------------------------------


def _component(m: ModelConfig, hub_token: str | None = "hf_unit_token") -> Components[ModelService]:
    return run_model_service(m, "render" if m is MINILM else "prod", hub_token=hub_token)


def _workload_kinds(run: Components[ModelService]) -> list[str]:
    """The kinds of the objects the workload's plan registered (not those of the other concerns)."""
    others = {"Namespace", "Service", "NetworkPolicy", "HorizontalPodAutoscaler", "ScaledObject"}
    others |= {"ServiceMonitor", "PrometheusRule", "ConfigMap", "HTTPRoute"}
    others |= {"LimitRange", "PriorityClass", "ResourceQuota"}  # the admission plan's
    return sorted(r.kind for r in run.kubernetes_objects() if r.kind not in others)


@pytest.fixture(scope="module")
def llama() -> Components[ModelService]:
    return _component(LLAMA)


def test_the_deployment_resource_waits_longer_than_the_rollout_may_take(llama: Components[ModelService]) -> None:
    timeouts = llama.options_of(DEPLOYMENT, LLAMA.name).custom_timeouts
    assert set(timeouts) == {"create", "update"}
    deadline = specs.progress_deadline_seconds(LLAMA)
    for value in timeouts.values():
        # Pulumi must not give up before Kubernetes itself declares the rollout failed, and (as it only warns
        # about a failed rollout) must give up a while after.
        assert value.endswith("s")
        assert deadline + 60 <= int(value[:-1]) <= deadline + 600
        assert int(value[:-1]) > LLAMA.probes.model_load_seconds


@pytest.mark.parametrize(("deadline", "timeout"), [(30, "90s"), (600, "900s"), (2700, "3300s")])
def test_a_set_progress_deadline_bounds_the_rollout_and_pulumis_wait(deadline: int, timeout: str) -> None:
    model = dataclasses.replace(LLAMA, rollout=dataclasses.replace(LLAMA.rollout, progress_deadline_seconds=deadline))
    assert specs.deployment(model, IMAGE, _scheduling())["spec"]["progressDeadlineSeconds"] == deadline
    assert specs.workloads.deployment_timeout(model) == timeout


def test_the_deployment_waits_for_its_identity_secret_and_cache(llama: Components[ModelService]) -> None:
    dependencies = set(llama.options_of(DEPLOYMENT, LLAMA.name).dependencies)
    assert {
        llama.one("kubernetes:core/v1:ServiceAccount", LLAMA.name).urn,
        llama.one("kubernetes:core/v1:Secret", f"{LLAMA.name}-hub-token").urn,
        llama.one("kubernetes:core/v1:PersistentVolumeClaim", f"{LLAMA.name}-cache").urn,
        llama.one("kubernetes:batch/v1:Job", specs.prestage_job_name(LLAMA)).urn,  # the pre-staged weights
        llama.one("kubernetes:core/v1:ResourceQuota", LLAMA.name).urn,  # its peak: GPUs, CPU, memory
        llama.one("kubernetes:core/v1:LimitRange", LLAMA.name).urn,
        llama.one("kubernetes:scheduling.k8s.io/v1:PriorityClass", LLAMA.namespace).urn,
    } <= dependencies


def test_an_unbound_cache_claim_does_not_block_the_update(llama: Components[ModelService]) -> None:
    claim = llama.one("kubernetes:core/v1:PersistentVolumeClaim", f"{LLAMA.name}-cache")
    assert claim.inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


def test_every_object_is_a_child_of_the_component(llama: Components[ModelService]) -> None:
    component = llama.one(SERVICE, LLAMA.name)
    # The Job: Llama's cache is pre-staged.
    kinds = ["Deployment", "Job", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret"]
    assert _workload_kinds(llama) == [*kinds, "ServiceAccount"]
    assert all(r.parent == component.urn for r in llama.kubernetes_objects())
    # Exactly the workload plan's objects, each registered once, as the ModelService's own children.
    planned = sorted(
        (s.obj["kind"], s.obj["metadata"]["name"]) for s in specs.workloads.plan(LLAMA, IMAGE, _scheduling(), "t")
    )
    children = [(r.kind, r.name) for r in llama.resources if r.parent == component.urn]
    assert sorted(c for c in children if c in planned) == planned


def test_the_registered_deployment_is_the_builders_output(llama: Components[ModelService]) -> None:
    registered = llama.one(DEPLOYMENT, LLAMA.name).inputs
    assert LLAMA.image.ref is not None
    built = specs.deployment(LLAMA, LLAMA.image.ref, _scheduling())
    assert registered["spec"] == built["spec"]
    assert registered["metadata"] == built["metadata"]


def test_a_single_replica_model_gets_no_budget_claim_or_secret() -> None:
    run = _component(MINILM, hub_token=None)
    assert _workload_kinds(run) == ["Deployment", "ServiceAccount"]


def test_a_model_that_mounts_a_hub_token_needs_one() -> None:
    with pytest.raises(ValueError, match="hub token"):
        _component(LLAMA, hub_token=None)
