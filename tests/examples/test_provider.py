"""provider/: the components served to other languages. The schema the component provider host infers,
inputs that mirror the stack-config keys, and construction (in process, under mocks) that registers exactly
what the library's own components register for the same config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import model_serving_provider as msp
import pulumi
import pytest
from pulumi.provider.experimental.component import ComponentProvider

import components
from components import specs
from components.config import SECRET_KEYS, GpuPoolConfig, ModelConfig, parse_stack_config
from components.config.declare import Block, keys, nested, top_names, type_name
from components.config.docs import PROVIDER_TYPES, provider_types
from tests.unit.mocking import is_secret, resolve, run_components

MODEL = "model-serving:index:ModelService"
POOL = "model-serving:index:GpuNodePool"

# A model as a YAML stack would write it, with the pool it runs on (vLLM serves embedding models too, on a GPU).
MODEL_CONFIG: dict[str, Any] = {
    "engine": "vllm",
    "modelId": "sentence-transformers/all-MiniLM-L6-v2",
    "image": {"ref": "registry.example.com/model-serving/server:0.1.0"},
    "resources": {"cpu": "2", "memory": "4Gi", "ephemeralStorage": "4Gi", "gpus": 1},
    "port": 8000,
    "modelCache": {"size": "2Gi"},
    "autoscaling": {"minReplicas": 1, "maxReplicas": 3, "metric": {"type": "cpu", "targetUtilization": 60}},
    "service": {"type": "ClusterIP", "port": 80},
}
POOL_CONFIG: dict[str, Any] = {"gpuMemory": "24Gi", "runtimeClass": "nvidia-cdi"}


def _wire(value: Any) -> Any:
    """As the engine delivers inputs to a provider: every number a float."""
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


WIRE_MODEL: dict[str, Any] = _wire({**MODEL_CONFIG, "gpuPool": POOL_CONFIG})


@pytest.fixture(scope="module")
def host() -> ComponentProvider:
    return ComponentProvider(msp.COMPONENTS, msp.PACKAGE, None, msp.VERSION)


@pytest.fixture(scope="module")
def schema(host: ComponentProvider) -> dict[str, Any]:
    return dict(json.loads(host.schema))


def test_schema_serves_the_components_under_the_library_tokens(schema: dict[str, Any]) -> None:
    assert schema["name"] == "model-serving"
    assert schema["version"] == msp.VERSION
    assert set(schema["resources"]) == {MODEL, POOL}
    assert all(r["isComponent"] for r in schema["resources"].values())
    service = schema["resources"][MODEL]
    assert sorted(service["requiredInputs"]) == ["image", "modelId"]
    assert set(service["properties"]) == {"endpoint", "imageRef", "namespace"}
    assert set(schema["resources"][POOL]["properties"]) == {"scheduling", "gpuBudget"}


def test_config_is_plain_and_secrets_are_inputs(schema: dict[str, Any]) -> None:
    """Config must be known when the component validates it; secrets may be outputs (and stay secret)."""
    inputs = schema["resources"][MODEL]["inputProperties"]
    assert inputs["modelId"].get("plain") is True
    assert inputs["image"].get("plain") is True
    assert "plain" not in inputs["hubToken"]
    assert "plain" not in inputs["registryPassword"]


def _objects(cls: type) -> Iterator[type]:
    """``cls`` and every config object under it."""
    yield cls
    for k in keys(cls):
        if isinstance(k.kind, Block):
            yield from _objects(k.kind.cls)


def _type(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(schema["types"][f"model-serving:index:{name}"])


def _inputs(schema: dict[str, Any], cls: type) -> dict[str, Any]:
    if cls is ModelConfig:
        return dict(schema["resources"][MODEL]["inputProperties"])
    return dict(_type(schema, type_name(cls))["properties"])


@pytest.mark.parametrize("top", [GpuPoolConfig, ModelConfig], ids=type_name)
def test_inputs_are_the_stack_config_keys(schema: dict[str, Any], top: type) -> None:
    """The provider's input types are generated from the config schema: one type per config object, its keys."""
    for cls in _objects(top):
        expected = set(top_names(cls))
        if cls is ModelConfig:  # one entry of models, the pool it runs on, the gateway, and the stack's secrets
            expected |= {"gpuPool", "monitoring", "gateway", *SECRET_KEYS}
        assert set(_inputs(schema, cls)) == expected, type_name(cls)
        for head, tails in nested(cls).items():  # nodeClassRef, registry
            assert set(_type(schema, head[0].upper() + head[1:])["properties"]) == set(tails)
    assert set(schema["resources"][POOL]["inputProperties"]) == set(top_names(GpuPoolConfig))


