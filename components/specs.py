"""Pure builders: validated config in, plain Kubernetes objects (wire-form dicts) out.

Every Kubernetes field the program emits is written here, one builder per kind. Nothing in this
module talks to Pulumi except that an image reference or a secret may be a ``pulumi.Output``
placed inside a dict, which the Kubernetes provider resolves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from components import sizing
from components.capacity import GpuCapacity
from components.config import (
    GATEWAYS,
    TMP_SIZE,
    GatewayConfig,
    GpuPoolConfig,
    ModelConfig,
    MonitoringConfig,
    Toleration,
)
from components.config.engines import DCGM, DCGM_COUNTERS, EXPORTER_ANNOTATION
from components.config.rules import node_selector_conflicts

Obj = dict[str, Any]

PART_OF = "model-serving"
UID = 10001  # the app/ image's user; high enough not to collide with host users
HTTP_PORT_NAME = "http"
# The canary's pods and objects carry it (stable ones do not: adding it would roll every running model).
TRACK_LABEL = "model-serving.dev/track"
# Every endpoint picker's pods (they live in their model's namespace).
PICKER_SELECTOR = {"app.kubernetes.io/component": "endpoint-picker", "app.kubernetes.io/part-of": "model-serving"}
HUB_TOKEN_DIR = "/var/run/secrets/model-hub"
CACHE_DIR = "/cache"
DEVICE_PLUGIN_NAME = "nvidia-device-plugin"
DCGM_EXPORTER_NAME = "dcgm-exporter"
DCGM_PORT = 9400
METRICS_PATH = "/metrics"
# Shutdown: the endpoint removal propagates during the preStop pause, then the server drains.
PRE_STOP_SECONDS = 5
DRAIN_SECONDS = 25


@dataclass(frozen=True)
class GpuScheduling:
    """What a GPU workload needs to land on the pool: GpuNodePool's contract with deployments.

    ``capacity`` is the pool's GPU ledger when the scheduling comes from a ``GpuNodePool``: each ModelDeployment
    reserves its peak GPUs from it, so the budget holds over every model placed on the pool. It is no part of
    the contract's value (not compared, not an output).
    """

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, str], ...]
    runtime_class_name: str
    gpu_resource_name: str
    capacity: GpuCapacity | None = field(default=None, compare=False, repr=False)

    def wire(self) -> dict[str, Any]:
        """The contract as plain data (the component's registered output)."""
        return {
            "node_selector": dict(self.node_selector),
            "tolerations": [dict(t) for t in self.tolerations],
            "runtime_class_name": self.runtime_class_name,
            "gpu_resource_name": self.gpu_resource_name,
        }


def gpu_scheduling(pool: GpuPoolConfig) -> GpuScheduling:
    return GpuScheduling(
        node_selector=dict(pool.node_selector),
        tolerations=({"key": pool.taint.key, "operator": "Exists", "effect": pool.taint.effect},),
        runtime_class_name=pool.runtime_class,
        gpu_resource_name=pool.gpu_resource_name,
    )


def _meta(name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None, **extra: Any) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    meta.update({k: v for k, v in extra.items() if v})
    return meta


# ---------------------------------------------------------------------------------------------
# Model objects
# ---------------------------------------------------------------------------------------------


def selector_labels(model: ModelConfig) -> dict[str, str]:
    """The immutable subset used by selectors (Deployment, Service, PDB, InferencePool): one track's pods (the
    canary's instance is `<name>-canary`)."""
    return {"app.kubernetes.io/name": model.name, "app.kubernetes.io/instance": model.instance}


def model_selector(model: ModelConfig) -> dict[str, str]:
    """Every pod of the model, stable and canary (NetworkPolicy, ServiceMonitor)."""
    return {"app.kubernetes.io/name": model.name}


def model_labels(model: ModelConfig) -> dict[str, str]:
    labels = {
        **selector_labels(model),
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    if model.track != "stable":
        labels[TRACK_LABEL] = model.track
    return labels


def namespace(name: str, *, pod_security: str = "restricted") -> Obj:
    labels = {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        "pod-security.kubernetes.io/enforce": pod_security,
        "pod-security.kubernetes.io/warn": pod_security,
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, labels=labels)}


def service_account(model: ModelConfig) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(model.name, model.namespace, model_labels(model)),
        # The server never calls the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def hub_token_secret(model: ModelConfig, token: Any) -> Obj:
    """The model-hub token, mounted as a file; ``token`` is a secret pulumi.Output."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(f"{model.name}-hub-token", model.namespace, model_labels(model)),
        "type": "Opaque",
        "stringData": {"token": token},
    }


def model_cache_claim(model: ModelConfig) -> Obj | None:
    if model.cache.type != "pvc":
        return None
    spec: Obj = {
        "accessModes": [model.cache.access_mode],
        "resources": {"requests": {"storage": model.cache.size}},
    }
    if model.cache.storage_class:
        spec["storageClassName"] = model.cache.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        # Unbound claims wait for their first consumer: Pulumi must not block on them.
        "metadata": _meta(
            f"{model.name}-cache", model.namespace, model_labels(model), annotations={"pulumi.com/skipAwait": "true"}
        ),
        "spec": spec,
    }


# The prestage Job's program: download one revision into the hub cache (resuming what an earlier attempt left),
# then check every LFS file against the SHA-256 the hub publishes for it.
PRESTAGE_SCRIPT = """\
import hashlib, os, sys
from huggingface_hub import HfApi, snapshot_download

repo, revision = os.environ["MODEL_ID"], os.environ["MODEL_REVISION"]
path = snapshot_download(repo, revision=revision)
info = HfApi().model_info(repo, revision=revision, files_metadata=True)
if info.sha != revision:
    sys.exit(f"{repo}: the hub resolved {revision} to {info.sha}")
bad = []
for f in info.siblings or []:
    if f.lfs is None:
        continue
    digest = hashlib.sha256()
    with open(os.path.join(path, f.rfilename), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != f.lfs.sha256:
        bad.append(f.rfilename)
if bad:
    sys.exit(f"{repo}@{revision}: checksum mismatch: {', '.join(bad)}")
print(f"{repo}@{revision}: {len(info.siblings or [])} files verified in {path}")
"""
PRESTAGE_BACKOFF_LIMIT = 3  # bounded retries; each resumes the download


def prestage_job_name(model: ModelConfig) -> str:
    """Named by the revision: a new revision is a new Job, which the rollout waits for."""
    assert model.model_revision is not None
    return f"{model.name}-prestage-{model.model_revision[:12]}"


def prestage_job(model: ModelConfig, image: Any) -> Obj | None:
    """The Job that hydrates the model's PVC cache with ``modelRevision`` (modelCache.prestage)."""
    if not model.cache.prestage:
        return None
    if model.model_revision is None or model.cache.type != "pvc":
        raise ValueError(f"model {model.name!r}: modelCache.prestage needs a pvc cache and a modelRevision")
    amounts = {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"}
    env = {"MODEL_ID": model.model_id, "MODEL_REVISION": model.model_revision, "HOME": "/tmp", "HF_HOME": CACHE_DIR}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    volumes: list[Obj] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": f"{model.name}-cache"}},
    ]
    mounts: list[Obj] = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "model-cache", "mountPath": CACHE_DIR}]
    if model.hub_token:
        env["HF_TOKEN_PATH"] = f"{HUB_TOKEN_DIR}/token"
        volumes.append({"name": "hub-token", "secret": {"secretName": f"{model.name}-hub-token", "defaultMode": 0o440}})
        mounts.append({"name": "hub-token", "mountPath": HUB_TOKEN_DIR, "readOnly": True})
    # Not the model's selector labels: its Service, PDB and autoscaler must not count the Job's pod.
    labels = {
        "app.kubernetes.io/name": f"{model.name}-prestage",
        "app.kubernetes.io/component": "prestage",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    container: Obj = {
        "name": "prestage",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", PRESTAGE_SCRIPT],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(prestage_job_name(model), model.namespace, labels),
        "spec": {
            "backoffLimit": PRESTAGE_BACKOFF_LIMIT,
            "activeDeadlineSeconds": model.cache.prestage_deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": model.name,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


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


def container_env(model: ModelConfig) -> list[Obj]:
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
    if model.cache.prestage:
        # The Job downloaded the revision: the pods read it, and never reach for the hub.
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    env.update(model.env)
    return [{"name": k, "value": v} for k, v in env.items()]


def resources(model: ModelConfig, gpu_resource_name: str) -> Obj:
    amounts: dict[str, str] = {
        "cpu": model.resources.cpu,
        "memory": model.resources.memory,
        "ephemeral-storage": model.resources.ephemeral_storage,
    }
    if model.resources.gpus:
        amounts[gpu_resource_name] = str(model.resources.gpus)
    # Requests equal limits: Guaranteed QoS, and GPUs cannot be overcommitted anyway.
    return {"requests": dict(amounts), "limits": dict(amounts)}


def probes(model: ModelConfig) -> Obj:
    period = model.probes.period_seconds
    http = {"port": HTTP_PORT_NAME}
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


def _volumes(model: ModelConfig) -> tuple[list[Obj], list[Obj]]:
    volumes: list[Obj] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": model.shm_size}},
    ]
    mounts: list[Obj] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "model-cache", "mountPath": CACHE_DIR, **({"readOnly": True} if model.cache.prestage else {})},
    ]
    if model.cache.type == "pvc":
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": f"{model.name}-cache"}})
    else:
        volumes.append({"name": "model-cache", "emptyDir": {"sizeLimit": model.cache.size}})
    if model.hub_token:
        volumes.append({"name": "hub-token", "secret": {"secretName": f"{model.name}-hub-token", "defaultMode": 0o440}})
        mounts.append({"name": "hub-token", "mountPath": HUB_TOKEN_DIR, "readOnly": True})
    return volumes, mounts


