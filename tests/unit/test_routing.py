"""Routing through a Gateway (routing.mode gateway, inference-pool) and canaries: the config, the builders, and the
program's objects under mocks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import specs
from components.capacity import GpuBudgetError, GpuCapacity
from components.config import ConfigError, GatewayConfig, ModelConfig, MonitoringConfig
from tests.harness import Run, run_stack
from tests.kube_checks import manifest, validate_object
from tests.unit.mocking import model, stack_values, typed

GATEWAY = GatewayConfig(name="inference-gateway", namespace="e2e-gateway", gateway_class_name="x")
OFF = MonitoringConfig()
LLAMA = model("e2e", "llama")  # inference-pool, canary 10 % on another revision
EMBEDDINGS = model("e2e", "embeddings")  # gateway, no canary
RERANKER = model("e2e", "reranker")  # service


def _embeddings(**edits: Any) -> ModelConfig:
    return model("e2e", "embeddings", {f"models[1].{k}": v for k, v in edits.items()})


def _error(edits: dict[str, Any], stack: str = "e2e") -> str:
    with pytest.raises(ConfigError) as caught:
        typed(stack, edits)
    return str(caught.value)


# --- config -------------------------------------------------------------------------------------------------


def test_the_default_mode_is_a_service_and_routed_models_get_a_cluster_ip() -> None:
    assert RERANKER.routing.mode == "service" and RERANKER.service.type == "LoadBalancer"
    assert EMBEDDINGS.routing.mode == "gateway" and EMBEDDINGS.service.type == "ClusterIP"
    assert EMBEDDINGS.routing.path == "/embeddings/"


@pytest.mark.parametrize(
    ("edits", "key", "text"),
    [
        ({"models[2].canary": {"weight": 10, "image": "r/x:v2"}}, "models[2].canary", "needs routing.mode gateway"),
        ({"models[1].canary": {"weight": 10}}, "models[1].canary", "must set image, args or modelRevision"),
        ({"models[1].canary": {"weight": 101, "args": ["--x"]}}, "models[1].canary.weight", "<= 100"),
        ({"models[1].canary": {"weight": -1, "args": ["--x"]}}, "models[1].canary.weight", ">= 0"),
        ({"models[1].service.type": "LoadBalancer"}, "models[1].service.type", "bypass its routes"),
        ({"models[0].routing.picker.image": None}, "models[0].routing.picker.image", "is required"),
        ({"models[0].routing.picker.image": "r/epp:v1"}, "models[0].routing.picker.image", "pinned by digest"),
        ({"models[0].canary.modelRevision": "main"}, "models[0].canary.modelRevision", "40 lower-case hex"),
        ({"models[0].modelRevision": "A" * 40}, "models[0].modelRevision", "40 lower-case hex"),
        ({"models[0].routing.path": "/llama"}, "models[0].routing.path", "is not valid"),
        ({"gateway.namespace": "e2e-embeddings"}, "models[1].namespace", "must differ from gateway.namespace"),
        ({"gpuPool.gpuBudget": 8}, "models[0].canary.replicas", "is more than gpuPool.gpuBudget 8 holds"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("models") else None,
)
def test_bad_routing_config_is_refused_naming_the_key(edits: dict[str, Any], key: str, text: str) -> None:
    message = _error(edits)
    assert f"{key} " in message and text in message, message


def test_a_canary_running_what_the_model_runs_is_refused() -> None:
    message = _error({"models[0].canary.image": LLAMA.image.ref})
    assert "models[0].canary runs what the model runs" in message


def test_a_prestaged_models_canary_cannot_serve_another_revision() -> None:
    message = _error({"models[0].canary.modelRevision": "0" * 40})
    assert "models[0].canary.modelRevision conflicts with modelCache.prestage" in message


def test_a_created_gateway_no_model_uses_is_refused() -> None:
    message = _error({"gateway": {"gatewayClassName": "x"}}, stack="local")
    assert "gateway.gatewayClassName creates a Gateway no model uses" in message


def test_the_canary_counts_against_the_gpu_budget() -> None:
    assert LLAMA.canary is not None
    # 4 replicas + the canary's 1, no surge
    assert LLAMA.peak_pods == LLAMA.max_replicas + LLAMA.canary.replicas == 5
    ledger = GpuCapacity("gpu", 4)
    with pytest.raises(GpuBudgetError, match=r"canary 1"):
        ledger.reserve(LLAMA)


def test_the_canary_track_runs_the_canary_and_shares_the_model() -> None:
    canary = LLAMA.canary_track()
    assert canary.instance == "llama-canary" and canary.namespace == LLAMA.namespace
    assert canary.image.ref == LLAMA.canary.image != LLAMA.image.ref  # type: ignore[union-attr]
    assert canary.model_revision == LLAMA.model_revision and canary.cache == LLAMA.cache
    assert canary.replicas == 1 and canary.autoscaling is None and canary.canary is None
    assert canary.resources == LLAMA.resources


# --- builders -----------------------------------------------------------------------------------------------


def test_a_path_route_strips_its_prefix_and_sends_everything_to_the_service() -> None:
    route = specs.http_route(EMBEDDINGS, GATEWAY)
    assert route["metadata"] == {
        "name": "embeddings",
        "namespace": "e2e-embeddings",
        "labels": specs.model_labels(EMBEDDINGS),
    }
    (parent,) = route["spec"]["parentRefs"]
    assert parent == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "inference-gateway",
        "namespace": "e2e-gateway",
    }
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/embeddings/"}}]
    assert rule["filters"][0]["urlRewrite"]["path"] == {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
    assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": "embeddings", "port": 80, "weight": 100}]


def test_a_header_route_matches_the_model_id() -> None:
    m = _embeddings(routing={"mode": "gateway", "match": "header"})
    (rule,) = specs.http_route(m, GATEWAY)["spec"]["rules"]
    assert rule["matches"] == [{"headers": [{"type": "Exact", "name": "X-Gateway-Model-Name", "value": m.model_id}]}]
    assert "filters" not in rule


def test_a_canary_splits_the_route_by_weight() -> None:
    m = _embeddings(canary={"weight": 25, "image": EMBEDDINGS.image.ref.replace("1.0.0", "1.1.0")})  # type: ignore[union-attr]
    refs = specs.http_route(m, GATEWAY)["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("embeddings", 75), ("embeddings-canary", 25)]
    assert sum(r["weight"] for r in refs) == 100


def test_an_inference_pool_route_points_at_the_pools() -> None:
    refs = specs.http_route(LLAMA, GATEWAY)["spec"]["rules"][0]["backendRefs"]
    assert refs == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama", "weight": 90},
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama-canary", "weight": 10},
    ]


@pytest.mark.parametrize("track", [LLAMA, LLAMA.canary_track()], ids=["stable", "canary"])
def test_each_pool_selects_exactly_its_tracks_pods_on_the_serving_port(track: ModelConfig) -> None:
    pool = specs.inference_pool(track)
    deployment = specs.deployment(track, "img@sha256:" + "0" * 64, specs.gpu_scheduling(typed("e2e").gpu_pool))
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = pool["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert pool["spec"]["targetPorts"] == [{"number": track.port}]
    assert pool["spec"]["endpointPickerRef"] == {
        "group": "",
        "kind": "Service",
        "name": f"{track.instance}-epp",
        "port": {"number": specs.PICKER_GRPC_PORT},
        "failureMode": "FailClose",
    }


def test_the_canary_and_stable_deployments_select_disjoint_pods() -> None:
    scheduling = specs.gpu_scheduling(typed("e2e").gpu_pool)
    stable = specs.deployment(LLAMA, "a", scheduling)
    canary = specs.deployment(LLAMA.canary_track(), "a", scheduling)
    assert stable["metadata"]["name"] == "llama" and canary["metadata"]["name"] == "llama-canary"
    s, c = stable["spec"]["selector"]["matchLabels"], canary["spec"]["selector"]["matchLabels"]
    assert not s.items() <= canary["spec"]["template"]["metadata"]["labels"].items()
    assert not c.items() <= stable["spec"]["template"]["metadata"]["labels"].items()
    assert canary["spec"]["replicas"] == 1 and "replicas" not in stable["spec"]  # KEDA owns the stable count
    assert canary["spec"]["template"]["metadata"]["labels"][specs.TRACK_LABEL] == "canary"
    assert specs.TRACK_LABEL not in stable["spec"]["template"]["metadata"]["labels"]
    (container,) = canary["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "a"  # the image the workload plan hands it: the canary's own


def _picker_config(track: ModelConfig) -> dict[str, Any]:
    (arg,) = [a for a in specs.picker_args(track) if a.startswith("--config-text=")]
    return dict(json.loads(arg.partition("=")[2]))


def test_the_picker_scores_queue_kv_cache_and_prefix_and_knows_vllm() -> None:
    config = _picker_config(LLAMA)
    (profile,) = config["schedulingProfiles"]
    weights = {p["pluginRef"]: p.get("weight") for p in profile["plugins"]}
    assert weights == {
        "queue-scorer": 2,
        "kv-cache-utilization-scorer": 2,
        "prefix-cache-scorer": 3,
        "max-score-picker": None,
    }
    extractor = next(p for p in config["plugins"] if p["type"] == "core-metrics-extractor")
    assert extractor["parameters"] == {"defaultEngine": "vllm"}  # the picker's own names for vLLM


def test_the_picker_is_told_the_servers_metric_names_and_zero_weights_drop_a_scorer() -> None:
    m = _embeddings(
        routing={
            "mode": "inference-pool",
            "picker": {"image": LLAMA.routing.picker.image, "scorers": {"kvCache": 0}},
        }
    )
    config = _picker_config(m)
    extractor = next(p for p in config["plugins"] if p["type"] == "core-metrics-extractor")["parameters"]
    assert extractor["defaultEngine"] == "server"
    (engine,) = extractor["engineConfigs"]
    assert engine["queuedRequestsSpec"] == "model_server_requests_waiting" and engine["kvUsageSpec"] == ""
    refs = [p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]]
    assert "kv-cache-utilization-scorer" not in refs


def test_the_picker_runs_locked_down_with_only_the_rights_it_reads_with() -> None:
    objects = specs.picker_objects(LLAMA, GATEWAY, OFF)
    pod = objects["deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == LLAMA.routing.picker.image
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert pod["serviceAccountName"] == "llama-epp" and pod["automountServiceAccountToken"] is True
    verbs = {tuple(r["resources"]): set(r["verbs"]) for r in objects["role"]["rules"]}
    assert all(v == {"get", "list", "watch"} for v in verbs.values()), verbs
    assert objects["role-binding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "llama-epp", "namespace": LLAMA.namespace}
    ]
    ingress = objects["network-policy"]["spec"]["ingress"]
    assert ingress == [{"from": [specs.from_namespace("e2e-gateway")], "ports": [{"protocol": "TCP", "port": 9002}]}]


def test_several_pickers_elect_a_leader() -> None:
    m = model("e2e", "llama", {"models[0].routing.picker.replicas": 2})
    assert "--ha-enable-leader-election" in specs.picker_args(m)
    assert any("leases" in r["resources"] for r in specs.picker_role(m)["rules"])


def test_a_routed_models_network_policy_admits_the_gateway_and_pickers_by_selector() -> None:
    (rule,) = specs.network_policy(LLAMA, OFF, GATEWAY)["spec"]["ingress"]
    assert rule["from"] == [
        specs.from_namespace("e2e-gateway"),
        {"podSelector": {"matchLabels": specs.PICKER_SELECTOR}},
    ]
    proxied = GatewayConfig(name="g", namespace="g", proxy_namespace="envoy-gateway-system")
    (rule,) = specs.network_policy(EMBEDDINGS, OFF, proxied)["spec"]["ingress"]
    assert rule["from"] == [specs.from_namespace("envoy-gateway-system")]


def test_the_created_gateway_admits_routes_from_the_routed_models_namespaces_only() -> None:
    gateway = specs.gateway(GATEWAY, ["e2e-llama", "e2e-embeddings"])
    (listener,) = gateway["spec"]["listeners"]
    expression = listener["allowedRoutes"]["namespaces"]["selector"]["matchExpressions"][0]
    assert expression["values"] == ["e2e-embeddings", "e2e-llama"]
    assert gateway["spec"]["gatewayClassName"] == "x"


def test_removing_the_canary_leaves_one_backend_and_no_canary_objects() -> None:
    m = model("e2e", "llama", {"models[0].canary": None})
    steps = [s.name for s in specs.routing.plan(m, GATEWAY, OFF)]
    assert not any(name.startswith("canary-") for name in steps)
    refs = specs.http_route(m, GATEWAY)["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("llama", 100)]


# --- the program under mocks --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def e2e() -> Run:
    return run_stack("e2e")


def test_the_e2e_stack_registers_one_model_per_mode(e2e: Run) -> None:
    kinds = {(r.kind, r.name) for r in e2e.kubernetes_objects()}
    assert {("Gateway", "inference-gateway"), ("HTTPRoute", "llama"), ("HTTPRoute", "embeddings")} <= kinds
    assert {("InferencePool", "llama"), ("InferencePool", "llama-canary")} <= kinds
    assert {("Deployment", "llama-epp"), ("Deployment", "llama-canary-epp"), ("Deployment", "llama-canary")} <= kinds
    assert ("HTTPRoute", "reranker") not in kinds and ("InferencePool", "embeddings") not in kinds
    for resource in e2e.kubernetes_objects():
        validate_object(manifest(resource.inputs))


def test_the_route_waits_for_the_pools_and_the_rollouts(e2e: Run) -> None:
    route = e2e.one("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "llama")
    names = {urn.rsplit("::", 1)[1] for urn in route.dependencies}
    assert {"llama", "llama-canary"} <= names  # the pools (and the Deployments, of the same names)


def test_promoting_and_removing_the_canary_changes_only_the_route_then_removes_the_canary() -> None:
    config = stack_values("e2e")
    promoted = run_stack("e2e", config={**config, **_with_llama(config, canary={"weight": 100})})
    refs = promoted.one("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "llama").inputs["spec"]["rules"][0]
    assert [(r["name"], r["weight"]) for r in refs["backendRefs"]] == [("llama", 0), ("llama-canary", 100)]
    removed = run_stack("e2e", config={**config, **_with_llama(config, canary=None)})
    assert not [r for r in removed.kubernetes_objects() if "canary" in r.name]


def _with_llama(config: dict[str, Any], **changes: Any) -> dict[str, Any]:
    models = [dict(m) for m in config["model-serving:models"]]
    llama = models[0]
    for key, value in changes.items():
        if value is None:
            llama.pop(key, None)
        else:
            llama[key] = {**llama.get(key, {}), **value}
    return {"model-serving:models": models}
