"""The policy pack's generated settings (``policy/config/<stack>.json``) and kinds: derived from each stack's config
and the facts declared once on the program's side, current, and in agreement with what the program registers."""

from __future__ import annotations

import ast
from functools import cache
from typing import Any

import pytest

from components.config import docs as config_docs
from components.config import policy_settings
from components.config.policy_facts import KINDS, NODE_AGENTS
from tests.harness import ROOT, STACKS, Run, run_stack
from tests.unit.mocking import DELETE, typed

GPU_MODEL = {
    "name": "llm",
    "engine": "vllm",
    "modelId": "org/llm",
    "image": {"ref": "registry.example.com/vllm:1@sha256:" + "a" * 64},
    "resources": {"cpu": "4", "memory": "32Gi", "gpus": 1},
    "probes": {"modelLoadSeconds": 900},
}


@cache
def _run(stack: str) -> Run:
    return run_stack(stack)


# --- generated, not copied -------------------------------------------------------------------------------------


def test_the_generated_policy_files_are_current() -> None:
    generated = policy_settings.outputs(config_docs.COMMAND)
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run {config_docs.COMMAND}"
    assert set(generated) <= set(config_docs.outputs()), "docs.py writes and checks them with the reference"
    assert not set(generated) & set(config_docs.stale())


def test_every_stack_and_only_those_has_generated_settings() -> None:
    files = sorted(p.stem for p in (ROOT / "policy" / "config").glob("*.json"))
    assert files == STACKS == sorted(policy_settings.stack_files())


def test_a_stale_settings_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The check compares what it would write with the file: a hand edit (or a stack change) shows."""
    monkeypatch.setattr(policy_settings, "POLICY_CONFIG", tmp_path)
    for path, text in policy_settings.outputs(config_docs.COMMAND).items():
        if path.parent == tmp_path:
            path.write_text(text)
    (tmp_path / "local.json").write_text('{"gpu-budget": {"gpuBudget": 1}}\n')
    assert [p for p in config_docs.stale() if p.parent == tmp_path] == [tmp_path / "local.json"]


# --- derivation ----------------------------------------------------------------------------------------------


def test_a_stack_without_gpus_gets_no_budget_and_no_exemptions() -> None:
    stack = typed("render")
    assert not stack.needs_gpu_pool and stack.gpu_pool.gpu_budget is None
    assert policy_settings.settings(stack) == {
        "container-images": {"requireDigest": False},
        "model-revision": {"enforcementLevel": "advisory"},
    }


def test_a_cpu_stack_keeps_its_budget_but_registers_no_node_agents() -> None:
    """dev states a budget for GPUs it does not use yet; its pool (and so its DaemonSets) is not registered."""
    found = policy_settings.settings(typed("dev"))
    assert found["gpu-budget"] == {"gpuBudget": 2}
    assert "pod-security" not in found and "gpu-scheduling" not in found and "gpu-probes" not in found


def test_a_gpu_stack_without_karpenter_states_its_budget_and_exempts_its_agents() -> None:
    stack = typed(
        "render",
        {
            "models[0]": GPU_MODEL,
            "gpuPool.gpuBudget": 3,
            "gpuPool.devicePlugin.namespace": "gpu-plugin",
            "gpuPool.dcgmExporter.enabled": True,
        },
    )
    found = policy_settings.settings(stack)
    assert found["gpu-budget"] == {"gpuBudget": 3}
    assert found["gpu-probes"] == {"modelLoadSeconds": 900}
    for rule in ("pod-security", "gpu-scheduling"):
        targets = [(e["kind"], e["namespace"], e["name"]) for e in found[rule]["exemptions"]]
        assert targets == [
            ("DaemonSet", "gpu-plugin", "nvidia-device-plugin"),
            ("DaemonSet", "nvidia-dcgm-exporter", "dcgm-exporter"),
        ]
        assert all(e["reason"] for e in found[rule]["exemptions"])


def test_an_agent_the_pool_does_not_deploy_is_not_exempted() -> None:
    stack = typed("render", {"models[0]": GPU_MODEL, "gpuPool.gpuBudget": 1, "gpuPool.devicePlugin.enabled": False})
    found = policy_settings.settings(stack)
    assert "pod-security" not in found and "gpu-scheduling" not in found


def test_a_karpenter_stack_leaves_the_budget_to_its_node_pool() -> None:
    """The NodePool's GPU limit is gpuBudget, and the rule reads it there: a configured budget would override it."""
    stack = typed("prod")
    assert stack.gpu_pool.karpenter is not None and stack.gpu_pool.gpu_budget == 8
    assert "gpu-budget" not in policy_settings.settings(stack)


