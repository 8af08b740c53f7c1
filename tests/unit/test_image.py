"""ModelImage: a prebuilt reference passes through; a build becomes a pulumi-docker Image."""

from __future__ import annotations

import pytest

from components.config import ImageBuildConfig, ImageConfig
from components.image import ModelImage, ModelImageArgs
from tests.harness import run_stack
from tests.unit.mocking import Components, model, resolve, run_components, stack_values

IMAGE = "docker:index/image:Image"
COMPONENT = "model-serving:index:ModelImage"
PINNED = "registry.example.com/model-serving/server:1.2.3"


def _image(image: ImageConfig, password: str | None = None) -> Components[ModelImage]:
    return run_components(lambda: ModelImage("m", ModelImageArgs(image=image, registry_password=password)))


def test_a_prebuilt_reference_is_the_image_ref_and_builds_nothing() -> None:
    run = _image(ImageConfig(ref=PINNED))
    assert resolve(run.built.image_ref) == PINNED
    assert [r.type for r in run.resources] == [COMPONENT]
    assert run.component_outputs[run.one(COMPONENT, "m").urn] == {"image_ref": PINNED}


def test_a_digest_pinned_reference_is_kept_whole() -> None:
    ref = f"{PINNED}@sha256:{'0f' * 32}"
    assert resolve(_image(ImageConfig(ref=ref)).built.image_ref) == ref


PUSHED = ImageBuildConfig(
    image_name=PINNED,
    context="app",
    dockerfile="app/Dockerfile.gpu",
    args={"PYTHON_VERSION": "3.11", "TORCH_INDEX": "cu124"},
    platform="linux/amd64",
    cache_from=("registry.example.com/model-serving/server:cache",),
    push=True,
    registry_server="registry.example.com",
    registry_username="ci-bot",
)


@pytest.fixture(scope="module")
def pushed() -> Components[ModelImage]:
    return _image(ImageConfig(build=PUSHED), password="hunter2-registry")


def test_a_build_registers_one_docker_image_under_the_component(pushed: Components[ModelImage]) -> None:
    image = pushed.one(IMAGE, "m")
    assert image.parent == pushed.one(COMPONENT, "m").urn
    assert image.custom


def test_the_build_carries_context_dockerfile_args_platform_and_cache(pushed: Components[ModelImage]) -> None:
    inputs = pushed.one(IMAGE, "m").inputs
    assert inputs["imageName"] == PINNED
    assert inputs["build"]["context"] == "app"
    assert inputs["build"]["dockerfile"] == "app/Dockerfile.gpu"
    assert inputs["build"]["args"] == {"PYTHON_VERSION": "3.11", "TORCH_INDEX": "cu124"}
    assert inputs["build"]["platform"] == "linux/amd64"
    assert inputs["build"]["cacheFrom"] == {"images": ["registry.example.com/model-serving/server:cache"]}


def test_a_push_logs_in_to_the_registry_with_a_secret_password(pushed: Components[ModelImage]) -> None:
    image = pushed.one(IMAGE, "m")
    assert image.inputs["registry"] == {
        "server": "registry.example.com",
        "username": "ci-bot",
        "password": "hunter2-registry",
    }
    # Passed in as a plain string; the component makes it a secret all the same.
    assert "registry.password" in image.secret_paths
    assert image.inputs["skipPush"] is False


def test_a_pushed_image_ref_is_the_repo_digest(pushed: Components[ModelImage]) -> None:
    ref = resolve(pushed.built.image_ref)
    # The mock registry reports <repository>@sha256:abab…; the tag is replaced by the digest.
    assert ref == f"registry.example.com/model-serving/server@sha256:{'ab' * 32}"
    assert pushed.component_outputs[pushed.one(COMPONENT, "m").urn]["image_ref"] == ref


def test_a_local_build_skips_the_push_and_uses_the_image_name() -> None:
    build = ImageBuildConfig(image_name="registry.dev.example.com/model-serving/server:dev-1")
    run = _image(ImageConfig(build=build))
    inputs = run.one(IMAGE, "m").inputs
    assert inputs["skipPush"] is True
    assert "registry" not in inputs or not inputs["registry"]
    assert "cacheFrom" not in inputs["build"] or inputs["build"]["cacheFrom"] is None
    assert inputs["build"]["platform"] == "linux/amd64"  # the default: GPU nodes are amd64
    assert resolve(run.built.image_ref) == "registry.dev.example.com/model-serving/server:dev-1"


def test_stack_config_reaches_the_docker_image_through_the_program() -> None:
    edits = {
        "models[0].image.build.args": {"BASE": "python:3.11-slim"},
        "models[0].image.build.cacheFrom": ["registry.dev.example.com/model-serving/server:cache"],
        "models[0].image.build.platform": "linux/arm64",
    }
    run = run_stack("dev", config=stack_values("dev", edits))
    image = run.one(IMAGE, "minilm")
    assert image.inputs["build"]["args"] == {"BASE": "python:3.11-slim"}
    assert image.inputs["build"]["cacheFrom"] == {"images": ["registry.dev.example.com/model-serving/server:cache"]}
    assert image.inputs["build"]["platform"] == "linux/arm64"
    assert image.inputs["build"]["dockerfile"] == "app/Dockerfile"
    assert run.one(COMPONENT, "minilm").urn == image.parent
    # The Deployment runs what was built: the image name, as nothing was pushed.
    deployment = run.one("kubernetes:apps/v1:Deployment", "minilm")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.dev.example.com/model-serving/server:dev-1"


def test_the_deployment_of_a_pushed_image_is_pinned_to_its_digest() -> None:
    run = run_stack("prod")
    deployment = run.one("kubernetes:apps/v1:Deployment", "embeddings")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example.com/model-serving/server@sha256:{'ab' * 32}"
    assert container["image"] == run.outputs["embeddings_image_ref"]


def test_the_typed_config_of_the_prod_build_matches_the_stack_file() -> None:
    build = model("prod", "embeddings").image.build
    assert build is not None
    assert (build.push, build.registry_server, build.registry_username) == (
        True,
        "registry.example.com",
        "model-serving-ci",
    )
    assert build.context == "app"
    assert build.dockerfile == "app/Dockerfile"
