"""A model's workload and what it needs first: ServiceAccount, hub-token Secret, cache claim, the pre-stage Job,
the Deployment (a LeaderWorkerSet for a multi-node model) and its PodDisruptionBudget, the canary's beside them;
and :func:`plan`, their order."""

from __future__ import annotations

from typing import Any, cast

from components.config import TMP_SIZE, ModelConfig
from components.config.engines import EXPORTER_ANNOTATION
from components.specs import wire
from components.specs.base import (
    CACHE_DIR,
    HUB_TOKEN_DIR,
    LWS_GROUP,
    METRICS_PATH,
    PART_OF,
    ROLE_LABEL,
    Obj,
    Step,
    container_security_context,
    merge_patch,
    meta,
    model_labels,
    pod_security_context,
    selector_labels,
    toleration,
)
from components.specs.gpu_pool import GpuScheduling
from components.specs.pods import pod_spec, server_container

# What ``components.specs`` re-exports (each concern's ``plan`` is reached through its module).
__all__ = [
    "PRESTAGE_BACKOFF_LIMIT",
    "PRESTAGE_SCRIPT",
    "RAY_PORT",
    "deployment",
    "deployment_timeout",
    "disruption_budget",
    "hub_token_secret",
    "leader_worker_set",
    "model_cache_claim",
    "prestage_job",
    "prestage_job_name",
    "progress_deadline_seconds",
    "service_account",
    "workload",
]


def service_account(model: ModelConfig) -> wire.ServiceAccount:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(model.name, model.namespace, model_labels(model)),
        # The server never calls the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def hub_token_secret(model: ModelConfig, token: Any) -> wire.Secret:
    """The model-hub token, mounted as a file; ``token`` is a secret pulumi.Output."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(f"{model.name}-hub-token", model.namespace, model_labels(model)),
        "type": "Opaque",
        "stringData": {"token": token},
    }


def model_cache_claim(model: ModelConfig) -> wire.PersistentVolumeClaim | None:
    if model.cache.type != "pvc":
        return None
    spec: wire.PersistentVolumeClaimSpec = {
        "accessModes": [model.cache.access_mode],
        "resources": {"requests": {"storage": model.cache.size}},
    }
    if model.cache.storage_class:
        spec["storageClassName"] = model.cache.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        # Unbound claims wait for their first consumer: Pulumi must not block on them.
        "metadata": meta(
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


def prestage_job(model: ModelConfig, image: Any) -> wire.Job | None:
    """The Job that hydrates the model's PVC cache with ``modelRevision`` (modelCache.prestage)."""
    if not model.cache.prestage:
        return None
    if model.model_revision is None or model.cache.type != "pvc":
        raise ValueError(f"model {model.name!r}: modelCache.prestage needs a pvc cache and a modelRevision")
    amounts = {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"}
    env = {"MODEL_ID": model.model_id, "MODEL_REVISION": model.model_revision, "HOME": "/tmp", "HF_HOME": CACHE_DIR}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if model.hub_endpoint is not None:
        env["HF_ENDPOINT"] = model.hub_endpoint
    volumes: list[wire.Volume] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": f"{model.name}-cache"}},
    ]
    mounts: list[wire.VolumeMount] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "model-cache", "mountPath": CACHE_DIR},
    ]
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
    container: wire.Container = {
        "name": "prestage",
        "image": model.cache.prestage_image or image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", PRESTAGE_SCRIPT],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    pod: wire.PodSpec = {
        "restartPolicy": "Never",
        "priorityClassName": model.priority_class.name,
        "serviceAccountName": model.name,
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    # Where the model's own nodeSelector and tolerations say, not the GPU pool's: it needs no GPU.
    if model.node_selector:
        pod["nodeSelector"] = dict(model.node_selector)
    if model.tolerations:
        pod["tolerations"] = [toleration(t) for t in model.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(prestage_job_name(model), model.namespace, labels),
        "spec": {
            "backoffLimit": PRESTAGE_BACKOFF_LIMIT,
            "activeDeadlineSeconds": model.cache.prestage_deadline_seconds,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def progress_deadline_seconds(model: ModelConfig) -> int:
    if model.rollout.progress_deadline_seconds is not None:
        return model.rollout.progress_deadline_seconds
    # Image pulls of tens of GiB plus the model load; the default 600 s fails healthy rollouts.
    return max(600, model.probes.model_load_seconds + 900)


def _scrape_annotations(model: ModelConfig) -> dict[str, str]:
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(model.port), "prometheus.io/path": METRICS_PATH}


# pulumi-kubernetes' server-side apply takes fields another manager owns instead of failing on them.
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"


def _workload_meta(model: ModelConfig) -> wire.ObjectMeta:
    # What the pods export on /metrics, for the policy pack's scraped-metrics rule (on the workload, not the pod
    # template: changing it rolls no pod).
    annotations = {EXPORTER_ANNOTATION: model.engine_spec.exporter.name}
    if model.autoscaling is None:
        # The program sets the replica count: after an autoscaler, whose scale writes left the controller manager
        # owning spec.replicas, the count is the program's again (else every update fails on that conflict).
        annotations[PATCH_FORCE_ANNOTATION] = "true"
    return meta(model.instance, model.namespace, model_labels(model), annotations=annotations)


def workload(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> wire.Deployment | Obj:
    """The model's pods: a Deployment, or a LeaderWorkerSet when each replica spans several nodes."""
    return leader_worker_set(model, image, scheduling) if model.multi_node else deployment(model, image, scheduling)


def deployment(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> wire.Deployment:
    container = server_container(model, image, scheduling)
    spec: wire.DeploymentSpec = {
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
            "spec": pod_spec(model, scheduling, container),
        },
    }
    if model.autoscaling is None:
        spec["replicas"] = model.replicas  # left out under an HPA or a ScaledObject, which owns the count
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _workload_meta(model), "spec": spec}


# Multi-node replicas: vLLM over Ray, the leader pod the Ray head and the API server, one worker pod per other node.
RAY_PORT = 6379


def leader_worker_set(model: ModelConfig, image: Any, scheduling: GpuScheduling) -> Obj:
    """A LeaderWorkerSet: per replica a group of ``nodes_per_replica`` pods, one per node, each with its node's
    GPUs; vLLM shards the model tensor-parallel within a node and pipeline-parallel across the group's nodes."""
    server = server_container(model, image, scheduling)
    # The Ray head first; the API server then finds the workers' GPUs through it (LWS sets the leader's address
    # and the group size in every pod).
    leader: wire.Container = {
        **server,
        "command": [
            "/bin/sh",
            "-c",
            f'ray start --head --port={RAY_PORT} --dashboard-host=127.0.0.1 && exec vllm serve "$@"',
            "vllm",
        ],
        "ports": [*server["ports"], {"name": "ray", "containerPort": RAY_PORT, "protocol": "TCP"}],
    }
    # A worker only joins the Ray cluster: none of the API server's args, ports or probes.
    serving = ("args", "ports", "startupProbe", "readinessProbe", "livenessProbe")
    worker = cast(wire.Container, {k: v for k, v in server.items() if k not in serving})
    worker["command"] = ["/bin/sh", "-c", f"exec ray start --address=$LWS_LEADER_ADDRESS:{RAY_PORT} --block"]
    # The containerPatch has the last word in both (a command it sets replaces the Ray start-up); a worker takes none
    # of its ports or probes, as it serves nothing.
    patch = model.container_patch
    leader = cast(wire.Container, merge_patch(leader, patch))
    worker = cast(wire.Container, merge_patch(worker, {k: v for k, v in patch.items() if k not in serving[1:]}))
    labels = model_labels(model)
    spec: Obj = {
        "startupPolicy": "LeaderCreated",
        # Each group's headless Service (the workers' leader address) is named after its leader pod: the Shared
        # policy's one Service would take the LeaderWorkerSet's name, which is the model's Service's.
        "networkConfig": {"subdomainPolicy": "UniquePerReplica"},
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
                "spec": pod_spec(model, scheduling, leader),
            },
            "workerTemplate": {
                "metadata": {"labels": {**labels, ROLE_LABEL: "worker"}},
                "spec": pod_spec(model, scheduling, worker),
            },
        },
    }
    if model.autoscaling is None:
        spec["replicas"] = model.replicas
    return {"apiVersion": f"{LWS_GROUP}/v1", "kind": "LeaderWorkerSet", "metadata": _workload_meta(model), "spec": spec}