def merge_patch(target: Obj, patch: Mapping[str, Any]) -> Obj:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            current = result.get(key)
            result[key] = merge_patch(dict(current) if isinstance(current, Mapping) else {}, value)
        else:
            result[key] = value
    return result


def pod_security_context() -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        # Stated by the container itself too: a patched or added container must not fall back to the image's user.
        "runAsUser": UID,
        "runAsGroup": UID,
        "capabilities": {"drop": ["ALL"]},
    }


def progress_deadline_seconds(model: ModelConfig) -> int:
    if model.rollout.progress_deadline_seconds is not None:
        return model.rollout.progress_deadline_seconds
    # Image pulls of tens of GiB plus the model load; the default 600 s fails healthy rollouts.
    return max(600, model.probes.model_load_seconds + 900)


def toleration(t: Toleration) -> Obj:
    obj: Obj = {"key": t.key, "operator": t.operator}
    if t.value is not None:
        obj["value"] = t.value
    obj["effect"] = t.effect
    return obj


def placement(model: ModelConfig, scheduling: GpuScheduling) -> tuple[dict[str, str], list[Obj]]:
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
    pool_tolerations = [dict(t) for t in scheduling.tolerations]
    return (
        {**scheduling.node_selector, **selector},
        pool_tolerations + [t for t in tolerations if t not in pool_tolerations],
    )


