"""The registry password and the hub token are Pulumi secrets wherever they go, and nowhere else."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from components import specs
from components.model_service import ModelService, ModelServiceArgs
from tests.harness import Registered, Run, run_stack
from tests.unit.mocking import is_secret, model, resolve, run_components, run_model_service, stack_values, typed

TOKEN = "hf_SENTINEL_token_4f1d9c"
PASSWORD = "SENTINEL-registry-password-77e2"
SECRETS = {"hubToken": TOKEN, "registryPassword": PASSWORD}
IMAGE = "docker:index/image:Image"
SECRET = "kubernetes:core/v1:Secret"
# prod's models that mount the hub token: each has a Secret of its own.
HUB_TOKEN_SECRETS = sorted((SECRET, f"{m.name}-hub-token") for m in typed("prod").models if m.hub_token)
# Where each secret value may be, under a secret path: the token in every hub-token Secret, the password in the image.
CARRIERS = {TOKEN: HUB_TOKEN_SECRETS, PASSWORD: [(IMAGE, "embeddings")]}


@pytest.fixture(scope="module")
def prod() -> Run:
    return run_stack("prod", secrets=SECRETS)


def _without(value: Any, path: str) -> Any:
    """``value`` with the secret at ``path`` (``registry.password``, ``stringData``) removed."""
    keys = [name or int(index) for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)]
    result = copy.deepcopy(value)
    node = result
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return result


def _public_inputs(resource: Registered) -> str:
    inputs = resource.inputs
    for path in resource.secret_paths:
        inputs = _without(inputs, path)
    return json.dumps(inputs, sort_keys=True, default=str)


def test_the_registry_password_is_a_secret_input_of_the_docker_image(prod: Run) -> None:
    image = prod.one(IMAGE, "embeddings")
    assert image.inputs["registry"]["password"] == PASSWORD
    assert "registry.password" in image.secret_paths


def test_the_hub_token_is_a_secret_input_of_the_kubernetes_secret(prod: Run) -> None:
    secret = prod.one(SECRET, "llama-3-1-8b-hub-token")
    assert secret.inputs["stringData"] == {"token": TOKEN}
    assert any(path == "stringData" or path.startswith("stringData.") for path in secret.secret_paths)


@pytest.mark.parametrize("value", [TOKEN, PASSWORD])
def test_no_secret_value_appears_in_any_non_secret_input_or_output(prod: Run, value: str) -> None:
    carriers = [r for r in prod.resources if value in json.dumps(r.inputs, default=str)]
    # Not vacuous: the value is in the graph, under a secret path of exactly the resources expected to carry it.
    assert sorted((r.type, r.name) for r in carriers) == CARRIERS[value]
    for resource in prod.resources:
        assert value not in _public_inputs(resource), resource.urn
    assert value not in json.dumps(prod.outputs, default=str)


def test_only_the_secret_paths_are_secret(prod: Run) -> None:
    secret_paths = {(r.type, r.name): r.secret_paths for r in prod.resources if r.secret_paths}
    assert secret_paths == {
        (IMAGE, "embeddings"): ["registry.password"],
        **{secret: ["stringData"] for secret in HUB_TOKEN_SECRETS},
    }
    assert (SECRET, "llama-3-1-8b-hub-token") in secret_paths and (SECRET, "llama-3-1-70b-hub-token") in secret_paths


def test_a_stack_that_needs_no_token_does_not_carry_one() -> None:
    run = run_stack("render", secrets=SECRETS)
    for value in SECRETS.values():
        assert all(value not in json.dumps(r.inputs, default=str) for r in run.resources)
    assert not run.of_type(SECRET)
    # dev pushes its image (the registry password) but mounts no hub token.
    dev = run_stack("dev", secrets=SECRETS)
    assert all(TOKEN not in json.dumps(r.inputs, default=str) for r in dev.resources)
    assert not dev.of_type(SECRET)
    assert dev.one(IMAGE, "minilm").secret_paths == ["registry.password"]


def test_another_model_with_a_hub_token_gets_its_own_secret() -> None:
    run = run_stack("prod", config=stack_values("prod", {"models[1].hubToken": True}), secrets=SECRETS)
    secrets = run.of_type(SECRET)
    assert sorted(s.name for s in secrets) == sorted(["embeddings-hub-token", *(name for _, name in HUB_TOKEN_SECRETS)])
    for secret in secrets:
        assert secret.secret_paths == ["stringData"]
        assert TOKEN not in _public_inputs(secret)
    for resource in run.resources:
        assert TOKEN not in _public_inputs(resource), resource.urn


# --- outputs of the components, given plain (non-secret) values -----------------------------------


def test_the_hub_token_secret_output_is_secret_even_from_a_plain_input() -> None:
    m = model("prod", "llama-3-1-8b")
    run = run_model_service(m, hub_token=TOKEN)
    secret = run.one(SECRET, f"{m.name}-hub-token")
    assert secret.secret_paths == ["stringData"]
    assert secret.inputs["stringData"] == {"token": TOKEN}
    # The Deployment only names the Secret; its own spec is not tainted by the token.
    deployment = run.one("kubernetes:apps/v1:Deployment", m.name)
    assert deployment.secret_paths == []
    assert TOKEN not in json.dumps(deployment.inputs, default=str)


def test_the_registry_password_is_secret_even_from_a_plain_input() -> None:
    run = run_model_service(model("prod", "embeddings"), registry_password=PASSWORD)
    image = run.one(IMAGE, "embeddings")
    assert image.secret_paths == ["registry.password"]
    assert not is_secret(run.built.image_ref)
    assert PASSWORD not in resolve(run.built.image_ref)


def test_a_model_service_keeps_both_secrets_secret_and_its_outputs_public() -> None:
    m = model("prod", "embeddings", edits={"models[1].hubToken": True})
    scheduling = specs.gpu_scheduling(typed("prod").gpu_pool)
    args = ModelServiceArgs(model=m, scheduling=scheduling, hub_token=TOKEN, registry_password=PASSWORD)
    run = run_components(lambda: ModelService(m.name, args))
    assert run.one(IMAGE, m.name).secret_paths == ["registry.password"]
    assert run.one(SECRET, f"{m.name}-hub-token").secret_paths == ["stringData"]
    for resource in run.resources:
        for value in (TOKEN, PASSWORD):
            assert value not in _public_inputs(resource), resource.urn
    for urn, outputs in run.component_outputs.items():
        assert TOKEN not in json.dumps(outputs, default=str), urn
        assert PASSWORD not in json.dumps(outputs, default=str), urn