def test_the_load_budget_is_the_shortest_of_the_gpu_models() -> None:
    assert policy_settings.settings(typed("prod"))["gpu-probes"] == {"modelLoadSeconds": 1800}
    edited = typed("prod", {"models[0].probes.modelLoadSeconds": 700, "models[1].probes.modelLoadSeconds": 60})
    assert policy_settings.settings(edited)["gpu-probes"] == {"modelLoadSeconds": 700}, "models[1] runs on CPU"


def test_the_policy_block_sets_how_strictly_the_stack_is_checked() -> None:
    assert policy_settings.settings(typed("prod"))["model-revision"] == {"enforcementLevel": "mandatory"}
    assert policy_settings.settings(typed("prod"))["container-images"] == {"requireDigest": True}
    defaults = policy_settings.settings(typed("render", {"policy": DELETE}))
    assert defaults["container-images"] == {"requireDigest": True}, "secure by default: a stack opts out"
    assert defaults["model-revision"] == {"enforcementLevel": "advisory"}


def test_a_deliberate_exemption_is_written_in_the_stack_config_with_its_reason() -> None:
    exemption = {"rule": "pod-security", "namespace": "tools", "name": "debug-*", "reason": "a debug shell, by hand"}
    found = policy_settings.settings(typed("prod", {"policy.exemptions": [exemption]}))
    assert found["pod-security"]["exemptions"][-1] == {
        "namespace": "tools",
        "name": "debug-*",
        "reason": exemption["reason"],
    }
    assert len(found["pod-security"]["exemptions"]) == 3, "after the GPU pool's two node agents"


def test_each_reason_is_written_once_in_the_source() -> None:
    """In components/config/policy_facts.py, and nowhere else a human edits (the JSON files are generated)."""
    sources = [
        p
        for pattern in ("components/**/*.py", "policy/**/*.py", "stacks/*.yaml", "tests/**/*.py", "docs/*.md")
        for p in ROOT.glob(pattern)
    ]
    for agent in NODE_AGENTS:
        for reason in agent.reasons.values():
            words = " ".join(reason.split()[:6])  # on one line of the source
            holders = [p.relative_to(ROOT).as_posix() for p in sources if words in p.read_text()]
            assert holders == ["components/config/policy_facts.py"], (words, holders)


# --- agreement with the program --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_exemptions_name_exactly_the_daemon_sets_the_stack_registers(stack: str) -> None:
    found = policy_settings.settings(policy_settings.read_stack(policy_settings.stack_files()[stack]))
    registered = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
        for r in _run(stack).of_type("kubernetes:apps/v1:DaemonSet")
    }
    for rule in ("pod-security", "gpu-scheduling"):
        exempted = {(e["namespace"], e["name"]) for e in found.get(rule, {}).get("exemptions", [])}
        assert exempted == registered, (stack, rule)


def test_every_kind_the_shipped_stacks_register_is_declared() -> None:
    """A builder of a new kind declares it in KINDS (the pack's generated list follows); none is declared in vain."""
    emitted: set[tuple[str, str, bool]] = set()
    for stack in STACKS:
        for r in _run(stack).kubernetes_objects():
            group_version, kind = r.type.split(":")[1:]
            api_version = group_version.removeprefix("core/")
            emitted.add((api_version, kind, bool(r.inputs["metadata"].get("namespace"))))
    declared = {(k.api_version, k.kind, k.namespaced) for k in KINDS}
    assert emitted - declared == set(), "declare them in components/config/policy_facts.py (KINDS)"
    assert declared - emitted == set(), "no shipped stack registers these: remove them, or ship a stack that does"


def test_the_pack_checks_the_namespace_of_every_namespaced_kind_the_program_emits() -> None:
    from model_serving_policy.rules.namespaces import NAMESPACED_KINDS

    assert {k.kind for k in KINDS if k.namespaced} <= set(NAMESPACED_KINDS)
    assert not {k.kind for k in KINDS if not k.namespaced} & set(NAMESPACED_KINDS)


def test_the_pack_imports_nothing_from_components() -> None:
    for path in (ROOT / "policy").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(n == "components" or n.startswith("components.") for n in names), path
