"""The config schema as a whole: generated references that stay current, engines that say what they need,
container patches that cannot strip the container, and every mistake of a stack reported at once."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest

from components.config import ENGINES, ConfigError, GpuPoolConfig, ModelConfig, StackConfig, parse_stack_config
from components.config import docs as config_docs
from components.config.declare import EMPTY, REQUIRED, Block, BlockList, Derived
from components.config.errors import Problems
from components.config.kinds import INVALID
from tests.harness import STACKS, run_stack_failure
from tests.unit.mocking import DELETE, model, raw_config, stack_values, typed

# --- generated from the schema ---------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(config_docs.outputs()), ids=lambda p: p.name)
def test_the_generated_files_are_current(path: Any) -> None:
    assert path.read_text() == config_docs.outputs()[path], f"run: {config_docs.COMMAND}"
    assert config_docs.main([]) == 0


def test_the_reference_lists_every_key_with_its_declared_default() -> None:
    text = config_docs.CONFIG_MD.read_text().split("## `models[i]`")[1]
    for path, k in config_docs.rows(ModelConfig):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{path}` |"))
        assert config_docs.default_text(k).replace("|", "\\|") in row, path
    assert "| `maxSurge` |" not in text, "rows name the whole path under their table"
    assert "| `rollout.maxSurge` | int 0–100 | `0` |" in text


@pytest.mark.parametrize("top", [StackConfig, GpuPoolConfig, ModelConfig], ids=lambda c: c.__name__)
def test_every_key_is_documented_and_every_default_is_a_value_of_its_kind(top: type) -> None:
    for path, k in config_docs.rows(top):
        assert k.doc, path
        if k.default in (REQUIRED, EMPTY, None) or isinstance(k.default, Derived) or isinstance(k.kind, Block):
            continue
        if isinstance(k.kind, BlockList):  # read by the reader (its items are blocks): only an empty default
            assert k.default == () and k.kind.may_be_empty, path
            continue
        problems = Problems()
        value = list(k.default) if isinstance(k.default, tuple) else k.default
        assert k.kind.read(value, path, problems) is not INVALID, problems.found


# --- engines (issue 12, item 2) ------------------------------------------------------------------


def test_a_cpu_engine_that_asks_for_gpus_is_a_mistake_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        typed("render", {"models[0].resources.gpus": 1})
    assert str(caught.value) == "models[0].resources.gpus must be 0: engine server runs on CPU only (got 1)"


def test_a_gpu_engine_needs_a_gpu() -> None:
    with pytest.raises(ConfigError) as caught:
        typed("prod", {"models[0].architecture": DELETE, "models[0].resources.gpus": 0})
    assert caught.value.path == "models[0].resources.gpus"
    assert "engine vllm serves on GPUs" in str(caught.value)


def test_architecture_sizes_gpu_engines_only() -> None:
    with pytest.raises(ConfigError) as caught:
        typed(
            "render",
            {"models[0].architecture": {"params": 1e8, "layers": 6, "heads": 12, "kvHeads": 12, "headDim": 32}},
        )
    assert caught.value.path == "models[0].architecture"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_gpus_default_to_what_the_engine_uses(engine: str) -> None:
    m = model("render", edits={"models[0].engine": engine})
    assert m.resources.gpus == (1 if ENGINES[engine].uses_gpus else 0)


@pytest.mark.parametrize("stack", STACKS)
def test_no_shipped_stack_gives_a_cpu_engine_a_gpu(stack: str) -> None:
    for m in typed(stack).models:
        if not m.engine_spec.uses_gpus:
            assert m.resources.gpus == 0, (stack, m.name)


def test_autoscaling_defaults_follow_the_engine() -> None:
    server = model("dev", edits={"models[0].autoscaling.metric": DELETE})
    assert server.autoscaling is not None
    assert (server.autoscaling.metric.type, server.autoscaling.metric.target_utilization) == ("cpu", 70)
    llama = model("prod", "llama-3-1-8b", edits={"models[0].autoscaling.metric": DELETE})
    assert llama.autoscaling is not None
    metric = llama.autoscaling.metric
    assert (metric.type, metric.name, metric.target_average_value) == ("pods", "vllm:num_requests_waiting", "5")


def test_probe_budgets_follow_the_engine() -> None:
    for engine, spec in ENGINES.items():
        m = model("render", edits={"models[0].engine": engine, "models[0].probes": DELETE})
        assert m.probes.model_load_seconds == spec.model_load_seconds
        assert m.port == spec.port


# --- container patches (issue 12, item 4b) --------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"resources": None}, "resources"),
        ({"resources": {"limits": {"memory": None}}}, "resources.limits.memory"),
        ({"resources": {"requests": None}}, "resources.requests"),
        ({"resources": "small"}, "resources"),
        ({"startupProbe": None}, "startupProbe"),
        ({"livenessProbe": {"httpGet": None}}, "livenessProbe.httpGet"),
        ({"readinessProbe": None}, "readinessProbe"),
        ({"securityContext": None}, "securityContext"),
        ({"securityContext": {"capabilities": None}}, "securityContext.capabilities"),
    ],
)
def test_a_patch_cannot_remove_resources_probes_or_the_security_context(patch: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        typed("render", {"models[0].containerPatch": patch})
    assert caught.value.path == f"models[0].containerPatch.{key}"
    assert "resources, probes and security context" in str(caught.value)


def test_a_patch_may_still_change_them_and_remove_anything_else() -> None:
    patch = {
        "resources": {"limits": {"memory": "6Gi"}, "requests": {"memory": "6Gi"}},
        "securityContext": {"runAsUser": 10002},
        "livenessProbe": {"periodSeconds": 30},
        "lifecycle": None,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    assert model("render", edits={"models[0].containerPatch": patch}).container_patch == patch


# --- every mistake at once (issue 12, item 9) -----------------------------------------------------

SEVERAL = {
    "namespace": "Prod",  # a key
    "gpuPool.taint.effect": "NoScheduel",  # a key in a nested object
    "gpuPool.gpuBugdet": 2,  # an unknown key
    "models[0].autoscaling.minReplicas": 5,  # a rule within a block (min > max)
    "models[1].replicas": "two",  # a key of another model
    "models[1].resources.gpus": 2,  # a rule across the model (the server engine is CPU only)
    "models[1].service.sourceRanges": ["10.0.0.0/33"],  # a list item
}
SEVERAL_KEYS = [
    "namespace",
    "gpuPool.gpuBugdet",
    "gpuPool.taint.effect",
    "models[0].autoscaling.maxReplicas",
    "models[1].replicas",
    "models[1].resources.gpus",  # reported beside the model's key mistakes, not after they are fixed
    "models[1].service.sourceRanges[0]",
]


def test_every_mistake_is_reported_at_once_each_naming_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        typed("prod", SEVERAL)
    paths = [p.path for p in caught.value.problems]
    assert sorted(paths) == sorted(SEVERAL_KEYS), paths
    lines = str(caught.value).splitlines()
    assert [line.split(" ")[0] for line in lines] == paths
    assert caught.value.path == paths[0]


def test_one_model_with_key_rule_and_cross_field_mistakes_gets_them_all_in_one_run() -> None:
    """A new model's three mistakes at once: a rule of its autoscaler, a key of its Service, and a rule across the
    model that needs neither (GPUs on a CPU engine). A rule reading a wrong key is skipped, not the others."""
    edits = {
        "models[1].autoscaling.minReplicas": 5,
        "models[1].service.sourceRanges": ["10.0.0.0/33"],
        "models[1].resources.gpus": 1,
    }
    with pytest.raises(ConfigError) as caught:
        typed("prod", edits)
    assert [p.path for p in caught.value.problems] == [
        "models[1].autoscaling.maxReplicas",
        "models[1].service.sourceRanges[0]",
        "models[1].resources.gpus",
    ]


def test_a_rule_that_reads_a_wrong_key_is_skipped_not_misreported() -> None:
    # engine_gpus needs the engine: with the engine wrong it says nothing of the GPUs.
    with pytest.raises(ConfigError) as caught:
        typed("prod", {"models[1].engine": "tgi", "models[1].resources.gpus": 1})
    assert [p.path for p in caught.value.problems] == ["models[1].engine"]


def test_a_rule_of_a_valid_model_is_reported_beside_another_models_mistakes() -> None:
    edits = {"models[0].rollout": {"maxSurge": 0, "maxUnavailable": 0}, "models[1].resources.gpus": 1}
    with pytest.raises(ConfigError) as caught:
        typed("prod", edits)
    assert [p.path for p in caught.value.problems] == [
        "models[0].rollout.maxUnavailable",
        "models[1].resources.gpus",
    ]


def test_stack_rules_see_the_valid_models_when_another_is_wrong() -> None:
    raw = raw_config("prod", {"models[0].port": 0, "models[1].namespace": "nvidia-device-plugin"})
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, has_hub_token=True, has_registry_password=False)
    assert [p.path for p in caught.value.problems] == [
        "models[0].port",
        "models[1].namespace",
        "models[1].image.build.registry",
    ]


def test_the_program_stops_with_one_message_listing_every_mistake() -> None:
    failure = run_stack_failure("prod", config=stack_values("prod", SEVERAL))
    assert type(failure.error) is pulumi.RunError
    message = str(failure.error)
    head, *lines = message.splitlines()
    assert head == f"invalid stack config: {len(SEVERAL_KEYS)} mistakes:"
    named = [re.match(r"^  model-serving:(\S+) ", line) for line in lines]
    assert all(named), message
    assert sorted(m[1] for m in named if m) == sorted(SEVERAL_KEYS)
    assert failure.resources == []


def test_a_wrong_value_does_not_cascade_into_the_keys_that_derive_from_it() -> None:
    """An unknown engine leaves port, probes, GPUs and metric unknown: one mistake, one line."""
    with pytest.raises(ConfigError) as caught:
        typed("prod", {"models[0].engine": "tgi", "models[1].name": "Embeddings"})
    assert [p.path for p in caught.value.problems] == ["models[0].engine", "models[1].name"]
