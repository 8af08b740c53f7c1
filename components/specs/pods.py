"""A model's pod: the server container (engine flags, environment, resources, probes, mounts) and the pod spec
around it (security, volumes, placement on the GPU pool, spreading). Deployments and LeaderWorkerSets
(:mod:`components.specs.workloads`) wrap it."""

from __future__ import annotations

import math
from typing import Any, TypedDict, cast

from components import sizing
from components.config import TMP_SIZE, ModelConfig
from components.config.stack_rules import node_selector_conflicts
from components.specs import wire
from components.specs.base import (
    CACHE_DIR,
    DRAIN_SECONDS,
    HTTP_PORT_NAME,
    HUB_TOKEN_DIR,
    PRE_STOP_SECONDS,
    container_security_context,
    merge_patch,
    pod_security_context,
    selector_labels,
    toleration,
)
from components.specs.gpu_pool import GpuScheduling

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "container_args",
    "container_env",
    "llamacpp_args",
    "placement",
    "pod_spec",
    "probes",
    "resources",
    "server_container",
    "tensor_parallel_size",
]


def tensor_parallel_size(model: ModelConfig) -> int:
    if model.sizing is not None:
        return model.sizing.tensor_parallel_size
    return max(1, model.resources.gpus)


def llamacpp_args(model: ModelConfig) -> list[str]:
    """llama-server's flags: the baked GGUF, its slots and their context, threads from the CPU limit, and the
    Prometheus endpoint the monitors and autoscalers read."""
    settings = model.llamacpp
    threads = str(sizing.llamacpp_threads(model.resources.cpu))
    args = [
        "--model",
        f"{model.model_dir}/{settings.model_file}",
        "--alias",
        model.model_id,
        "--host",
        "0.0.0.0",
        "--port",
        str(model.port),
        "--ctx-size",
        str(settings.ctx_size * settings.parallel),
        "--parallel",
        str(settings.parallel),
        "--threads",
        threads,
        "--threads-batch",
        threads,
        "--n-predict",
        str(settings.max_tokens),
        "--cache-ram",
        str(settings.prompt_cache_mib),
        "--metrics",
        "--no-ui",
    ]
    if settings.chat_template is not None:  # a built-in template by name, which llama-server takes only without Jinja
        args += ["--no-jinja", "--chat-template", settings.chat_template]
    return args + list(model.args)


def container_args(model: ModelConfig) -> list[str]:
    if model.engine == "llamacpp":
        return llamacpp_args(model)
    if model.engine != "vllm":
        return list(model.args)
    args = ["--model", model.model_id, "--port", str(model.port), "--host", "0.0.0.0"]
    if model.model_revision is not None:
        args += ["--revision", model.model_revision]
    args += ["--tensor-parallel-size", str(tensor_parallel_size(model))]
    if model.multi_node:  # one pipeline stage per node of the group, joined over Ray
        assert model.sizing is not None
        args += ["--pipeline-parallel-size", str(model.sizing.pipeline_parallel_size)]
        args += ["--distributed-executor-backend", "ray"]
    if model.architecture is not None:
        arch = model.architecture
        args += [
            "--max-model-len",
            str(arch.max_model_len),
            "--max-num-seqs",
            str(arch.max_num_seqs),
            "--gpu-memory-utilization",
            str(arch.gpu_memory_utilization),
        ]
    return args + list(model.args)


def container_env(model: ModelConfig) -> list[wire.EnvVar]:
    env = {
        "MODEL_ID": model.model_id,
        "PORT": str(model.port),
        # The root filesystem is read-only: every cache and home directory points at a volume.
        "HOME": "/tmp",
        "HF_HOME": CACHE_DIR,
        "XDG_CACHE_HOME": "/tmp/.cache",
    }
    if model.engine_spec.drains:
        env["DRAIN_SECONDS"] = str(DRAIN_SECONDS)
    if model.model_dir:
        env["MODEL_DIR"] = model.model_dir
    if model.model_revision is not None:
        env["MODEL_REVISION"] = model.model_revision
    if model.hub_token:
        # HF_TOKEN_PATH is read by huggingface_hub (vLLM); HF_TOKEN_FILE by the app/ server.
        env["HF_TOKEN_PATH"] = f"{HUB_TOKEN_DIR}/token"
        env["HF_TOKEN_FILE"] = f"{HUB_TOKEN_DIR}/token"
    if model.hub_endpoint is not None:
        env["HF_ENDPOINT"] = model.hub_endpoint
    if model.cache.prestage:
        # The Job downloaded the revision: the pods read it, and never reach for the hub.
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    env.update(model.env)
    return [{"name": k, "value": v} for k, v in env.items()]