def _container(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> Obj:
    """The server container; a multi-node replica's leader runs it after starting the Ray head."""
    _, mounts = _volumes(model)
    container: Obj = {
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
        **probes(model),
    }
    return merge_patch(container, model.container_patch)


def _pod_spec(model: ModelConfig, scheduling: GpuScheduling, container: Obj) -> Obj:
    volumes, _ = _volumes(model)
    pod_spec: Obj = {
        "serviceAccountName": model.name,
        "automountServiceAccountToken": False,
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
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if model.resources.gpus:
        pod_spec["runtimeClassName"] = scheduling.runtime_class_name
    return pod_spec


def _scrape_annotations(model: ModelConfig) -> dict[str, str]:
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(model.port), "prometheus.io/path": METRICS_PATH}


def _workload_meta(model: ModelConfig) -> Obj:
    # What the pods export on /metrics, for the policy pack's scraped-metrics rule (on the workload, not the pod
    # template: changing it rolls no pod).
    annotations = {EXPORTER_ANNOTATION: model.engine_spec.exporter.name}
    return _meta(model.instance, model.namespace, model_labels(model), annotations=annotations)


def workload(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> Obj:
    """The model's pods: a Deployment, or a LeaderWorkerSet when each replica spans several nodes."""
    return leader_worker_set(model, image, scheduling) if model.multi_node else deployment(model, image, scheduling)


def deployment(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> Obj:
    container = _container(model, image, scheduling)
    spec: Obj = {
        "selector": {"matchLabels": selector_labels(model)},
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": progress_deadline_seconds(model),
        # maxSurge 0 by default: a rollout frees a GPU before it asks for one.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": model.rollout.max_surge, "maxUnavailable": model.rollout.max_unavailable},
        },
        "template": {
            "metadata": {"labels": model_labels(model), "annotations": _scrape_annotations(model)},
            "spec": _pod_spec(model, scheduling, container),
        },
    }
    if model.autoscaling is None:
        spec["replicas"] = model.replicas  # left out under an HPA or a ScaledObject, which owns the count
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _workload_meta(model), "spec": spec}


# Multi-node replicas: vLLM over Ray, the leader pod the Ray head and the API server, one worker pod per other node.
RAY_PORT = 6379
ROLE_LABEL = "model-serving.dev/role"
LWS_GROUP = "leaderworkerset.x-k8s.io"


def leader_worker_set(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> Obj:
    """A LeaderWorkerSet: per replica a group of ``nodes_per_replica`` pods, one per node, each with its node's
    GPUs; vLLM shards the model tensor-parallel within a node and pipeline-parallel across the group's nodes."""
    server = _container(model, image, scheduling)
    # The Ray head first; the API server then finds the workers' GPUs through it (LWS sets the leader's address
    # and the group size in every pod).
    leader = {
        **server,
        "command": [
            "/bin/sh",
            "-c",
            f'ray start --head --port={RAY_PORT} --dashboard-host=127.0.0.1 && exec vllm serve "$@"',
            "vllm",
        ],
        "ports": [*server["ports"], {"name": "ray", "containerPort": RAY_PORT, "protocol": "TCP"}],
    }
    worker = {
        k: v for k, v in server.items() if k not in ("args", "ports", "startupProbe", "readinessProbe", "livenessProbe")
    }
    worker["command"] = ["/bin/sh", "-c", f"exec ray start --address=$LWS_LEADER_ADDRESS:{RAY_PORT} --block"]
    labels = model_labels(model)
    spec: Obj = {
        "startupPolicy": "LeaderCreated",
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {
                "maxSurge": model.rollout.max_surge,
                "maxUnavailable": model.rollout.max_unavailable,
            },
        },
        "leaderWorkerTemplate": {
            "size": model.nodes_per_replica,
            # A lost pod breaks the whole pipeline: the group restarts together.
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": {
                "metadata": {"labels": {**labels, ROLE_LABEL: "leader"}, "annotations": _scrape_annotations(model)},
                "spec": _pod_spec(model, scheduling, leader),
            },
            "workerTemplate": {
                "metadata": {"labels": {**labels, ROLE_LABEL: "worker"}},
                "spec": _pod_spec(model, scheduling, worker),
            },
        },
    }
    if model.autoscaling is None:
        spec["replicas"] = model.replicas
    return {"apiVersion": f"{LWS_GROUP}/v1", "kind": "LeaderWorkerSet", "metadata": _workload_meta(model), "spec": spec}


