"""The policy pack's generated inputs: each stack's settings (``policy/config/<stack>.json``, the file ``make`` passes
as ``--policy-pack-config``) and the kinds the program emits (``policy/model_serving_policy/kinds.py``).

:mod:`.docs` writes them with the config reference (``python -m components.config.docs --write``) and reports them
stale as it does the reference. Every setting comes from a fact declared once:

- ``container-images.requireDigest``, ``model-revision``'s level and deliberate exemptions: the stack's ``policy``
  block (:mod:`.policy_config`), which says how strictly the stack is checked;
- ``pod-security`` and ``gpu-scheduling`` exemptions: one per node agent DaemonSet the stack's GPU pool registers
  (the pool when :attr:`~StackConfig.needs_gpu_pool`, each agent when enabled, in the namespace its block names),
  each with the reason :mod:`.policy_facts` states for that rule (before the ``policy`` block's own);
- ``gpu-probes.modelLoadSeconds``: the shortest ``probes.modelLoadSeconds`` of the stack's GPU models, which every
  GPU container's startup probe must then cover (no GPU model: the pack's default, which checks nothing here);
- ``gpu-budget.gpuBudget``: ``gpuPool.gpuBudget`` where the stack sets one and has no Karpenter NodePool (a NodePool
  carries the same number as its GPU limit, which the rule reads; a configured budget would hide it).

A stack is read from its file alone (no ``imageLock``, no secrets, nothing outside git).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.config import StackConfig, parse_stack_config, stack_file_config
from components.config.policy_facts import DCGM_EXPORTER, DEVICE_PLUGIN, KINDS, NodeAgent
from components.specs import DCGM_EXPORTER_NAME, DEVICE_PLUGIN_NAME  # the DaemonSets' names, as the builders write them

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
POLICY_CONFIG = ROOT / "policy" / "config"
POLICY_KINDS = ROOT / "policy" / "model_serving_policy" / "kinds.py"


def stack_files() -> dict[str, Path]:
    """Every stack file in ``stacks/`` by stack name."""
    return {p.name.removeprefix("Pulumi.").removesuffix(".yaml"): p for p in sorted(STACKS.glob("Pulumi.*.yaml"))}


def read_stack(path: Path) -> StackConfig:
    """The stack's config as the program reads it, from its file alone: its secrets count as set (they live in the
    file only encrypted, or per checkout), and ``imageLock`` is not read (it pins images, which no setting uses)."""
    return parse_stack_config(stack_file_config(path), has_hub_token=True, has_registry_password=True)


def node_agents(stack: StackConfig) -> Iterator[tuple[NodeAgent, str, str]]:
    """The node agent DaemonSets the stack registers, as the GPU pool's plan decides: (agent, namespace, name)."""
    if not stack.needs_gpu_pool:
        return
    pool = stack.gpu_pool
    if pool.device_plugin.enabled:
        yield DEVICE_PLUGIN, pool.device_plugin.namespace, DEVICE_PLUGIN_NAME
    if pool.dcgm_exporter.enabled:
        yield DCGM_EXPORTER, pool.dcgm_exporter.namespace, DCGM_EXPORTER_NAME


def settings(stack: StackConfig) -> dict[str, dict[str, Any]]:
    """The ``--policy-pack-config`` document of a stack: rule -> its settings (module docstring)."""
    found: dict[str, dict[str, Any]] = {
        "container-images": {"requireDigest": stack.policy.require_digest},
        "model-revision": {"enforcementLevel": stack.policy.model_revision},
    }
    for agent, namespace, name in node_agents(stack):
        for rule, reason in agent.reasons.items():
            exemption = {"kind": "DaemonSet", "namespace": namespace, "name": name, "reason": reason}
            found.setdefault(rule, {"exemptions": []})["exemptions"].append(exemption)
    for given in stack.policy.exemptions:
        exemption = {"namespace": given.namespace, "name": given.name, "reason": given.reason}
        if given.kind is not None:
            exemption["kind"] = given.kind
        found.setdefault(given.rule, {"exemptions": []})["exemptions"].append(exemption)
    gpu_models = [m for m in stack.models if m.resources.gpus > 0]
    if gpu_models:
        found["gpu-probes"] = {"modelLoadSeconds": min(m.probes.model_load_seconds for m in gpu_models)}
    if stack.gpu_pool.gpu_budget is not None and stack.gpu_pool.karpenter is None:
        found["gpu-budget"] = {"gpuBudget": stack.gpu_pool.gpu_budget}
    return found


def settings_json(stack: StackConfig) -> str:
    return json.dumps(settings(stack), indent=2, sort_keys=True) + "\n"


def pack_kinds(command: str) -> str:
    """The namespaced kinds the program emits, as the policy pack imports them."""
    namespaced = sorted({k.kind for k in KINDS if k.namespaced})
    lines = [
        f'"""Generated from components/config/policy_facts.py by ``{command}`` (do not edit).',
        "",
        "The namespaced Kubernetes kinds the model-serving program emits: ``no-default-namespace`` checks each of them",
        "(beside the kinds any stack may hold).",
        '"""',
        "",
        "NAMESPACED_KINDS: tuple[str, ...] = (",
        *(f"    {json.dumps(kind)}," for kind in namespaced),
        ")",
    ]
    return "\n".join(lines) + "\n"


def outputs(command: str) -> dict[Path, str]:
    """Every file generated for the pack: path -> text."""
    files = {POLICY_KINDS: pack_kinds(command)}
    for name, path in stack_files().items():
        files[POLICY_CONFIG / f"{name}.json"] = settings_json(read_stack(path))
    return files
