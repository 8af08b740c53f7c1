"""Volumes bind as on a cloud: the local cluster's default StorageClass (local-path-provisioner, scripts/cluster/
addons.py) provisions a model's cache claim by itself, the model's pod on the real node mounts it, destroying the
stack deletes the volume and its directory, and a claim that cannot bind is named by `make up`.

The model is the `local` stack's embeddings server with its cache on a claim (modelCache.type pvc) instead of an
emptyDir. Timings go to .cluster/logs/e2e-storage.json.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import KUBECONFIG, Kube, Stack, new_stack, post_embeddings, record_timing, wait_until
from tests.project import Project

STACK = "local"
PREFIX = "vol"
MODEL = "minilm"
NAMESPACE = f"{PREFIX}-{MODEL}"
CLAIM = f"{MODEL}-cache"
VOLUMES = KUBECONFIG.parent.resolve() / "node" / "volumes"  # scripts/cluster/addons.py's VOLUMES_DIR
TIMINGS = KUBECONFIG.parent / "logs" / "e2e-storage.json"


def _model(project: Project, **cache: Any) -> dict[str, Any]:
    model = next(m for m in project.config(STACK)["models"] if m["name"] == MODEL)
    model.pop("autoscaling", None)
    model.update(replicas=1, modelCache={"type": "pvc", "size": "1Gi", "accessMode": "ReadWriteMany", **cache})
    return model


@pytest.fixture(scope="module")
def deployed(e2e_project: Project) -> Iterator[Stack]:
    e2e_project.edit_config(STACK, {"namespace": PREFIX, "models": [_model(e2e_project)]})
    stack = new_stack(e2e_project, STACK)
    start = time.monotonic()
    stack.make("up")
    record_timing(TIMINGS, "up_with_a_provisioned_claim_seconds", time.monotonic() - start)
    yield stack


def _volume_dir(volume: dict[str, Any]) -> Path:
    return Path(volume["spec"]["hostPath"]["path"])


def test_the_claim_binds_by_itself_to_a_provisioned_volume(deployed: Stack, kube: Kube) -> None:
    claim = kube.get("pvc", CLAIM, "-n", NAMESPACE)
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "local-path"  # the default class: the stack names none
    volume = kube.get("pv", claim["spec"]["volumeName"])
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert "nodeAffinity" not in volume["spec"]  # shared-filesystem mode: any node's pods may use it
    assert volume["spec"]["capacity"]["storage"] == "1Gi"
    # The helper pod made its directory on the real node, writable by the model's non-root user.
    path = _volume_dir(volume)
    assert path.parent == VOLUMES and path.is_dir() and path.stat().st_mode & 0o777 == 0o777


def test_the_models_pod_on_the_real_node_mounts_the_volume_and_serves(deployed: Stack, kube: Kube) -> None:
    (pod,) = [p for p in kube.items("pods", NAMESPACE, f"app.kubernetes.io/instance={MODEL}")]
    assert pod["spec"]["nodeName"] == "model-serving-node" and pod["status"]["phase"] == "Running"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == CLAIM
    status, body = post_embeddings(deployed.endpoint(MODEL), {"input": "a cached model"})
    assert status == 200 and len(body["data"][0]["embedding"]) == 384


def test_destroy_deletes_the_volume_and_its_directory(deployed: Stack, kube: Kube) -> None:
    volume = kube.get("pv", kube.get("pvc", CLAIM, "-n", NAMESPACE)["spec"]["volumeName"])
    name, path = volume["metadata"]["name"], _volume_dir(volume)
    start = time.monotonic()
    deployed.make("destroy")
    wait_until("the volume deleted", lambda: not kube.exists("pv", name), timeout=120, interval=2)
    record_timing(TIMINGS, "volume_deleted_after_destroy_seconds", time.monotonic() - start)
    assert not path.exists()


def test_a_claim_that_cannot_bind_is_named_by_up(deployed: Stack, kube: Kube) -> None:
    """A StorageClass the cluster lacks: the pod waits on the claim, the rollout's deadline passes, and `make up`
    names the claim with the provisioner's reason besides the pod's."""
    model = _model(deployed.project, storageClass="no-such-class")
    model["rollout"] = {**model.get("rollout", {}), "progressDeadlineSeconds": 30}
    deployed.project.edit_config(STACK, {"models": [model]})
    start = time.monotonic()
    result = deployed.make("up", check=False, timeout=600)
    record_timing(TIMINGS, "unbound_claim_up_fails_seconds", time.monotonic() - start)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    named = re.search(rf"PersistentVolumeClaim {NAMESPACE}/{CLAIM}: Pending: (.*)", output)
    assert named is not None, output[-3000:]
    assert 'storageclass.storage.k8s.io "no-such-class" not found' in named.group(1), named.group(1)
    deployed.make("destroy")