def resources(model: ModelConfig, gpu_resource_name: str) -> wire.ResourceRequirements:
    amounts: dict[str, str] = {
        "cpu": model.resources.cpu,
        "memory": model.resources.memory,
        "ephemeral-storage": model.resources.ephemeral_storage,
    }
    if model.resources.gpus:
        amounts[gpu_resource_name] = str(model.resources.gpus)
    # Requests equal limits: Guaranteed QoS, and GPUs cannot be overcommitted anyway.
    return {"requests": dict(amounts), "limits": dict(amounts)}


class Probes(TypedDict):
    """The server container's probes (:func:`probes`)."""

    startupProbe: wire.Probe
    readinessProbe: wire.Probe
    livenessProbe: wire.Probe


def probes(model: ModelConfig) -> Probes:
    period = model.probes.period_seconds
    http: wire.HTTPGetAction = {"port": HTTP_PORT_NAME}
    return {
        # Gates the other probes until the model has loaded: the budget covers the slowest load.
        "startupProbe": {
            "httpGet": {**http, "path": model.readiness_path},
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(model.probes.model_load_seconds / period),
        },
        "readinessProbe": {
            "httpGet": {**http, "path": model.readiness_path},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {**http, "path": model.liveness_path},
            "periodSeconds": 15,
            "timeoutSeconds": 10,
            "failureThreshold": 4,
        },
    }


def _volumes(model: ModelConfig) -> tuple[list[wire.Volume], list[wire.VolumeMount]]:
    volumes: list[wire.Volume] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": model.shm_size}},
    ]
    cache_mount: wire.VolumeMount = {"name": "model-cache", "mountPath": CACHE_DIR}
    if model.cache.prestage:
        cache_mount["readOnly"] = True
    mounts: list[wire.VolumeMount] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "dshm", "mountPath": "/dev/shm"},
        cache_mount,
    ]
    if model.cache.type == "pvc":
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": f"{model.name}-cache"}})
    else:
        volumes.append({"name": "model-cache", "emptyDir": {"sizeLimit": model.cache.size}})
    if model.hub_token:
        volumes.append({"name": "hub-token", "secret": {"secretName": f"{model.name}-hub-token", "defaultMode": 0o440}})
        mounts.append({"name": "hub-token", "mountPath": HUB_TOKEN_DIR, "readOnly": True})
    return volumes, mounts


def placement(model: ModelConfig, scheduling: GpuScheduling) -> tuple[dict[str, str], list[wire.Toleration]]:
    """The pods' nodeSelector and tolerations: the model's own, and for a GPU model the pool's as well.

    A GPU model's nodeSelector may add labels to the pool's but not contradict them (the config names such a key,
    ``models[i].nodeSelector.<label>``; this refuses it for callers that bypass the config). The pool's tolerations
    come first; a model's toleration equal to one of them is not repeated.
    """
    selector = dict(model.node_selector)
    tolerations = [toleration(t) for t in model.tolerations]
    if not model.resources.gpus:
        return selector, tolerations
    conflicts = node_selector_conflicts(selector, scheduling.node_selector)
    if conflicts:
        raise ValueError(
            f"model {model.name!r}: nodeSelector {', '.join(conflicts)} conflicts with the GPU pool's nodeSelector"
        )
    pool_tolerations = [cast(wire.Toleration, dict(t)) for t in scheduling.tolerations]
    return (
        {**scheduling.node_selector, **selector},
        pool_tolerations + [t for t in tolerations if t not in pool_tolerations],
    )


def server_container(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> wire.Container:
    """The server container; a multi-node replica's leader runs it after starting the Ray head."""
    _, mounts = _volumes(model)
    probe = probes(model)
    container: wire.Container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": container_args(model),
        "env": container_env(model),
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": model.port, "protocol": "TCP"}],
        "resources": resources(model, scheduling.gpu_resource_name),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "startupProbe": probe["startupProbe"],
        "readinessProbe": probe["readinessProbe"],
        "livenessProbe": probe["livenessProbe"],
    }
    # models[i].containerPatch, a JSON merge patch: its fields are the config's to check (the policy pack checks the
    # result, and the tests validate it against the schema), not the type checker's.
    return cast(wire.Container, merge_patch(container, model.container_patch))


def pod_spec(model: ModelConfig, scheduling: GpuScheduling, container: wire.Container) -> wire.PodSpec:
    volumes, _ = _volumes(model)
    spec: wire.PodSpec = {
        "serviceAccountName": model.name,
        "automountServiceAccountToken": False,
        "priorityClassName": model.priority_class.name,
        "securityContext": pod_security_context(),
        "terminationGracePeriodSeconds": PRE_STOP_SECONDS + DRAIN_SECONDS + 15,
        "containers": [container],
        "volumes": volumes,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(model)},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
    }
    node_selector, tolerations = placement(model, scheduling)
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if model.resources.gpus:
        spec["runtimeClassName"] = scheduling.runtime_class_name
    return spec
