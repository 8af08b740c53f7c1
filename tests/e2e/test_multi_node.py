"""A multi-node model runs as the LeaderWorkerSet controller makes it: the group forms (a leader and its worker, each
on one of the real node's two GPUs), the Service reaches the leaders only, a lost worker brings its whole group back,
and KEDA changes the number of groups through the LeaderWorkerSet's scale subresource.

The model is the e2e stack's `llama-70b` as the program renders it, sized down to a model of two one-GPU nodes
(gpuPool.gpusPerNode 1, 30B parameters) so that one group fits the real node, with llm-d's inference simulator in
vLLM's place: the containerPatch gives leader and worker the simulator's command and the mapped flags
(tests/e2e/stand_in.py). A Ray cluster is what the simulator does not stand in for; the group, its labels, its
leader address and its restarts are the controller's, and real. Timings go to .cluster/logs/e2e-multi-node.json.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from components import specs
from tests.e2e.conftest import KUBECONFIG, Kube, Load, Stack, new_stack, record_timing, wait_until
from tests.e2e.stand_in import (
    NODE,
    NODE_GPUS,
    SERVED,
    chat,
    keda_on_the_queue,
    on_the_real_node,
    ready,
    rendered,
    simulator_patch,
)
from tests.project import Project

SOURCE = "e2e"  # whose llama-70b this is
STACK = "multinode"  # a stack of its own: the cluster sizes its fake GPU nodes from the e2e stack file's gpuPool
PREFIX = "mn"  # the tests' own namespaces
MODEL = "llama-mn"
NAMESPACE = f"{PREFIX}-{MODEL}"
LWS = "leaderworkersets.leaderworkerset.x-k8s.io"
NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
TIMINGS = KUBECONFIG.parent / "logs" / "e2e-multi-node.json"


def _group_model(project: Project) -> dict[str, Any]:
    """The e2e stack's llama-70b, two one-GPU pods a replica, on the real node with the simulator; KEDA between one
    group and two on vLLM's queue metric."""
    config = project.config(SOURCE)
    model = next(m for m in config["models"] if m["name"] == "llama-70b")
    model.pop("replicas", None)
    model.pop("hubToken", None)
    model["architecture"]["params"] = 30_000_000_000
    pool = {**config["gpuPool"], "gpusPerNode": 1}
    on_the_real_node(model, name=MODEL, autoscaling=keda_on_the_queue(2))
    sized = rendered(config, model, namespace=PREFIX, gpuPool=pool)
    assert (sized.nodes_per_replica, sized.resources.gpus) == (2, 1), "one group: two pods of one GPU"
    model["containerPatch"] = simulator_patch(sized)  # leader and worker: the patch has the last word in both
    return model


@pytest.fixture(scope="module")
def deployed(e2e_project: Project) -> Iterator[Stack]:
    model = _group_model(e2e_project)
    # Without the pool's DaemonSets: their exemptions are the e2e stack's policy config's, not this stack's.
    daemons = {"devicePlugin": {"enabled": False}, "dcgmExporter": {"enabled": False}}
    pool = {**e2e_project.config(SOURCE)["gpuPool"], "gpusPerNode": 1, **daemons}
    e2e_project.stack_file(STACK).write_text(e2e_project.stack_file(SOURCE).read_text())
    e2e_project.edit_config(
        STACK,
        {"namespace": PREFIX, "imageLock": ".cluster/images.json", "gateway": None, "gpuPool": pool, "models": [model]},
    )
    stack = new_stack(e2e_project, STACK)
    start = time.monotonic()
    stack.make("up")
    kube = Kube()
    wait_until("the group's two pods ready", lambda: len([p for p in _pods(kube) if ready(p)]) == 2, timeout=240)
    record_timing(TIMINGS, "group_formed_seconds", time.monotonic() - start)
    yield stack


def _pods(kube: Kube) -> list[dict[str, Any]]:
    return [
        p for p in kube.items("pods", NAMESPACE, f"{NAME_LABEL}={MODEL}") if not p["metadata"].get("deletionTimestamp")
    ]


def _group(kube: Kube, index: str = "0") -> tuple[dict[str, Any], dict[str, Any]]:
    """The leader and the worker of group ``index``."""
    pods = [p for p in _pods(kube) if p["metadata"]["labels"].get(GROUP_INDEX) == index]
    leaders = [p for p in pods if p["metadata"]["labels"].get(WORKER_INDEX) == "0"]
    workers = [p for p in pods if p["metadata"]["labels"].get(WORKER_INDEX) == "1"]
    assert len(leaders) == len(workers) == 1, [p["metadata"]["name"] for p in pods]
    return leaders[0], workers[0]