def disruption_budget(model: ModelConfig) -> Obj | None:
    if model.max_replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(model.instance, model.namespace, model_labels(model)),
        "spec": {
            # One replica at a time: one pod, or a multi-node replica's whole group (it only serves whole).
            "maxUnavailable": model.nodes_per_replica,
            "selector": {"matchLabels": selector_labels(model)},
            # A pod stuck loading must not block node drains.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


# What `pulumi up` waits for on a ClusterIP or NodePort Service (pulumi-kubernetes' `pulumi.com/waitFor`): its
# cluster IP, there at once. By default the provider waits until the Service has endpoints and then 10 s for them
# to settle, on every Service, while the workload's own await already waits for its ready pods. A LoadBalancer keeps
# that wait: its `endpoint` output is for clients, who expect it to answer once `up` returns.
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"


def service_wait_for(service_type: str) -> dict[str, str]:
    return {} if service_type == "LoadBalancer" else {WAIT_FOR_ANNOTATION: "jsonpath={.spec.clusterIP}"}


def service(model: ModelConfig) -> Obj:
    cfg = model.service
    # A multi-node replica serves from its leader; its workers hold GPUs, not the API.
    selector = {**selector_labels(model), **({ROLE_LABEL: "leader"} if model.multi_node else {})}
    spec: Obj = {
        "type": cfg.type,
        "selector": selector,
        "ports": [{"name": HTTP_PORT_NAME, "port": cfg.port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        "sessionAffinity": cfg.session_affinity,
    }
    if cfg.session_affinity == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    if cfg.type in ("LoadBalancer", "NodePort"):
        spec["externalTrafficPolicy"] = cfg.external_traffic_policy
    if cfg.source_ranges:
        spec["loadBalancerSourceRanges"] = list(cfg.source_ranges)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            model.instance,
            model.namespace,
            model_labels(model),
            annotations={**service_wait_for(cfg.type), **cfg.annotations},  # the config's win
        ),
        "spec": spec,
    }


def _network_policy(
    name: str,
    ns: str,
    labels: Mapping[str, str],
    pod_selector: Mapping[str, str],
    ingress: Sequence[Obj],
    *,
    deny_egress: bool = False,
    egress: Sequence[Obj] | None = None,
) -> Obj:
    """A NetworkPolicy admitting ``ingress`` (none: deny all) to the selected pods; ``deny_egress`` denies all
    egress too, ``egress`` allows only those rules."""
    restrict_egress = deny_egress or egress is not None
    spec: Obj = {
        "podSelector": {"matchLabels": dict(pod_selector)} if pod_selector else {},
        "policyTypes": ["Ingress", "Egress"] if restrict_egress else ["Ingress"],
    }
    if ingress:
        spec["ingress"] = list(ingress)
    if egress:
        spec["egress"] = list(egress)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, ns, labels),
        "spec": spec,
    }


def _from_namespace(name: str) -> Obj:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


# The cluster DNS every pod resolves names through (CoreDNS keeps kube-dns's label).
DNS_PEER: Obj = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
DNS_EGRESS: Obj = {"to": [DNS_PEER], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def https_egress(cidrs: Sequence[str]) -> list[Obj]:
    return (
        [{"to": [{"ipBlock": {"cidr": c}} for c in cidrs], "ports": [{"protocol": "TCP", "port": 443}]}]
        if cidrs
        else []
    )


def network_policy(model: ModelConfig, monitoring: MonitoringConfig, gateway: GatewayConfig | None = None) -> Obj:
    """Every pod of the model (stable and canary): the serving port admits ``service.allowFrom`` (anywhere when
    empty and not behind a gateway), the gateway's proxies and the endpoint pickers (routed models) and
    Prometheus; egress is DNS and HTTPS to ``service.egressTo``."""
    ports = [{"protocol": "TCP", "port": model.port}]
    sources: list[Obj] = [{"ipBlock": {"cidr": cidr}} for cidr in model.service.allow_from]
    routed = model.routing.mode != "service"
    if routed:
        if gateway is None:
            raise ValueError(f"model {model.name!r} is routed through a gateway but none was given")
        sources.append(_from_namespace(gateway.proxy_namespace or gateway.namespace))
    if model.routing.mode == "inference-pool":  # the pickers scrape the pods' metrics to choose one
        sources.append({"podSelector": {"matchLabels": dict(PICKER_SELECTOR)}})
    rules: list[Obj] = [{"from": sources, "ports": ports} if sources else {"ports": ports}]
    if (sources or routed) and monitoring.enabled:  # Prometheus scrapes /metrics on the serving port
        rules.append({"from": [_from_namespace(monitoring.namespace)], "ports": ports})
    egress = [DNS_EGRESS, *https_egress(model.service.egress_to)]
    if model.multi_node:  # a replica's pods talk Ray and NCCL to each other, on ports of their choosing
        peers = [{"podSelector": {"matchLabels": model_selector(model)}}]
        rules.append({"from": peers})
        egress.append({"to": peers})
    return _network_policy(
        model.name, model.namespace, model_labels(model), model_selector(model), rules, egress=egress
    )


def _hpa_metric(model: ModelConfig) -> Obj:
    assert model.autoscaling is not None
    metric = model.autoscaling.metric
    if metric.type == "cpu":
        return {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": metric.target_utilization},
            },
        }
    identifier: Obj = {"name": metric.name}
    if metric.selector:
        identifier["selector"] = {"matchLabels": dict(metric.selector)}
    if metric.type == "pods":
        return {
            "type": "Pods",
            "pods": {
                "metric": identifier,
                "target": {"type": "AverageValue", "averageValue": metric.target_average_value},
            },
        }
    return {
        "type": "External",
        "external": {"metric": identifier, "target": {"type": "Value", "value": metric.target_value}},
    }


def _behavior(model: ModelConfig) -> Obj:
    """The HPA's behavior; KEDA passes it to the HPA it creates."""
    assert model.autoscaling is not None
    auto = model.autoscaling
    # GPU pods take minutes to become ready: add one at a time, remove slowly.
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": auto.scale_up_window_seconds,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": auto.scale_down_window_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
        },
    }


def _scale_target(model: ModelConfig) -> Obj:
    if model.multi_node:  # the LeaderWorkerSet's scale subresource counts groups
        return {"apiVersion": f"{LWS_GROUP}/v1", "kind": "LeaderWorkerSet", "name": model.name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": model.name}


def autoscaler(model: ModelConfig) -> Obj | None:
    """The HPA of a model autoscaled with driver hpa (a KEDA-driven model gets the HPA KEDA makes)."""
    auto = model.autoscaling
    if auto is None or model.keda:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(model.name, model.namespace, model_labels(model)),
        "spec": {
            "scaleTargetRef": _scale_target(model),
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [_hpa_metric(model)],
            "behavior": _behavior(model),
        },
    }


