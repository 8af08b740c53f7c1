"""Config mistakes stop the whole program with one message naming the key, before any resource exists."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import ConfigError, parse_stack_config
from tests.harness import STACKS, TEST_SECRETS, Failure, run_stack_failure
from tests.unit.mocking import DELETE, edit, raw_config, stack_values, typed

LLAMA_70B = {"params": 70.6e9, "layers": 80, "heads": 64, "kvHeads": 8, "headDim": 128}
HUB_ONLY = {"hubToken": TEST_SECRETS["hubToken"]}
REGISTRY_ONLY = {"registryPassword": TEST_SECRETS["registryPassword"]}


def _peak_gpus(stack: str, edits: dict[str, Any] | None = None) -> int:
    """The GPUs the stack's models may hold at once (what the gpuBudget check compares with the budget), read
    with a budget that holds them all."""
    return sum(m.peak_gpus for m in typed(stack, {**(edits or {}), "gpuPool.gpuBudget": 10_000}).models)


def _peak_without_canaries(stack: str) -> int:
    return _peak_gpus(stack) - sum(
        (m.canary.replicas + m.rollout.max_surge) * m.resources.gpus for m in typed(stack).models if m.canary
    )


SURGE = {"models[0].rollout.maxSurge": 1}
# A budget that holds the e2e models at peak but not their canaries.
E2E_STABLE_PEAK = _peak_without_canaries("e2e")


@dataclass(frozen=True)
class Mistake:
    id: str
    stack: str
    edits: dict[str, Any]
    key: str  # the key path the message must name first, after "model-serving:"
    secrets: dict[str, str] | None = None  # set as secrets; None means both test secrets
    plain: dict[str, Any] = field(default_factory=dict)  # set as plain (non-secret) config
    also: tuple[str, ...] = ()  # more text the message must contain


MISTAKES = [
    # llama.cpp (local's models[1], gemma): CPU only, a baked GGUF, its own settings
    Mistake("llamacpp-with-a-gpu", "local", {"models[1].resources.gpus": 1}, "models[1].resources.gpus"),
    Mistake("llamacpp-without-model-dir", "local", {"models[1].modelDir": DELETE}, "models[1].modelDir"),
    Mistake("llamacpp-settings-on-server", "local", {"models[0].llamacpp": {"parallel": 2}}, "models[0].llamacpp"),
    Mistake("llamacpp-gguf-without-shape", "local", {"models[1].architecture": DELETE}, "models[1].architecture"),
    Mistake("llamacpp-no-slot", "local", {"models[1].llamacpp.parallel": 0}, "models[1].llamacpp.parallel"),
    # wrong types
    Mistake("replicas-a-word", "render", {"models[0].replicas": "two"}, "models[0].replicas"),
    Mistake("replicas-a-boolean", "render", {"models[0].replicas": True}, "models[0].replicas"),
    Mistake("hub-token-flag-a-word", "render", {"models[0].hubToken": "yes"}, "models[0].hubToken"),
    Mistake("cpu-a-float", "render", {"models[0].resources.cpu": 0.5}, "models[0].resources.cpu"),
    Mistake("memory-not-a-quantity", "render", {"models[0].resources.memory": "16GB"}, "models[0].resources.memory"),
    Mistake("memory-nan", "render", {"models[0].resources.memory": "NaN"}, "models[0].resources.memory"),
    Mistake("shm-infinite", "render", {"models[0].shmSize": "Infinity"}, "models[0].shmSize"),
    Mistake("pool-a-list", "render", {"gpuPool": ["gpu"]}, "gpuPool"),
    Mistake("models-an-object", "render", {"models": {"name": "minilm"}}, "models"),
    Mistake("models-not-json", "render", {"models": "[oops"}, "models", also=("not valid JSON",)),
    Mistake("env-value-a-number", "render", {"models[0].env": {"WORKERS": 4}}, "models[0].env.WORKERS"),
    Mistake(
        "cache-outgrows-ephemeral-storage",
        "render",
        {"models[0].modelCache.size": "30Gi"},
        "models[0].resources.ephemeralStorage",
        also=("30Gi",),
    ),
    Mistake("resources-a-list", "render", {"models[0].resources": []}, "models[0].resources"),
    Mistake("autoscaling-false", "dev", {"models[0].autoscaling": False}, "models[0].autoscaling"),
    Mistake(
        "disruption-budget-over-100",
        "prod",
        {"gpuPool.karpenter.disruptionBudgetNodes": "500%"},
        "gpuPool.karpenter.disruptionBudgetNodes",
    ),
    # negatives and ranges
    Mistake("gpus-negative", "render", {"models[0].resources.gpus": -1}, "models[0].resources.gpus", also=("-1",)),
    Mistake("gpus-fractional", "render", {"models[0].resources.gpus": 0.5}, "models[0].resources.gpus", also=("0.5",)),
    Mistake("cpu-negative", "render", {"models[0].resources.cpu": "-2"}, "models[0].resources.cpu"),
    Mistake("service-port-too-high", "render", {"models[0].service.port": 70000}, "models[0].service.port"),
    Mistake("container-port-zero", "render", {"models[0].port": 0}, "models[0].port"),
    Mistake(
        "load-time-too-short", "render", {"models[0].probes.modelLoadSeconds": 5}, "models[0].probes.modelLoadSeconds"
    ),
    Mistake(
        "no-time-slicing",
        "render",
        {"gpuPool.devicePlugin.timeSlicingReplicas": 0},
        "gpuPool.devicePlugin.timeSlicingReplicas",
    ),
    Mistake(
        "min-above-max",
        "dev",
        {"models[0].autoscaling.minReplicas": 3},
        "models[0].autoscaling.maxReplicas",
        also=("must be >= minReplicas (got 2 < 3)",),
    ),
    Mistake("max-replicas-zero", "dev", {"models[0].autoscaling.maxReplicas": 0}, "models[0].autoscaling.maxReplicas"),
    # names
    Mistake("engine-unknown", "render", {"models[0].engine": "tgi"}, "models[0].engine", also=("server, vllm",)),
    Mistake("name-underscore", "render", {"models[0].name": "mini_lm"}, "models[0].name", also=("'mini_lm'",)),
    Mistake("name-capitals", "render", {"models[0].name": "MiniLM"}, "models[0].name"),
    Mistake("name-too-long", "render", {"models[0].name": "m" * 64}, "models[0].name"),
    Mistake("name-duplicate", "prod", {"models[1].name": "llama-3-1-8b"}, "models[1].name", also=("models[0].name",)),
    Mistake("model-id-missing", "render", {"models[0].modelId": DELETE}, "models[0].modelId"),
    Mistake("env-name-dash", "render", {"models[0].env": {"MY-VAR": "1"}}, "models[0].env.MY-VAR"),
    Mistake("env-name-digit", "render", {"models[0].env": {"1VAR": "1"}}, "models[0].env.1VAR"),
    # images
    Mistake("image-missing", "render", {"models[0].image": {}}, "models[0].image", also=("exactly one of ref",)),
    Mistake(
        "image-ref-and-build",
        "render",
        {"models[0].image.build": {"imageName": "registry.example.com/model-serving/server:0.2.0"}},
        "models[0].image",
    ),
    Mistake(
        "image-latest",
        "render",
        {"models[0].image.ref": "registry.example.com/model-serving/server:latest"},
        "models[0].image.ref",
    ),
    Mistake(
        "image-untagged",
        "render",
        {"models[0].image.ref": "registry.example.com/model-serving/server"},
        "models[0].image.ref",
    ),
    Mistake(
        "build-latest",
        "dev",
        {"models[0].image.build.imageName": "registry.dev.example.com/model-serving/server:latest"},
        "models[0].image.build.imageName",
    ),
    Mistake(
        "push-without-registry",
        "dev",
        {"models[0].image.build.registry": None},
        "models[0].image.build.registry.server",
    ),
    Mistake(
        "device-plugin-latest",
        "render",
        {"gpuPool.devicePlugin.image": "nvcr.io/nvidia/k8s-device-plugin:latest"},
        "gpuPool.devicePlugin.image",
    ),
    Mistake(
        "patch-the-image", "render", {"models[0].containerPatch": {"image": "evil:1"}}, "models[0].containerPatch.image"
    ),
    Mistake(
        "patch-removes-the-memory-limit",
        "render",
        {"models[0].containerPatch": {"resources": {"limits": {"memory": None}}}},
        "models[0].containerPatch.resources.limits.memory",
    ),
    Mistake(
        "cpu-engine-asks-for-a-gpu",
        "dev",
        {"models[0].resources.gpus": 1},
        "models[0].resources.gpus",
        also=("engine server runs on CPU only",),
    ),
    # typos
    Mistake("typo-model-key", "render", {"models[0].replica": 2}, "models[0].replica", also=("not a known key",)),
    Mistake("typo-autoscaling-key", "dev", {"models[0].autoscaling.maxReplica": 3}, "models[0].autoscaling.maxReplica"),
    Mistake("typo-pool-key", "dev", {"gpuPool.gpuBugdet": 2}, "gpuPool.gpuBugdet"),
    Mistake(
        "typo-metric-key",
        "prod",
        {"models[0].autoscaling.metric.targetAverage": "5"},
        "models[0].autoscaling.metric.targetAverage",
    ),
    Mistake("typo-top-level-key", "dev", {"gpupool": {"gpuBudget": 2}}, "gpupool", also=("not a known key",)),
    # structure
    Mistake("models-empty", "render", {"models": []}, "models"),
    Mistake("model-namespace-default", "render", {"models[0].namespace": "default"}, "models[0].namespace"),
    Mistake("model-namespace-kube-system", "render", {"models[0].namespace": "kube-system"}, "models[0].namespace"),
    Mistake("stack-namespace-default", "render", {"namespace": "default"}, "namespace"),
    Mistake(
        "model-namespace-is-the-device-plugins",
        "render",
        {"models[0].namespace": "nvidia-device-plugin"},
        "models[0].namespace",
    ),
    Mistake("replicas-and-autoscaling", "dev", {"models[0].replicas": 2}, "models[0].replicas"),
    # GPU pool
    # (prod's GPU users: the 8B model's 4 replicas of 1 GPU, and the 70B model's replica of 2 nodes × 2 GPUs.)
    Mistake(
        "gpu-budget-too-small",
        "prod",
        {"gpuPool.gpuBudget": 3},
        "gpuPool.gpuBudget",
        also=(f"{_peak_gpus('prod')} GPUs at peak", "budget is 3"),
    ),
    Mistake(
        "e2e-budget-below-the-llama-peak",
        "e2e",
        {"gpuPool.gpuBudget": 3},
        "gpuPool.gpuBudget",
        # llama's 4 replicas and its canary's 1, and llama-70b's replica of 2 nodes × 2 GPUs
        also=(f"{_peak_gpus('e2e')} GPUs at peak",),
    ),
    Mistake(
        "e2e-canary-over-the-budget",
        "e2e",
        {"gpuPool.gpuBudget": E2E_STABLE_PEAK},
        "models[0].canary.replicas",
        also=(
            f"is more than gpuPool.gpuBudget {E2E_STABLE_PEAK} holds",
            f"peak to {_peak_gpus('e2e')} GPUs",
            f"{E2E_STABLE_PEAK} without canaries",
        ),
    ),
    Mistake(
        "gpu-budget-too-small-with-surge",
        "prod",
        {"gpuPool.gpuBudget": 4, **SURGE},
        "gpuPool.gpuBudget",
        also=(f"{_peak_gpus('prod', SURGE)} GPUs at peak",),
    ),
    Mistake(
        "karpenter-without-budget", "prod", {"gpuPool.gpuBudget": DELETE}, "gpuPool.gpuBudget", also=("karpenter",)
    ),
    Mistake(
        "karpenter-launches-nothing",
        "prod",
        {"gpuPool.karpenter.gpuProducts": DELETE},
        "gpuPool.karpenter.instanceTypes",
    ),
    Mistake(
        "karpenter-capacity-type",
        "prod",
        {"gpuPool.karpenter.capacityTypes": ["preemptible"]},
        "gpuPool.karpenter.capacityTypes[0]",
    ),
    Mistake(
        "taint-effect", "render", {"gpuPool.taint.effect": "NoScheduel"}, "gpuPool.taint.effect", also=("NoExecute",)
    ),
    Mistake("gpu-memory-not-a-size", "render", {"gpuPool.gpuMemory": "eighty"}, "gpuPool.gpuMemory"),
    Mistake(
        "gpus-too-few-for-70b",
        "render",
        {"models[0].architecture": LLAMA_70B, "models[0].engine": "vllm", "models[0].resources.gpus": 1},
        "models[0].resources.gpus",
        also=("models[0].resources.gpus is 1", "models[0].architecture", "at least 2 GPUs", "80Gi"),
    ),
    Mistake(
        "architecture-no-kv-heads", "prod", {"models[0].architecture.kvHeads": 0}, "models[0].architecture.kvHeads"
    ),
    # rollout and storage
    Mistake(
        "rollout-never-starts",
        "render",
        {"models[0].rollout": {"maxSurge": 0, "maxUnavailable": 0}},
        "models[0].rollout.maxUnavailable",
    ),
    Mistake(
        "rwo-cache-several-replicas",
        "prod",
        # Not pre-staged: a pre-staged cache must be ReadWriteMany anyway (the case below).
        {"models[0].modelCache.accessMode": "ReadWriteOnce", "models[0].modelCache.prestage": DELETE},
        "models[0].modelCache.accessMode",
        also=("more than one pod shares the cache",),
    ),
    Mistake(
        "prestaged-cache-read-write-once",
        "e2e",
        {
            "models[0].modelCache.accessMode": "ReadWriteOnce",
            "models[0].autoscaling.maxReplicas": 1,
            "models[0].canary": DELETE,
        },
        "models[0].modelCache.accessMode",
        also=("must be ReadWriteMany with prestage",),
    ),
    Mistake(
        "rwo-cache-with-surge",
        "render",
        {"models[0].modelCache": {"type": "pvc", "accessMode": "ReadWriteOncePod"}, "models[0].rollout.maxSurge": 1},
        "models[0].modelCache.accessMode",
    ),
    # service
    Mistake("service-type-unknown", "render", {"models[0].service.type": "Ingress"}, "models[0].service.type"),
    Mistake(
        "source-range-bad-prefix",
        "dev",
        {"models[0].service.sourceRanges": ["10.0.0.0/33"]},
        "models[0].service.sourceRanges[0]",
    ),
    Mistake(
        "source-range-a-name",
        "dev",
        {"models[0].service.sourceRanges": ["10.0.0.0/8", "office"]},
        "models[0].service.sourceRanges[1]",
    ),
    Mistake(
        "source-range-host-bits",
        "dev",
        {"models[0].service.sourceRanges": ["10.0.0.1/8"]},
        "models[0].service.sourceRanges[0]",
    ),
    Mistake(
        "source-ranges-on-cluster-ip",
        "render",
        {"models[0].service.sourceRanges": ["10.0.0.0/8"]},
        "models[0].service.sourceRanges",
    ),
    Mistake(
        "annotation-key-invalid",
        "render",
        {"models[0].service.annotations": {"bad key!": "x"}},
        "models[0].service.annotations.bad key!",
    ),
    # autoscaling metrics
    Mistake(
        "pods-metric-without-target",
        "prod",
        {"models[0].autoscaling.metric.targetAverageValue": DELETE},
        "models[0].autoscaling.metric.targetAverageValue",
    ),
    Mistake(
        "external-metric-without-name",
        "dev",
        {"models[0].autoscaling.metric": {"type": "external", "targetValue": "10"}},
        "models[0].autoscaling.metric.name",
    ),
    Mistake(
        "metric-type-unknown",
        "dev",
        {"models[0].autoscaling.metric.type": "memory"},
        "models[0].autoscaling.metric.type",
    ),
    # secrets (one model asking for the token: the test below has every model that asks named)
    Mistake(
        "hub-token-without-secret",
        "prod",
        {"models[2].hubToken": DELETE},
        "models[0].hubToken",
        secrets=REGISTRY_ONLY,
        also=("--secret",),
    ),
    Mistake(
        "hub-token-in-plain-config",
        "prod",
        {},
        "hubToken",
        secrets=REGISTRY_ONLY,
        plain={"hubToken": "hf_plain_text_token"},
        also=("must be a secret",),
    ),
    Mistake(
        "registry-password-in-plain-config",
        "prod",
        {},
        "registryPassword",
        secrets=HUB_ONLY,
        plain={"registryPassword": "plain-password"},
    ),
    Mistake("registry-password-missing", "prod", {}, "models[1].image.build.registry", secrets=HUB_ONLY),
    Mistake(
        "image-override-latest", "render", {"imageRefOverride": "registry.example.com/x:latest"}, "imageRefOverride"
    ),
    # placement (the local stack sets a nodeSelector and a toleration of its node)
    Mistake(
        "toleration-effect-typo",
        "local",
        {"models[0].tolerations[0].effect": "NoScheduel"},
        "models[0].tolerations[0].effect",
        also=("NoSchedule, PreferNoSchedule, NoExecute",),
    ),
    Mistake(
        "toleration-without-key", "local", {"models[0].tolerations[0].key": DELETE}, "models[0].tolerations[0].key"
    ),
    Mistake(
        "toleration-operator-unknown",
        "local",
        {"models[0].tolerations[0].operator": "In"},
        "models[0].tolerations[0].operator",
    ),
    Mistake(
        "toleration-exists-with-a-value",
        "local",
        {"models[0].tolerations[0].operator": "Exists"},
        "models[0].tolerations[0].value",
        also=("only applies to operator Equal",),
    ),
    Mistake("tolerations-an-object", "local", {"models[0].tolerations": {"key": "a"}}, "models[0].tolerations"),
    Mistake(
        "node-selector-value-invalid",
        "local",
        {"models[0].nodeSelector": {"model-serving.dev/node": "not a label value"}},
        "models[0].nodeSelector.model-serving.dev/node",
    ),
    Mistake(
        "cpu-model-tolerates-the-gpu-taint",
        "local",
        {"models[0].tolerations[0]": {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}},
        "models[0].tolerations[0]",
        also=("nvidia.com/gpu:NoSchedule",),
    ),
    Mistake(
        "gpu-model-selects-other-nodes",
        "prod",
        {"models[0].nodeSelector": {"nvidia.com/gpu.present": "false"}},
        "models[0].nodeSelector.nvidia.com/gpu.present",
        also=("conflicts with gpuPool.nodeSelector.nvidia.com/gpu.present",),
    ),
    # autoscaling with KEDA, scaling to zero, metrics (prod's Llama scales with KEDA, dev's model with an HPA on CPU)
    Mistake(
        "activation-threshold-negative",
        "prod",
        {"models[0].autoscaling.activationThreshold": "-1"},
        "models[0].autoscaling.activationThreshold",
        also=("must be >= 0",),
    ),
    Mistake(
        "zero-replicas-with-an-hpa",
        "dev",
        {"models[0].autoscaling.minReplicas": 0},
        "models[0].autoscaling.minReplicas",
        also=("an HPA never scales to zero",),
    ),
    Mistake(
        "zero-replicas-without-a-wake-signal",
        "prod",
        {"models[0].autoscaling.minReplicas": 0},
        "models[0].autoscaling.wake",
        also=("nothing exports vllm:num_requests_waiting", "istio, ingress-nginx"),
    ),
    Mistake(
        "wake-gateway-unknown",
        "prod",
        {"models[0].autoscaling.minReplicas": 0, "models[0].autoscaling.wake": "traefik"},
        "models[0].autoscaling.wake",
    ),
    Mistake(
        "keda-only-key-with-an-hpa",
        "dev",
        {"models[0].autoscaling.cooldownPeriod": 60},
        "models[0].autoscaling.cooldownPeriod",
        also=("only applies to driver keda",),
    ),
    Mistake(
        "keda-on-cpu",
        "dev",
        {"models[0].autoscaling.driver": "keda", "monitoring": {"enabled": True, "prometheusUrl": "http://p:9090"}},
        "models[0].autoscaling.metric.type",
    ),
    Mistake(
        "keda-without-a-prometheus",
        "prod",
        {"monitoring.prometheusUrl": DELETE},
        "models[0].autoscaling.driver",
        also=("needs monitoring.prometheusUrl",),
    ),
    Mistake(
        "keda-without-monitoring",
        "prod",
        {"monitoring.enabled": False},
        "models[0].autoscaling.driver",
        also=("needs monitoring.enabled",),
    ),
    Mistake(
        "fallback-above-max",
        "prod",
        {"models[0].autoscaling.fallbackReplicas": 9},
        "models[0].autoscaling.fallbackReplicas",
    ),
    Mistake(
        "metric-misspelt",
        "prod",
        {"models[0].autoscaling.metric.name": "vllm:num_request_waiting"},
        "models[0].autoscaling.metric.name",
        also=("not a metric engine vllm exports", "vllm:num_requests_waiting"),
    ),
    Mistake(
        "metric-of-the-other-engine",
        "prod",
        {"models[1].autoscaling.metric.name": "vllm:num_requests_waiting"},
        "models[1].autoscaling.metric.name",
        also=("engine server",),
    ),
    Mistake(
        "prometheus-url-no-scheme", "prod", {"monitoring.prometheusUrl": "prometheus:9090"}, "monitoring.prometheusUrl"
    ),
    Mistake("scrape-interval-no-unit", "prod", {"monitoring.scrapeInterval": "30"}, "monitoring.scrapeInterval"),
    Mistake(
        "dcgm-in-the-device-plugin-namespace",
        "prod",
        {"gpuPool.dcgmExporter.namespace": "nvidia-device-plugin"},
        "gpuPool.dcgmExporter.namespace",
    ),
    Mistake(
        "dcgm-image-unpinned",
        "prod",
        {"gpuPool.dcgmExporter.image": "nvcr.io/dcgm:latest"},
        "gpuPool.dcgmExporter.image",
    ),
    # the image lock (read by the program, relative to the project; the harness keeps .cluster/ paths away)
    Mistake(
        "image-lock-missing",
        "local",
        {"imageLock": "no-such-directory/images.json"},
        "imageLock",
        also=("no-such-directory/images.json does not exist", "make cluster-up writes .cluster/images.json"),
    ),
]


def test_there_are_enough_distinct_mistakes() -> None:
    assert len(MISTAKES) >= 25
    assert len({m.id for m in MISTAKES}) == len(MISTAKES)
    assert len({m.key for m in MISTAKES}) >= 25
    assert {m.stack for m in MISTAKES} == set(STACKS)


def _run(mistake: Mistake) -> Failure:
    return run_stack_failure(
        mistake.stack,
        config=stack_values(mistake.stack, mistake.edits),
        overrides=mistake.plain,
        secrets=mistake.secrets,
    )


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_a_mistake_stops_the_program_with_one_error_naming_the_key(mistake: Mistake) -> None:
    failure = _run(mistake)
    message = str(failure.error)
    assert type(failure.error) is pulumi.RunError, repr(failure.error)
    first_key = re.search(r"model-serving:(.+?)(?= (?:is|must|duplicates|conflicts|only|or|needs)\b)", message)
    assert first_key is not None, message
    assert first_key[1] == mistake.key, message
    assert "\n" not in message
    for text in mistake.also:
        assert text in message, message
    # Nothing at all was registered, not even the Kubernetes provider, and nothing else was reported.
    assert failure.resources == []
    assert failure.logged_errors == []


def test_a_missing_hub_token_names_every_model_that_asks_for_it() -> None:
    failure = run_stack_failure("prod", config=stack_values("prod"), secrets=REGISTRY_ONLY)
    message = str(failure.error)
    asking = [i for i, m in enumerate(typed("prod").models) if m.hub_token]
    assert len(asking) >= 2, asking
    named = re.findall(r"model-serving:models\[(\d+)\]\.hubToken needs the secret model-serving:hubToken", message)
    assert [int(i) for i in named] == asking, message
    assert failure.resources == []


def test_the_70b_message_names_both_keys_and_both_counts() -> None:
    failure = _run(next(m for m in MISTAKES if m.id == "gpus-too-few-for-70b"))
    message = str(failure.error)
    assert re.search(r"models\[0\]\.resources\.gpus is 1 but models\[0\]\.architecture", message), message
    needed = [int(n) for n in re.findall(r"at least (\d+) GPUs", message)]
    assert needed and min(needed) >= 2, message


@pytest.mark.parametrize("stack", STACKS)
def test_the_stacks_the_mistakes_start_from_run_to_completion(stack: str) -> None:
    """Each case above fails for its edit alone: unedited, its stack file registers everything."""
    with pytest.raises(AssertionError, match="the program completed and registered"):
        run_stack_failure(stack, config=stack_values(stack))


# --- parse_stack_config directly ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "edits", "path", "message"),
    [
        (
            "dev",
            {"models[0].autoscaling": {"minReplicas": 2, "maxReplicas": 1}},
            "models[0].autoscaling.maxReplicas",
            "models[0].autoscaling.maxReplicas must be >= minReplicas (got 1 < 2)",
        ),
        ("render", {"models[0].resources.gpus": 0.5}, "models[0].resources.gpus", "must be a whole number (got 0.5)"),
        ("render", {"models[0].resources.gpus": 17}, "models[0].resources.gpus", "must be <= 16 (got 17)"),
        ("render", {"models[0].name": "Mini_LM"}, "models[0].name", "must be a DNS-1123 label"),
        ("prod", {"models[1].namespace": "prod-llama-3-1-8b"}, "models[1].namespace", "duplicates models[0]"),
        ("render", {"models[0].service.port": 0}, "models[0].service.port", "must be >= 1 (got 0)"),
        ("render", {"models[0].resources.cpu": "NaN"}, "models[0].resources.cpu", "is not a Kubernetes quantity"),
        (
            "render",
            {"models[0].resources.memory": "١٦Gi"},
            "models[0].resources.memory",
            "is not a Kubernetes quantity",
        ),
        (
            "local",
            {"models[0].tolerations": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "Never"}]},
            "models[0].tolerations[1].effect",
            "must be one of NoSchedule, PreferNoSchedule, NoExecute (got 'Never')",
        ),
        (
            "local",
            {"models[0].nodeSelector": {"Not A Key": "local"}},
            "models[0].nodeSelector.Not A Key",
            "is not a valid name",
        ),
    ],
)
def test_parse_errors_carry_the_key_path(stack: str, edits: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw_config(stack, edits), has_hub_token=True, has_registry_password=True)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path} ")
    assert message in str(caught.value)


def test_parse_needs_the_secrets_the_config_asks_for() -> None:
    raw = raw_config("prod")
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, has_hub_token=False, has_registry_password=True)
    assert caught.value.path == "models[0].hubToken"
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, has_hub_token=True, has_registry_password=False)
    assert caught.value.path == "models[1].image.build.registry"
    assert parse_stack_config(raw, has_hub_token=True, has_registry_password=True).models[0].hub_token


@pytest.mark.parametrize("quantity", ["4", "500m", "16Gi", "1.5", "2e3", "1E"])
def test_kubernetes_quantities_are_accepted(quantity: str) -> None:
    config = parse_stack_config(raw_config("render", {"models[0].resources.cpu": quantity}))
    assert config.models[0].resources.cpu == quantity


# --- any value anywhere: accepted, or one ConfigError ---------------------------------------------

PATHS = [
    "namespace",
    "gpuPool",
    "gpuPool.gpuBudget",
    "gpuPool.gpuMemory",
    "gpuPool.nodeSelector",
    "gpuPool.taint",
    "gpuPool.devicePlugin.timeSlicingReplicas",
    "gpuPool.karpenter",
    "gpuPool.karpenter.capacityTypes",
    "models",
    "models[0]",
    "models[0].name",
    "models[0].image",
    "models[0].resources",
    "models[0].resources.gpus",
    "models[0].resources.memory",
    "models[0].architecture",
    "models[0].architecture.params",
    "models[0].architecture.maxModelLen",
    "models[0].env",
    "models[0].args",
    "models[0].shmSize",
    "models[0].modelCache",
    "models[0].autoscaling",
    "models[0].autoscaling.metric",
    "models[0].rollout",
    "models[0].service",
    "models[0].service.sourceRanges",
    "models[0].nodeSelector",
    "models[0].tolerations",
    "models[1].image.build",
    "models[1].image.build.cacheFrom",
    "imageLock",
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["NaN", "Infinity", "-1", "0", "1Gi", "latest", "10.0.0.0/8", "a_b", "ReadWriteOnce"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=5,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=_VALUES)
def test_any_value_at_any_key_is_accepted_or_named(path: str, value: Any) -> None:
    raw = raw_config("prod")
    edit(raw, path, value)
    try:
        parse_stack_config(raw, has_hub_token=True, has_registry_password=True)
    except ConfigError as error:
        # The message starts with a key path rooted in the config, never a Python traceback.
        assert re.match(r"^(namespace|gpuPool|models|imageRefOverride|imageLock)\b", error.path), error.path
        assert str(error).startswith(error.path)