@pytest.mark.parametrize("top", [GpuPoolConfig, ModelConfig], ids=type_name)
def test_required_inputs_and_descriptions_follow_the_schema(schema: dict[str, Any], top: type) -> None:
    for cls in _objects(top):
        if cls is ModelConfig:
            required = schema["resources"][MODEL]["requiredInputs"]
        else:
            required = _type(schema, type_name(cls)).get("required", [])
        assert set(required) == {k.name for k in keys(cls) if k.required and not k.resource_name}, type_name(cls)
        inputs = _inputs(schema, cls)
        for k in keys(cls):
            if k.name in inputs and k.name not in SECRET_KEYS:  # a model's hubToken input is the token itself
                assert inputs[k.name]["description"].lower().startswith(k.doc.lower()), k.name


def test_a_models_tolerations_are_a_list_of_their_own_type(schema: dict[str, Any], host: ComponentProvider) -> None:
    """``tolerations`` is a list of objects: a type of its own, not the pool's GpuScheduling toleration output."""
    inputs = schema["resources"][MODEL]["inputProperties"]
    assert inputs["tolerations"]["items"]["$ref"].endswith("model-serving:index:ModelToleration")
    toleration = _type(schema, "ModelToleration")
    assert set(toleration["properties"]) == {"key", "operator", "value", "effect"}
    assert sorted(toleration["required"]) == ["effect", "key"]
    placement = {
        "nodeSelector": {"topology.kubernetes.io/zone": "a"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "inference", "effect": "NoSchedule"}],
    }
    built = run_components(lambda: host.construct("placed", MODEL, {**WIRE_MODEL, **placement}, None))
    pod = built.one("kubernetes:apps/v1:Deployment", "placed").inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true", "topology.kubernetes.io/zone": "a"}
    assert pod["tolerations"][1] == placement["tolerations"][0]


def test_the_generated_input_types_are_current() -> None:
    assert PROVIDER_TYPES.read_text() == provider_types(), "run: python -m components.config.docs --write"


def _identity(inputs: dict[str, Any]) -> tuple[str, str, str]:
    return inputs["kind"], inputs["metadata"].get("namespace", ""), inputs["metadata"]["name"]


