"""imageLock: a JSON file mapping image references as the config writes them to digest-pinned ones.

The checks and the pinning are pure (``components.config.image_lock``); the program reads the file, relative to
the project directory as it does the kubeconfig, and stops with one message naming ``imageLock``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.config import ConfigError
from components.config.image_lock import is_pinned, parse_image_lock, pin_images
from tests.harness import TEST_IMAGE_LOCK, run_stack, run_stack_failure, stack_config
from tests.unit.mocking import typed

LOCAL_REF = "model-serving/server:local"
PINNED = "docker.io/model-serving/server@sha256:" + "e" * 64
DIGEST = "@sha256:" + "a" * 64


# --- pure: the file's content ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [
        (PINNED, True),
        ("registry.example.com:5000/team/server:1.0" + DIGEST, True),  # a tag beside the digest is fine
        ("model-serving/server:local", False),
        ("model-serving/server@sha256:" + "a" * 63, False),
        ("model-serving/server@sha256:" + "A" * 64, False),
        ("model-serving/server@sha512:" + "a" * 128, False),
        ("not a ref" + DIGEST, False),
    ],
)
def test_only_a_sha256_digest_pins_an_image(ref: str, pinned: bool) -> None:
    assert is_pinned(ref) is pinned


def test_a_lock_of_pinned_references_is_read_as_is() -> None:
    lock = {LOCAL_REF: PINNED, "other:1": "other" + DIGEST}
    assert parse_image_lock(lock, "images.json") == lock
    assert parse_image_lock({}, "images.json") == {}


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ([LOCAL_REF, PINNED], "must be a JSON object of image references to pinned ones (images.json holds a list)"),
        ("images", "(images.json holds a string)"),
        (None, "(images.json holds nothing)"),
        ({LOCAL_REF: 1}, f"must map each image reference to a string ({LOCAL_REF!r} maps to 1)"),
        ({LOCAL_REF: {"digest": "x"}}, "must map each image reference to a string"),
        ({LOCAL_REF: "model-serving/server:1.0"}, "must pin every image by digest, <repository>@sha256:<64 hex>"),
        ({LOCAL_REF: "sha256:" + "a" * 64}, f"({LOCAL_REF!r} maps to 'sha256:"),
    ],
)
def test_a_lock_that_is_not_an_object_of_pinned_references_is_a_mistake_naming_image_lock(data: Any, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_image_lock(data, "images.json")
    assert caught.value.path == "imageLock"
    assert str(caught.value).startswith("imageLock ")
    assert text in str(caught.value)


def test_every_unpinned_entry_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_image_lock({"a:1": "a:1", "b:1": "b" + DIGEST, "c:1": 3}, "images.json")
    assert [p.path for p in caught.value.problems] == ["imageLock", "imageLock"]
    assert "'a:1' maps to 'a:1'" in str(caught.value) and "'c:1' maps to 3" in str(caught.value)


# --- pure: pinning the stack ----------------------------------------------------------------------


def test_refs_in_the_lock_are_pinned_and_the_others_stay_as_written() -> None:
    stack = typed("e2e")  # models with prebuilt refs
    llama, embeddings, reranker, llama_70b = (m.image.ref for m in stack.models)
    assert llama is not None and embeddings is not None and embeddings == reranker
    assert llama_70b is not None and llama_70b != embeddings
    pinned = pin_images(stack, {embeddings: PINNED, "unused:1": "unused" + DIGEST})
    assert [m.image.ref for m in pinned.models] == [llama, PINNED, PINNED, llama_70b]
    assert pinned.models[0] is stack.models[0] and pinned.models[3] is stack.models[3]
    assert pinned.models[1].image.build is None
    assert pinned.models[1].name == "embeddings" and pinned.gpu_pool == stack.gpu_pool


def test_the_lock_pins_the_pre_stage_image() -> None:
    staging = "registry.example.com/tools/hub-download:1.0"
    stack = typed("e2e", {"models[0].modelCache.prestageImage": staging})
    pinned = pin_images(stack, {staging: PINNED})
    assert pinned.models[0].cache.prestage_image == PINNED and pinned.models[0].image == stack.models[0].image


def test_a_model_that_builds_its_image_is_left_alone() -> None:
    stack = typed("dev")
    assert stack.models[0].image.build is not None
    assert pin_images(stack, {stack.models[0].image.build.image_name: PINNED}) == stack


def test_the_lock_pins_the_reference_the_image_override_sets() -> None:
    override = "registry.example.com/model-serving/server:9.9.9"
    stack = typed("dev", {"imageRefOverride": override})
    assert [m.image.ref for m in pin_images(stack, {override: PINNED}).models] == [PINNED]


def test_parsing_reads_no_file() -> None:
    """The config only names the lock: it is read by the program, so the pure config stays pure."""
    stack = typed("local", {"imageLock": "no/such/file.json"})
    assert stack.image_lock == "no/such/file.json"
    assert stack.models[0].image.ref == LOCAL_REF


# --- the program reads the file -------------------------------------------------------------------


def _lock(path: Path, content: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_the_local_stack_deploys_the_locked_reference(tmp_path: Path) -> None:
    lock = _lock(tmp_path / "images.json", {LOCAL_REF: PINNED})
    run = run_stack("local", overrides={"imageLock": lock})
    assert run.outputs["minilm_image_ref"] == PINNED
    pod = run.one("kubernetes:apps/v1:Deployment", "minilm").inputs["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == PINNED


def test_the_harness_never_reads_the_local_clusters_lock() -> None:
    """The local stack's own imageLock (.cluster/images.json) reads the harness's TEST_IMAGE_LOCK in the tests."""
    assert stack_config("local")["model-serving:imageLock"] == ".cluster/images.json"
    assert run_stack("local").outputs["minilm_image_ref"] == TEST_IMAGE_LOCK[LOCAL_REF]


def test_a_ref_the_lock_lacks_stays_as_written(tmp_path: Path) -> None:
    lock = _lock(tmp_path / "images.json", {"something/else:1": PINNED})
    run = run_stack("local", overrides={"imageLock": lock})
    assert run.outputs["minilm_image_ref"] == LOCAL_REF


def test_a_relative_lock_path_is_relative_to_the_project_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As kubeconfig is: Pulumi runs the program in the project directory."""
    _lock(tmp_path / "locks" / "images.json", {LOCAL_REF: PINNED})
    monkeypatch.chdir(tmp_path)
    run = run_stack("local", overrides={"imageLock": "locks/images.json"})
    assert run.outputs["minilm_image_ref"] == PINNED


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (None, "must name an existing file: {lock} does not exist (make cluster-up writes .cluster/images.json"),
        ("{not json", "must be a JSON file ({lock}: Expecting property name"),
        ([PINNED], "must be a JSON object of image references to pinned ones ({lock} holds a list)"),
        ({LOCAL_REF: None}, "must map each image reference to a string"),
        ({LOCAL_REF: "model-serving/server:local"}, "must pin every image by digest"),
    ],
    ids=["missing", "not-json", "a-list", "a-null", "not-pinned"],
)
def test_a_bad_lock_stops_the_program_with_one_message_naming_image_lock(
    tmp_path: Path, content: Any, text: str
) -> None:
    path = tmp_path / "images.json"
    lock = str(path) if content is None else _lock(path, content)
    failure = run_stack_failure("local", overrides={"imageLock": lock})
    assert type(failure.error) is pulumi.RunError
    message = str(failure.error)
    assert message.startswith("invalid stack config: model-serving:imageLock "), message
    assert text.format(lock=lock) in message, message
    assert "\n" not in message
    assert failure.resources == [] and failure.logged_errors == []


def test_a_lock_that_is_a_directory_is_a_mistake_naming_image_lock(tmp_path: Path) -> None:
    failure = run_stack_failure("local", overrides={"imageLock": str(tmp_path)})
    assert str(failure.error).startswith("invalid stack config: model-serving:imageLock must be a readable text file")
    assert failure.resources == []