def test_the_controller_forms_the_group_on_the_nodes_gpus(deployed: Stack, kube: Kube) -> None:
    lws = kube.get(LWS, MODEL, "-n", NAMESPACE)
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    leader, worker = _group(kube)
    for pod, role in ((leader, "leader"), (worker, "worker")):
        assert pod["metadata"]["labels"][specs.ROLE_LABEL] == role
        assert pod["spec"]["nodeName"] == NODE and pod["status"]["phase"] == "Running" and ready(pod)
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert len(_pods(kube)) == NODE_GPUS  # the group holds the node's GPUs
    # The controller's pod webhook told the worker where its leader is: the leader's name in the group's own headless
    # Service (subdomainPolicy UniquePerReplica), which the controller made and which lists both pods.
    name = leader["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0].get("env", [])}
    assert env["LWS_LEADER_ADDRESS"] == f"{name}.{name}.{NAMESPACE}", env
    assert env["LWS_GROUP_SIZE"] == "2" and worker["spec"]["subdomain"] == leader["spec"]["subdomain"] == name
    headless = kube.get("service", name, "-n", NAMESPACE)
    assert headless["spec"]["clusterIP"] == "None"
    slices = kube.items("endpointslices", NAMESPACE, f"kubernetes.io/service-name={name}")
    members = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
    assert members == {leader["status"]["podIP"], worker["status"]["podIP"]}
    conditions = {c["type"]: c["status"] for c in lws["status"].get("conditions", [])}
    assert conditions.get("Available") == "True", lws["status"]
    answer = chat(deployed.endpoint(MODEL))
    assert answer["model"] == SERVED and answer["choices"][0]["message"]["content"]


def test_the_service_reaches_the_leaders_only(deployed: Stack, kube: Kube) -> None:
    leader, worker = _group(kube)
    slices = kube.items("endpointslices", NAMESPACE, f"kubernetes.io/service-name={MODEL}")
    addresses = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
    assert addresses == {leader["status"]["podIP"]}
    assert worker["status"]["podIP"] not in addresses


def test_a_lost_worker_brings_its_whole_group_back(deployed: Stack, kube: Kube) -> None:
    """RecreateGroupOnPodRestart: the worker's loss restarts the leader too, and the group serves again."""
    leader, worker = _group(kube)
    before = {leader["metadata"]["uid"], worker["metadata"]["uid"]}
    start = time.monotonic()
    kube.run("delete", "pod", worker["metadata"]["name"], "-n", NAMESPACE, "--wait=false")

    def recreated() -> bool:
        pods = _pods(kube)
        return len(pods) == 2 and all(ready(p) for p in pods) and not before & {p["metadata"]["uid"] for p in pods}

    wait_until("a new leader and a new worker, ready", recreated, timeout=240, interval=2)
    record_timing(TIMINGS, "group_recreated_seconds", time.monotonic() - start)
    assert chat(deployed.endpoint(MODEL))["choices"]


def test_keda_changes_the_number_of_groups_through_the_scale_subresource(deployed: Stack, kube: Kube) -> None:
    """Under load the leader's queue grows; KEDA's HPA scales the LeaderWorkerSet to two groups. The second group's
    pods wait for GPUs the node does not have (the budget is the node's), and the count returns to one."""
    (hpa,) = kube.items("horizontalpodautoscalers", NAMESPACE)
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet" and hpa["spec"]["maxReplicas"] == 2
    url = deployed.endpoint(MODEL)

    def request() -> str | None:
        return None if chat(url)["choices"] else "no choices"

    start = time.monotonic()
    with Load(request, clients=4, limit=300) as load:
        wait_until(
            "two groups",
            lambda: kube.get(LWS, MODEL, "-n", NAMESPACE)["spec"].get("replicas") == 2,
            timeout=240,
            interval=2,
        )
        record_timing(TIMINGS, "scale_to_two_groups_seconds", time.monotonic() - start)
        wait_until(
            "the second group's leader",
            lambda: any(p["metadata"]["labels"].get(GROUP_INDEX) == "1" for p in _pods(kube)),
            timeout=60,
        )
        second = [p for p in _pods(kube) if p["metadata"]["labels"].get(GROUP_INDEX) == "1"]
        assert all(p["status"]["phase"] == "Pending" for p in second), [p["status"]["phase"] for p in second]
    assert load.ok > 0 and not load.failures, load.failures[:3]
    stopped = time.monotonic()
    wait_until(
        "one group again",
        lambda: kube.get(LWS, MODEL, "-n", NAMESPACE)["spec"].get("replicas") == 1,
        timeout=300,
        interval=3,
    )
    wait_until("the second group's pods gone", lambda: len(_pods(kube)) == 2, timeout=120, interval=2)
    record_timing(TIMINGS, "scale_to_one_group_seconds", time.monotonic() - stopped)
