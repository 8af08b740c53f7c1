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
from components import config as config_module
from components import specs
from components.config import parse_stack_config
from tests.unit.mocking import is_secret, resolve, run_components

MODEL = "model-serving:index:ModelService"
POOL = "model-serving:index:GpuNodePool"

# A model as a YAML stack would write it, with the pool it runs on.
MODEL_CONFIG: dict[str, Any] = {
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

# Every block of the stack config, so that every key list the parser knows is seen.
KITCHEN_SINK: dict[str, Any] = {
    "gpuPool": {
        "name": "gpu",
        "gpuResourceName": "nvidia.com/gpu",
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "taint": {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        "runtimeClass": "nvidia",
        "gpuBudget": 16,
        "gpuMemory": "80Gi",
        "devicePlugin": {"enabled": True, "namespace": "nvidia-device-plugin", "timeSlicingReplicas": 1},
        "karpenter": {"nodeClassRef": {"name": "gpu"}, "gpuProducts": ["h100"]},
    },
    "models": [
        {
            "name": "llm",
            "engine": "vllm",
            "modelId": "meta-llama/Llama-3.1-8B-Instruct",
            "image": {
                "build": {
                    "imageName": "registry.example.com/llm:1.0.0",
                    "push": True,
                    "registry": {"server": "registry.example.com", "username": "ci"},
                }
            },
            "architecture": {"params": 8.03e9, "layers": 32, "heads": 32, "kvHeads": 8, "headDim": 128},
            "probes": {"modelLoadSeconds": 1800},
            "modelCache": {"type": "pvc", "size": "50Gi", "accessMode": "ReadWriteMany"},
            "autoscaling": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "metric": {"type": "pods", "name": "vllm:num_requests_waiting", "targetAverageValue": "5"},
            },
            "rollout": {"maxSurge": 0, "maxUnavailable": 1},
            "service": {"type": "LoadBalancer", "sourceRanges": ["10.0.0.0/8"]},
        }
    ],
}


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


def _typed_dict_keys(cls: type) -> set[str]:
    return set(cls.__annotations__)


# Where each key list of the parser lives, and the provider type that mirrors it.
MIRRORS = {
    "gpuPool": msp.GpuPool,
    "gpuPool.taint": msp.Taint,
    "gpuPool.devicePlugin": msp.DevicePlugin,
    "gpuPool.karpenter": msp.Karpenter,
    "gpuPool.karpenter.nodeClassRef": msp.NodeClassRef,
    "models[0].image": msp.Image,
    "models[0].image.build": msp.ImageBuild,
    "models[0].image.build.registry": msp.Registry,
    "models[0].resources": msp.Resources,
    "models[0].architecture": msp.Architecture,
    "models[0].probes": msp.Probes,
    "models[0].modelCache": msp.ModelCache,
    "models[0].autoscaling": msp.Autoscaling,
    "models[0].autoscaling.metric": msp.Metric,
    "models[0].rollout": msp.Rollout,
    "models[0].service": msp.Service,
}


@pytest.fixture
def known_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, set[str]]]:
    """The key lists the config parser checks, by key path, while it parses KITCHEN_SINK."""
    seen: dict[str, set[str]] = {}
    original = config_module._Node.__init__

    def spy(self: Any, path: str, raw: object, known: Any) -> None:
        seen[path] = set(known)
        original(self, path, raw, known)

    monkeypatch.setattr(config_module._Node, "__init__", spy)
    yield seen


def test_inputs_mirror_every_stack_config_key(known_keys: dict[str, set[str]]) -> None:
    """A key added to the stack config must be added to the provider's inputs too (and the reverse)."""
    parse_stack_config(KITCHEN_SINK, has_hub_token=True, has_registry_password=True)
    assert set(MIRRORS) | {"", "models[0]"} == set(known_keys), "a config block without a provider type"
    for path, cls in MIRRORS.items():
        assert _typed_dict_keys(cls) == known_keys[path], path
    model_keys = _typed_dict_keys(msp.ModelServiceArgs) - {"gpuPool", "registryPassword"}
    assert model_keys == known_keys["models[0]"], "ModelService takes one entry of models (its hubToken: the token)"


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
    assert kinds == ["ConfigMap", "DaemonSet", "Namespace", "NodePool", "RuntimeClass"]


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
    with pytest.raises(ValueError, match=r"invalid GpuNodePool 'gpu': gpuPool\.gpuBudget is required"):
        msp.gpu_pool_config("gpu", {"karpenter": {"gpuProducts": ["h100"]}})
