"""Pre-staged weights for real: the pre-stage Job runs as a pod on the real node, downloads the model's revision from a
stand-in for the hub's file API (a pod of this test, tests/e2e/hub_stand_in.py, reached through the model's
`hubEndpoint`) with the stack's hub token, verifies it into the cache claim the cluster provisions, and the model's
Deployment starts only after it, reading the cache offline.

The model is the e2e stack's `llama` with the vLLM stand-in (tests/e2e/stand_in.py) on the real node, its cache a
ReadWriteMany claim pre-staged by the pre-stage image the cluster builds (app/prestage, `modelCache.prestageImage`).
Timings go to .cluster/logs/e2e-prestage.json.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import KUBECONFIG, Kube, Stack, new_stack, record_timing
from tests.e2e.stand_in import (
    LOCAL_NODE,
    LOCAL_TOLERATION,
    NODE,
    chat,
    on_the_real_node,
    ready,
    rendered,
    simulator_patch,
)
from tests.project import Project

STACK = "e2e"
PREFIX = "stage"
NAMESPACE = f"{PREFIX}-llama"
HUB_NS = "hub-stand-in"
HUB_PORT = 8080
REPO = "stand-in/tiny-model"
COMMIT = "5f0c3a1b2d4e6f8091a2b3c4d5e6f708192a3b4c"
TOKEN = "hf_stand_in_prestage"
PRESTAGE_IMAGE = "model-serving/prestage:local"  # app/prestage, built and pinned by make cluster-up
STAND_IN_SCRIPT = Path(__file__).with_name("hub_stand_in.py")
VOLUMES = KUBECONFIG.parent.resolve() / "node" / "volumes"  # scripts/cluster/addons.py's VOLUMES_DIR
TIMINGS = KUBECONFIG.parent / "logs" / "e2e-prestage.json"


def _pinned(ref: str) -> str:
    pinned: str = json.loads((KUBECONFIG.parent / "images.json").read_text())[ref]
    return pinned


def _hub_objects() -> list[dict[str, Any]]:
    labels = {"app": "hub"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hub", "namespace": HUB_NS, "labels": labels},
        "spec": {
            "nodeSelector": LOCAL_NODE,
            "tolerations": [LOCAL_TOLERATION],
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "hub",
                    "image": _pinned(PRESTAGE_IMAGE),
                    "imagePullPolicy": "Never",
                    "command": ["python3", "/hub/hub_stand_in.py", str(HUB_PORT)],
                    "env": [
                        {"name": "HUB_REPO", "value": REPO},
                        {"name": "HUB_COMMIT", "value": COMMIT},
                        {"name": "HUB_TOKEN", "value": TOKEN},
                    ],
                    "ports": [{"containerPort": HUB_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": HUB_PORT}, "periodSeconds": 1},
                    "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "script", "mountPath": "/hub"}],
                }
            ],
            "volumes": [{"name": "script", "configMap": {"name": "hub"}}],
        },
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": HUB_NS}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "hub", "namespace": HUB_NS},
            "data": {"hub_stand_in.py": STAND_IN_SCRIPT.read_text()},
        },
        pod,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hub", "namespace": HUB_NS},
            "spec": {"selector": labels, "ports": [{"port": HUB_PORT, "targetPort": HUB_PORT}]},
        },
    ]


def _prestaged_model(project: Project) -> dict[str, Any]:
    config = project.config(STACK)
    model = next(m for m in config["models"] if m["name"] == "llama")
    for key in ("canary", "routing", "autoscaling"):
        model.pop(key, None)
    on_the_real_node(
        model,
        modelId=REPO,
        modelRevision=COMMIT,
        hubEndpoint=f"http://hub.{HUB_NS}.svc:{HUB_PORT}",
        modelCache={
            "type": "pvc",
            "size": "1Gi",
            "accessMode": "ReadWriteMany",
            "prestage": True,
            "prestageImage": PRESTAGE_IMAGE,
            "prestageDeadlineSeconds": 300,
        },
        replicas=1,
    )
    model["containerPatch"] = simulator_patch(rendered(config, model, namespace=PREFIX))
    return model


@pytest.fixture(scope="module")
def deployed(e2e_project: Project, kube: Kube) -> Iterator[Stack]:
    kube.run("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": _hub_objects()}))
    try:
        kube.run("wait", "--for=condition=Ready", "pod/hub", "-n", HUB_NS, "--timeout=120s", timeout=150)
        e2e_project.edit_config(
            STACK,
            {
                "namespace": PREFIX,
                "imageLock": ".cluster/images.json",
                "gateway": None,
                "models": [_prestaged_model(e2e_project)],
            },
        )
        stack = new_stack(e2e_project, STACK, secrets={"hubToken": TOKEN})
        start = time.monotonic()
        stack.make("up")
        record_timing(TIMINGS, "up_with_a_real_prestage_seconds", time.monotonic() - start)
        yield stack
    finally:
        kube.run("delete", "namespace", HUB_NS, "--wait=false", check=False)


def _job(kube: Kube) -> dict[str, Any]:
    (job,) = kube.items("jobs", NAMESPACE)
    return job


def test_the_job_ran_on_the_real_node_and_verified_the_revision(deployed: Stack, kube: Kube) -> None:
    job = _job(kube)
    assert job["status"].get("succeeded") == 1, job["status"]
    (pod,) = kube.items("pods", NAMESPACE, f"job-name={job['metadata']['name']}")
    assert pod["spec"]["nodeName"] == NODE and pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["containers"][0]["image"] == _pinned(PRESTAGE_IMAGE)
    log = kube.run("logs", pod["metadata"]["name"], "-n", NAMESPACE).stdout
    assert f"{REPO}@{COMMIT}: 2 files verified" in log, log


def _hub(kube: Kube, path: str) -> Any:
    """GET from the stand-in through the API server's service proxy (the test's own traffic stays in the cluster)."""
    return json.loads(
        kube.run("get", "--raw", f"/api/v1/namespaces/{HUB_NS}/services/hub:{HUB_PORT}/proxy{path}").stdout
    )


def test_the_revision_is_in_the_provisioned_volume_as_the_hub_served_it(deployed: Stack, kube: Kube) -> None:
    claim = kube.get("pvc", "llama-cache", "-n", NAMESPACE)
    volume = kube.get("pv", claim["spec"]["volumeName"])
    root = Path(volume["spec"]["hostPath"]["path"])
    assert root.parent == VOLUMES
    snapshot = root / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    served = _hub(kube, "/_files")
    assert {f: hashlib.sha256((snapshot / f).read_bytes()).hexdigest() for f in served} == served


def test_every_hub_request_carried_the_stacks_token(deployed: Stack, kube: Kube) -> None:
    seen = _hub(kube, "/_requests")
    downloads = [r for r in seen if r["path"].startswith(f"/{REPO}/resolve/{COMMIT}/")]
    assert {r["path"].rsplit("/", 1)[1] for r in downloads} == {"config.json", "model.safetensors"}
    assert seen and all(r["authorized"] for r in seen), seen


def test_the_model_started_after_the_job_and_reads_the_cache_offline(deployed: Stack, kube: Kube) -> None:
    job = _job(kube)
    completed = next(c for c in job["status"]["conditions"] if c["type"] == "Complete")["lastTransitionTime"]
    deployment = kube.get("deployment", "llama", "-n", NAMESPACE)
    assert deployment["metadata"]["creationTimestamp"] >= completed
    (pod,) = [p for p in kube.items("pods", NAMESPACE, "app.kubernetes.io/instance=llama")]
    assert pod["spec"]["nodeName"] == NODE and ready(pod)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_ENDPOINT"] == f"http://hub.{HUB_NS}.svc:{HUB_PORT}"
    assert chat(deployed.endpoint("llama"))["choices"]