# ---------------------------------------------------------------------------------------------
# PromQL: every query the program writes (triggers, alerts, dashboards) is built here
# ---------------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(labels: Mapping[str, str]) -> str:
    """A PromQL label selector, ``{a="1",b="2"}``."""
    return "{" + ",".join(f"{k}={_quoted(v)}" for k, v in labels.items()) + "}"


def scrape_labels(model: ModelConfig) -> dict[str, str]:
    """The labels Prometheus gives the series its ServiceMonitor scrapes: the model's namespace and Service."""
    return {"namespace": model.namespace, "service": model.name}


def _model_series(model: ModelConfig, metric: str, extra: Mapping[str, str] | None = None) -> str:
    return metric + selector({**scrape_labels(model), **(extra or {})})


def _replicas(model: ModelConfig) -> tuple[str, str]:
    """kube-state-metrics' series of the model's ready and wanted replicas. A multi-node model's are its
    LeaderWorkerSet's leader StatefulSet's, one pod per group, ready once its group serves."""
    if model.multi_node:
        labels = selector({"namespace": model.namespace, "statefulset": model.name})
        return f"kube_statefulset_status_replicas_ready{labels}", f"kube_statefulset_replicas{labels}"
    labels = selector({"namespace": model.namespace, "deployment": model.name})
    return f"kube_deployment_status_replicas_available{labels}", f"kube_deployment_spec_replicas{labels}"


def _p95(model: ModelConfig, window: str = "5m") -> str:
    bucket = _model_series(model, f"{model.engine_spec.latency_metric}_bucket")
    return f"histogram_quantile(0.95, sum by (le) (rate({bucket}[{window}])))"


def scaling_query(model: ModelConfig) -> str:
    """The model's metric summed over its pods: KEDA divides it by the replicas for a pods metric (AverageValue)
    and compares the sum itself for an external one (Value)."""
    assert model.autoscaling is not None and model.autoscaling.metric.name is not None
    metric = model.autoscaling.metric
    return f"sum({_model_series(model, str(metric.name), metric.selector)})"


WAKE_WINDOW = "2m"  # at least two scrapes of the gateway at a usual 30 s or 1 m interval


def wake_query(model: ModelConfig) -> str:
    """1 while the gateway in front of the model saw requests for its Service in the last minutes, else 0: it can
    only ask for one replica (threshold 1), queue depth does the rest."""
    assert model.autoscaling is not None and model.autoscaling.wake is not None
    gateway = GATEWAYS[model.autoscaling.wake]
    labels = {k: v.format(namespace=model.namespace, service=model.name) for k, v in gateway.labels.items()}
    return f"clamp_max(sum(rate({gateway.metric}{selector(labels)}[{WAKE_WINDOW}])), 1)"


def _prometheus_trigger(name: str, url: str, query: str, metric_type: str, threshold: str, activation: str) -> Obj:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": metric_type,
        "metadata": {
            "serverAddress": url,
            "query": query,
            "threshold": threshold,
            "activationThreshold": activation,
        },
    }


def scaled_object(model: ModelConfig, monitoring: MonitoringConfig) -> Obj | None:
    """A KEDA ScaledObject for a model autoscaled with driver keda: a Prometheus trigger on the model's metric and,
    for a model that may scale to zero, one on its gateway's requests, which wakes it."""
    auto = model.autoscaling
    if auto is None or not model.keda:
        return None
    if monitoring.prometheus_url is None:
        raise ValueError(f"model {model.name!r} scales with KEDA but monitoring.prometheusUrl is not set")
    metric = auto.metric
    pods = metric.type == "pods"
    threshold = metric.target_average_value if pods else metric.target_value
    assert threshold is not None
    url = monitoring.prometheus_url
    triggers = [
        _prometheus_trigger(
            "load",
            url,
            scaling_query(model),
            "AverageValue" if pods else "Value",
            threshold,
            auto.activation_threshold,
        )
    ]
    if auto.wake is not None:
        triggers.append(_prometheus_trigger("wake", url, wake_query(model), "AverageValue", "1", "0"))
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(model.name, model.namespace, model_labels(model)),
        "spec": {
            "scaleTargetRef": _scale_target(model),
            "pollingInterval": auto.polling_interval,
            "cooldownPeriod": auto.cooldown_period,
            "minReplicaCount": auto.min_replicas,
            "maxReplicaCount": auto.max_replicas,
            # Prometheus unreachable for three polls: hold this many replicas rather than scale on nothing.
            "fallback": {"failureThreshold": 3, "replicas": auto.fallback},
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(model)}},
            "triggers": triggers,
        },
    }


# ---------------------------------------------------------------------------------------------
# Monitoring objects (prometheus-operator, Grafana)
# ---------------------------------------------------------------------------------------------


def _service_monitor(
    name: str,
    ns: str,
    labels: Mapping[str, str],
    service_labels: Mapping[str, str],
    port: str,
    monitoring: MonitoringConfig,
    *,
    honor_labels: bool = False,
) -> Obj:
    endpoint: Obj = {"port": port, "path": METRICS_PATH, "scheme": "http", "interval": monitoring.scrape_interval}
    if honor_labels:
        endpoint["honorLabels"] = True
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(name, ns, {**labels, **monitoring.labels}),
        "spec": {
            "selector": {"matchLabels": dict(service_labels)},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": [endpoint],
        },
    }