def disruption_budget(model: ModelConfig) -> wire.PodDisruptionBudget | None:
    if model.max_replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(model.instance, model.namespace, model_labels(model)),
        "spec": {
            # One replica at a time: one pod, or a multi-node replica's whole group (it only serves whole).
            "maxUnavailable": model.nodes_per_replica,
            "selector": {"matchLabels": selector_labels(model)},
            # A pod stuck loading must not block node drains.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def deployment_timeout(model: ModelConfig) -> str:
    """A while past the Deployment's own progress deadline: Kubernetes reports a stuck rollout first, and
    Pulumi, which only warns about that, then fails the update instead of waiting on."""
    deadline = progress_deadline_seconds(model)
    return f"{deadline + min(600, max(60, deadline // 2))}s"


def plan(
    model: ModelConfig, image: Any, scheduling: GpuScheduling, hub_token: Any, canary_image: Any = None
) -> list[Step]:
    """ServiceAccount, hub-token Secret, cache claim, the prestage Job, then the Deployment (a
    LeaderWorkerSet for a multi-node model); a PDB; the canary's Deployment (and its PDB) beside them.
    ``hub_token``: a secret Output; ``canary_image``: the canary's image (default ``image``)."""
    steps = [Step("service-account", service_account(model))]
    if model.hub_token:
        if hub_token is None:
            raise ValueError(f"model {model.name!r} mounts a hub token but none was given")
        steps.append(Step("hub-token", hub_token_secret(model, hub_token)))
    claim = model_cache_claim(model)
    if claim is not None:
        steps.append(Step("cache-claim", claim))
    job = prestage_job(model, image)
    if job is not None:  # the rollout waits for the weights (Pulumi awaits the Job's completion)
        after = tuple(step.name for step in steps)
        steps.append(Step("prestage", job, after=after, timeout=f"{model.cache.prestage_deadline_seconds + 300}s"))
    needed = tuple(step.name for step in steps)
    tracks = [(model, image, "")]
    if model.canary is not None:
        tracks.append((model.canary_track(), image if canary_image is None else canary_image, "canary-"))
    for track, track_image, prefix in tracks:
        steps.append(
            Step(
                f"{prefix}deployment",
                workload(track, track_image, scheduling),
                after=needed,
                timeout=deployment_timeout(track),
            )
        )
        budget = disruption_budget(track)
        if budget is not None:
            steps.append(Step(f"{prefix}disruption-budget", budget))
    return steps