def test_construct_registers_what_the_library_registers(host: ComponentProvider) -> None:
    served = run_components(lambda: host.construct("minilm", MODEL, dict(WIRE_MODEL), None))
    stack = parse_stack_config({"gpuPool": POOL_CONFIG, "models": [{"name": "minilm", **MODEL_CONFIG}]})
    model = stack.models[0]
    library = run_components(
        lambda: components.ModelService(
            "minilm", components.ModelServiceArgs(model=model, scheduling=specs.gpu_scheduling(stack.gpu_pool))
        )
    )
    # Registration order is not fixed (outputs resolve concurrently): compare by type and name.
    assert sorted((r.type, r.name) for r in served.resources) == sorted((r.type, r.name) for r in library.resources)
    by_identity = {_identity(r.inputs): r.inputs for r in library.kubernetes_objects()}
    assert {_identity(r.inputs): r.inputs for r in served.kubernetes_objects()} == by_identity
    pod = served.one("kubernetes:apps/v1:Deployment", "minilm").inputs["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia-cdi", "scheduling comes from the gpuPool input"


def test_construct_returns_the_outputs_under_schema_names(host: ComponentProvider) -> None:
    built = run_components(lambda: host.construct("minilm", MODEL, dict(WIRE_MODEL), None))
    state = {k: resolve(v) for k, v in built.built.state.items()}
    assert state["namespace"] == "models-minilm"
    assert state["imageRef"] == "registry.example.com/model-serving/server:0.1.0"
    assert "endpoint" in state


def test_gpu_node_pool_outputs_its_scheduling(host: ComponentProvider) -> None:
    inputs = {"gpuBudget": 8.0, "karpenter": {"gpuProducts": ["l4"]}, "taint": {"key": "gpu"}}
    built = run_components(lambda: host.construct("gpu", POOL, inputs, None))
    state = {k: resolve(v) for k, v in built.built.state.items()}
    assert state["gpuBudget"] == 8
    assert state["scheduling"] == {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
        "gpuResourceName": "nvidia.com/gpu",
    }
    kinds = sorted(r.inputs["kind"] for r in built.kubernetes_objects())
    assert kinds == ["ConfigMap", "DaemonSet", "Namespace", "NetworkPolicy", "NodePool", "RuntimeClass"]


def _construct_all(host: ComponentProvider, *resources: tuple[str, str, dict[str, Any]]) -> None:
    """Construct several components in one deployment, as the host does for one YAML program."""

    def build() -> None:
        for name, type_, inputs in resources:
            host.construct(name, type_, inputs, None)

    run_components(build)


def test_model_services_of_one_deployment_share_the_pool_budget(host: ComponentProvider) -> None:
    """Each ModelService fits gpuBudget 4 alone (3 GPUs at peak); the second one does not fit beside the first."""
    pool = _wire({**POOL_CONFIG, "gpuBudget": 4})
    first = ("embeddings", MODEL, {**WIRE_MODEL, "gpuPool": pool})
    second = ("reranker", MODEL, {**WIRE_MODEL, "gpuPool": pool})
    _construct_all(host, first)
    msp.reset_capacity()
    with pytest.raises(Exception, match=r"model 'reranker' does not fit GPU pool 'gpu'.*gpuPool\.gpuBudget is 4"):
        _construct_all(host, first, second)


def test_the_pool_budget_counts_models_constructed_before_the_pool(host: ComponentProvider) -> None:
    """The host builds components in dependency order: the pool may come last and still sees every model."""
    models = [(name, MODEL, dict(WIRE_MODEL)) for name in ("a", "b")]
    pool = ("gpu", POOL, {"gpuBudget": 5.0, "karpenter": {"gpuProducts": ["l4"]}})
    with pytest.raises(Exception, match=r"invalid GpuNodePool 'gpu': .*may run 6 GPUs at peak.*gpuBudget 5"):
        _construct_all(host, *models, pool)
    msp.reset_capacity()
    _construct_all(host, *models, ("gpu", POOL, {**pool[2], "gpuBudget": 6.0}))


def test_hub_token_input_mounts_the_token_as_a_secret() -> None:
    args: msp.ModelServiceArgs = {**WIRE_MODEL, "hubToken": pulumi.Output.secret("hf_token")}  # type: ignore[typeddict-item]
    built = run_components(lambda: msp.ModelService("gated", args))
    secrets = built.of_type("kubernetes:core/v1:Secret")
    assert len(secrets) == 1 and secrets[0].secret_paths, "the token is mounted, and stays a secret in the engine"
    pod = built.one("kubernetes:apps/v1:Deployment", "gated").inputs["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert any(m["mountPath"].startswith("/var/run/secrets/model-hub") for m in mounts)
    assert not is_secret(built.built.namespace)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
            r"invalid ModelService 'bad': model\.autoscaling\.maxReplicas must be >= minReplicas",
        ),
        ({"image": {}}, r"invalid ModelService 'bad': model\.image must set exactly one of ref"),
        ({"name": "Not_DNS"}, r"model\.name must be a DNS-1123 label"),
        ({"gpuPool": {"gpuMemory": "lots"}}, r"gpuPool\.gpuMemory is not a memory size"),
    ],
)
def test_config_mistakes_name_the_input(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        msp.model_config("bad", {**WIRE_MODEL, **args})  # type: ignore[typeddict-item]


def test_gpu_pool_mistakes_name_the_key() -> None:
    with pytest.raises(Exception, match=r"invalid GpuNodePool 'gpu': gpuPool\.gpuBudget is required"):
        msp.gpu_pool_config("gpu", {"karpenter": {"gpuProducts": ["h100"]}})