def service_monitor(model: ModelConfig, monitoring: MonitoringConfig) -> Obj | None:
    """Prometheus scrapes the serving port's /metrics through the model's Service."""
    if not monitoring.enabled:
        return None
    labels = model_labels(model)
    return _service_monitor(model.name, model.namespace, labels, model_selector(model), HTTP_PORT_NAME, monitoring)


def _alert(name: str, expr: str, minutes: int, severity: str, model: ModelConfig, summary: str, text: str) -> Obj:
    return {
        "alert": name,
        "expr": expr,
        "for": f"{minutes}m",
        # namespace: an aggregated expression (avg, sum) drops it, and Alertmanager routes teams' alerts by it
        "labels": {"severity": severity, "model": model.name, "namespace": model.namespace},
        "annotations": {"summary": summary, "description": text},
    }


def alert_rules(model: ModelConfig) -> list[Obj]:
    """The serving alerts: not ready, a backlog, slow answers, pods that find no room (no GPU left)."""
    engine, alerts = model.engine_spec, model.alerts
    load_minutes = math.ceil(model.probes.model_load_seconds / 60) + 5
    waiting = _model_series(model, engine.queue_metric)
    available, wanted = _replicas(model)
    pending = "kube_pod_status_unschedulable" + selector({"namespace": model.namespace})
    room = "room on the nodes"
    if model.resources.gpus:
        room = "GPUs: the GPU pool's budget (gpuPool.gpuBudget) or its nodes are used up"
    return [
        _alert(
            "ModelNotReady",
            f"{available} < {wanted}",
            load_minutes,
            "critical",
            model,
            f"Model {model.name} has fewer ready replicas than it should",
            f"Replicas of {model.name} have not become ready within the model's load budget "
            f"(probes.modelLoadSeconds {model.probes.model_load_seconds}s).",
        ),
        _alert(
            "ModelQueueBacklog",
            f"avg({waiting}) > {alerts.queue_depth}",
            alerts.queue_minutes,
            "warning",
            model,
            f"Requests queue up at model {model.name}",
            f"More than {alerts.queue_depth} requests wait per pod of {model.name} on average; the autoscaler is at "
            "its maximum or cannot add pods.",
        ),
        *(
            [
                _alert(
                    "ModelLatencyHigh",
                    f"{_p95(model)} > {alerts.p95_latency_seconds:g}",
                    10,
                    "warning",
                    model,
                    f"Model {model.name} answers slowly",
                    f"The 95th percentile request latency of {model.name} is above {alerts.p95_latency_seconds:g}s.",
                )
            ]
            if engine.latency_metric is not None  # an engine without a latency histogram gets no latency alert
            else []
        ),
        _alert(
            "ModelPodsPending",
            f"sum({pending}) > 0",
            10,
            "warning",
            model,
            f"Pods of model {model.name} cannot be scheduled",
            f"Pods of {model.name} wait for {room}.",
        ),
    ]


def prometheus_rule(model: ModelConfig, monitoring: MonitoringConfig) -> Obj | None:
    if not monitoring.enabled:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta(model.name, model.namespace, {**model_labels(model), **monitoring.labels}),
        "spec": {"groups": [{"name": f"{model.name}.serving", "rules": alert_rules(model)}]},
    }


def _panel(panel_id: int, title: str, unit: str, queries: Mapping[str, str]) -> Obj:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * ((panel_id - 1) % 2), "y": 8 * ((panel_id - 1) // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(queries.items())
        ],
    }


def dashboard(model: ModelConfig) -> Obj:
    """A Grafana dashboard of the model's engine metrics (and its GPUs', from the DCGM exporter)."""
    engine = model.engine_spec
    panels: list[tuple[str, str, dict[str, str]]] = [
        ("Requests waiting", "short", {"waiting": f"sum({_model_series(model, engine.queue_metric)})"}),
        ("Requests running", "short", {"running": f"sum({_model_series(model, engine.running_metric)})"}),
    ]
    # Each engine's panels from the counters it has: an encoder generates no tokens, llama.cpp counts no requests.
    if engine.requests_metric is not None:
        rps = f"sum(rate({_model_series(model, engine.requests_metric)}[5m]))"
        panels.append(("Requests per second", "reqps", {"rps": rps}))
    if engine.tokens_metric is not None:
        tps = f"sum(rate({_model_series(model, engine.tokens_metric)}[5m]))"
        panels.append(("Tokens generated per second", "short", {"tokens/s": tps}))
    if engine.latency_metric is not None:
        panels.append(("p95 latency", "s", {"p95": _p95(model)}))
    panels.append(("Replicas", "short", dict(zip(("ready", "wanted"), _replicas(model), strict=True))))
    if model.resources.gpus:
        gpu = selector({"namespace": model.namespace})  # the DCGM exporter labels each GPU with its pod
        panels += [
            ("GPU utilization", "percent", {"{{pod}}": f"avg by (pod) (DCGM_FI_DEV_GPU_UTIL{gpu})"}),
            ("GPU memory used", "decmbytes", {"{{pod}}": f"sum by (pod) (DCGM_FI_DEV_FB_USED{gpu})"}),
        ]
    return {
        "title": f"Model {model.name}",
        "uid": f"model-serving-{model.namespace}"[:40],
        "tags": [PART_OF, model.engine],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": [_panel(i, title, unit, queries) for i, (title, unit, queries) in enumerate(panels, start=1)],
    }


