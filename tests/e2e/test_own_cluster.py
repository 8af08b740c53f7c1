"""`make up KUBE_CONTEXT=<context>`: the local stack deployed to a cluster of the user's own, named by a context
of their KUBECONFIG. Here that cluster is the local one, reached through KUBECONFIG and the context instead of the
stack's own settings, and the image by the tag its node holds (no image lock), as the README tells users of
kind or minikube to do. Nothing of the local cluster's own set-up runs. KEEP_PLACEMENT=1: this cluster's fake nodes
would take pods that are not pinned to its real node."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import KUBECONFIG, Kube, post_embeddings, wait_until
from tests.project import copy_project

CONTEXT = "model-serving-local"  # the local cluster's context in .cluster/kubeconfig


def test_up_and_down_through_a_kube_context(kube: Kube, tmp_path: Path) -> None:
    project = copy_project(tmp_path)  # no .cluster/ in the copy: only KUBECONFIG leads to the cluster
    project.env["KUBECONFIG"] = str(KUBECONFIG)
    project.edit_config("local", {"namespace": "owncluster"})  # not the checkout's own `make up` namespace
    up = project.make("up", "STACK=local", f"KUBE_CONTEXT={CONTEXT}", "KEEP_PLACEMENT=1")
    assert "local-cluster" not in up.stdout and "starting etcd" not in up.stdout
    # The cluster has prometheus-operator and KEDA: nothing is turned off; one line says which images it needs.
    assert "off:" not in up.stderr and "no KEDA" not in up.stderr, up.stderr
    assert f"{CONTEXT}: the cluster's nodes must have model-serving/llamacpp:local, model-serving/server:local" in (
        up.stderr
    )
    outputs = json.loads(project.pulumi("stack", "output", "--json", "--stack", "local").stdout)
    assert outputs["minilm_image_ref"] == "model-serving/server:local"
    assert outputs["gemma_image_ref"] == "model-serving/llamacpp:local"
    status, body = post_embeddings(outputs["minilm_endpoint"], {"input": "hello"})
    assert status == 200 and len(body["data"][0]["embedding"]) == 384
    project.make("down", "STACK=local", f"KUBE_CONTEXT={CONTEXT}", "KEEP_PLACEMENT=1")
    gone = ("owncluster-minilm", "owncluster-gemma")
    wait_until("the stack's namespaces to go", lambda: not any(kube.exists("namespace", ns) for ns in gone), 120)
    assert "kubeContext" not in (project.path / "stacks" / "Pulumi.local.yaml").read_text()