def _config_map(name: str, ns: str, labels: Mapping[str, str], data: Mapping[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, ns, labels), "data": dict(data)}


def dashboard_config_map(model: ModelConfig, monitoring: MonitoringConfig) -> Obj | None:
    """The dashboard as Grafana's dashboard sidecar (kube-prometheus-stack) picks it up: label grafana_dashboard."""
    if not monitoring.enabled:
        return None
    labels = {**model_labels(model), "grafana_dashboard": "1"}
    body = json.dumps(dashboard(model), indent=2, sort_keys=True)
    return _config_map(f"{model.name}-dashboard", model.namespace, labels, {f"{model.name}.json": body})


# ---------------------------------------------------------------------------------------------
# GPU pool objects
# ---------------------------------------------------------------------------------------------


def device_plugin_labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": DEVICE_PLUGIN_NAME,
        "app.kubernetes.io/instance": DEVICE_PLUGIN_NAME,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def device_plugin_config(pool: GpuPoolConfig) -> Obj:
    settings: Obj = {"version": "v1", "flags": {"migStrategy": pool.device_plugin.mig_strategy}}
    if pool.device_plugin.time_slicing_replicas > 1:
        settings["sharing"] = {
            "timeSlicing": {
                "resources": [{"name": pool.gpu_resource_name, "replicas": pool.device_plugin.time_slicing_replicas}]
            }
        }
    return _config_map(
        f"{DEVICE_PLUGIN_NAME}-config",
        pool.device_plugin.namespace,
        device_plugin_labels(),
        {"config.yaml": yaml.safe_dump(settings, sort_keys=False)},
    )


def device_plugin_security_context(pool: GpuPoolConfig) -> Obj:
    """Root (it registers a socket in the kubelet's directory), read-only, no capabilities but what MIG needs.

    With a MIG strategy other than none the plugin enumerates MIG devices through NVML, which needs SYS_ADMIN:
    NVIDIA's own deployment (the nvidia-device-plugin chart) adds it then, and so does this one. Kubernetes
    treats a container with SYS_ADMIN as able to escalate, so that case says so instead of claiming otherwise.
    """
    mig = pool.device_plugin.mig_strategy != "none"
    return {
        "allowPrivilegeEscalation": mig,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": False,
        "runAsUser": 0,
        "runAsGroup": 0,
        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]} if mig else {"drop": ["ALL"]},
    }


def device_plugin_daemon_set(pool: GpuPoolConfig) -> Obj:
    labels = device_plugin_labels()
    env = [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}]
    if pool.device_plugin.mig_strategy != "none":
        # The container toolkit then exposes the MIG monitor capability the plugin reads (as NVIDIA's chart does).
        env.append({"name": "NVIDIA_MIG_MONITOR_DEVICES", "value": "all"})
    # No probes: the plugin serves nothing but a gRPC unix socket to the kubelet (no health endpoint, no port),
    # NVIDIA's chart defines none, and the pinned image cannot be relied on for a shell to exec a check in. The
    # kubelet itself watches the registration: a plugin that dies is restarted, and a node whose plugin socket is
    # gone reports zero allocatable GPUs.
    container: Obj = {
        "name": DEVICE_PLUGIN_NAME,
        "image": pool.device_plugin.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["--config-file=/config/config.yaml"],
        "env": env,
        "securityContext": device_plugin_security_context(pool),
        # Guaranteed QoS: it must never be the pod a node under pressure evicts.
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "100m", "memory": "128Mi"},
        },
        "volumeMounts": [
            {"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"},
            {"name": "config", "mountPath": "/config", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes = [
        {"name": "device-plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
        {"name": "config", "configMap": {"name": f"{DEVICE_PLUGIN_NAME}-config"}},
        # The root filesystem is read-only; a scratch /tmp in case a library wants one.
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
    ]
    return _node_daemon_set(pool, DEVICE_PLUGIN_NAME, pool.device_plugin.namespace, labels, container, volumes)


def _node_daemon_set(
    pool: GpuPoolConfig,
    name: str,
    ns: str,
    labels: Mapping[str, str],
    container: Obj,
    volumes: Sequence[Obj],
    *,
    priority: str = "system-node-critical",
    runtime_class: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """A DaemonSet on every GPU node of the pool (its selector and taint), one pod at a time on updates."""
    scheduling = gpu_scheduling(pool)
    pod: Obj = {
        "priorityClassName": priority,
        "automountServiceAccountToken": False,
        "nodeSelector": dict(scheduling.node_selector),
        "tolerations": [
            *(dict(t) for t in scheduling.tolerations),
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
        ],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": list(volumes),
    }
    if runtime_class:
        pod["runtimeClassName"] = scheduling.runtime_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta(name, ns, labels, annotations=dict(annotations or {})),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def dcgm_labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": DCGM_EXPORTER_NAME,
        "app.kubernetes.io/instance": DCGM_EXPORTER_NAME,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def dcgm_counters(pool: GpuPoolConfig) -> Obj:
    """The exporter's counters file, from the one DCGM metric list (engines.DCGM_COUNTERS)."""
    lines = ["# DCGM field, Prometheus metric type, help message"]
    lines += [f"{name}, {kind}, {text}" for name, kind, text in DCGM_COUNTERS]
    data = {"counters.csv": "\n".join(lines) + "\n"}
    return _config_map(f"{DCGM_EXPORTER_NAME}-counters", pool.dcgm_exporter.namespace, dcgm_labels(), data)


def dcgm_exporter_daemon_set(pool: GpuPoolConfig) -> Obj:
    """NVIDIA's DCGM exporter on every GPU node: GPU metrics labelled with the pod each GPU is given to.

    It needs the GPUs without requesting any (the nvidia runtime class, all devices visible) and the kubelet's
    pod-resources socket (a hostPath, root) to name the pods. No capability: the device fields it exports need no
    profiling privilege (SYS_ADMIN), which NVIDIA's chart adds for the DCP fields this list leaves out.
    """
    labels = dcgm_labels()
    http = {"path": "/health", "port": "metrics"}
    container: Obj = {
        "name": DCGM_EXPORTER_NAME,
        "image": pool.dcgm_exporter.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-f", "/etc/dcgm-exporter/counters.csv", "--address", f":{DCGM_PORT}"],
        "env": [
            {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
        ],
        "ports": [{"name": "metrics", "containerPort": DCGM_PORT, "protocol": "TCP"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": False,
            "runAsUser": 0,
            "runAsGroup": 0,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"cpu": "100m", "memory": "512Mi"},
        },
        # DCGM starts its host engine first: give it a minute before the probes count.
        "startupProbe": {"httpGet": http, "periodSeconds": 5, "failureThreshold": 24},
        "readinessProbe": {"httpGet": http, "periodSeconds": 10},
        "livenessProbe": {"httpGet": http, "periodSeconds": 30, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True},
            {"name": "counters", "mountPath": "/etc/dcgm-exporter", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes = [
        {"name": "pod-resources", "hostPath": {"path": "/var/lib/kubelet/pod-resources"}},
        {"name": "counters", "configMap": {"name": f"{DCGM_EXPORTER_NAME}-counters"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    return _node_daemon_set(
        pool,
        DCGM_EXPORTER_NAME,
        pool.dcgm_exporter.namespace,
        labels,
        container,
        volumes,
        runtime_class=True,
        annotations={EXPORTER_ANNOTATION: DCGM.name},  # for the policy pack's scraped-metrics rule
    )


def dcgm_service(pool: GpuPoolConfig) -> Obj:
    """The exporters' metrics port, for the ServiceMonitor (cluster-internal)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(DCGM_EXPORTER_NAME, pool.dcgm_exporter.namespace, dcgm_labels()),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": DCGM_EXPORTER_NAME},
            "ports": [{"name": "metrics", "port": DCGM_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def dcgm_network_policy(pool: GpuPoolConfig, monitoring: MonitoringConfig) -> Obj:
    """Only Prometheus reaches the exporters, and they reach nothing (DCGM runs inside the exporter)."""
    rule = {"from": [_from_namespace(monitoring.namespace)], "ports": [{"protocol": "TCP", "port": DCGM_PORT}]}
    return _network_policy(
        DCGM_EXPORTER_NAME, pool.dcgm_exporter.namespace, dcgm_labels(), {}, [rule], deny_egress=True
    )


def dcgm_service_monitor(pool: GpuPoolConfig, monitoring: MonitoringConfig) -> Obj:
    """honorLabels: the exporter's own namespace and pod labels name the pod each GPU serves, not the exporter."""
    return _service_monitor(
        DCGM_EXPORTER_NAME,
        pool.dcgm_exporter.namespace,
        dcgm_labels(),
        {"app.kubernetes.io/name": DCGM_EXPORTER_NAME},
        "metrics",
        monitoring,
        honor_labels=True,
    )


def device_plugin_network_policy(pool: GpuPoolConfig) -> Obj:
    """Default deny for the plugin's namespace: the plugin talks to the kubelet over a unix socket, not the network."""
    return _network_policy(
        "default-deny", pool.device_plugin.namespace, device_plugin_labels(), {}, [], deny_egress=True
    )


def runtime_class(pool: GpuPoolConfig) -> Obj:
    scheduling = gpu_scheduling(pool)
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": _meta(pool.runtime_class, labels={"app.kubernetes.io/part-of": PART_OF}),
        "handler": "nvidia",
        # Pods naming this class land on GPU nodes even if they forget the selector.
        "scheduling": {
            "nodeSelector": dict(scheduling.node_selector),
            "tolerations": [dict(t) for t in scheduling.tolerations],
        },
    }


def karpenter_node_pool(pool: GpuPoolConfig) -> Obj | None:
    karpenter = pool.karpenter
    if karpenter is None:
        return None
    requirements: list[Obj] = [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(karpenter.capacity_types)},
    ]
    if karpenter.instance_types:
        requirements.append(
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(karpenter.instance_types)}
        )
    if karpenter.gpu_products:
        requirements.append(
            {"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": list(karpenter.gpu_products)}
        )
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": _meta(pool.name, labels={"app.kubernetes.io/part-of": PART_OF}),
        "spec": {
            "template": {
                "metadata": {"labels": dict(pool.node_selector)},
                "spec": {
                    "nodeClassRef": {
                        "group": karpenter.node_class_group,
                        "kind": karpenter.node_class_kind,
                        "name": karpenter.node_class_name,
                    },
                    "requirements": requirements,
                    "taints": [{"key": pool.taint.key, "value": pool.taint.value, "effect": pool.taint.effect}],
                    "expireAfter": karpenter.expire_after,
                },
            },
            # The GPU budget: Karpenter stops launching nodes once the pool holds this many GPUs.
            "limits": {pool.gpu_resource_name: str(pool.gpu_budget)},
            "disruption": {
                "consolidationPolicy": karpenter.consolidation_policy,
                "consolidateAfter": karpenter.consolidate_after,
                "budgets": [{"nodes": karpenter.disruption_budget_nodes}],
            },
        },
    }
