"""An `up` killed mid-way (SIGKILL of the CLI and its plugins) is recovered by the README's steps."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

from tests.e2e.conftest import Kube, new_stack, planned_objects, wait_until
from tests.project import Project, restore_sigint


def _objects(kube: Kube, namespaces: set[str]) -> dict[str, list[str]]:
    kinds = "deployments,replicasets,services,serviceaccounts,networkpolicies,poddisruptionbudgets,hpa,secrets"
    kinds += ",scaledobjects.keda.sh,resourcequotas,limitranges"
    found: dict[str, list[str]] = {}
    for namespace in sorted(namespaces):
        for item in kube.items(kinds, namespace):
            if item["kind"] == "Secret" and item.get("type") != "Opaque":
                continue  # the hub token only, not service-account tokens
            if item["kind"] == "ServiceAccount" and item["metadata"]["name"] == "default":
                continue  # every namespace's own
            if any(o["kind"] in ("ScaledObject", "Pod") for o in item["metadata"].get("ownerReferences", [])):
                continue  # KEDA's HPA, a LeaderWorkerSet group's headless Service (its leader's): not the program's
            found.setdefault(item["kind"], []).append(f"{namespace}/{item['metadata']['name']}")
    return found


def _pending(checkpoint: Path) -> list[object]:
    """The operations in flight the file backend's checkpoint records (none while it is being replaced)."""
    try:
        latest = json.loads(checkpoint.read_text())["checkpoint"]["latest"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return list((latest or {}).get("pending_operations") or [])


def _descendants(root: int) -> list[int]:
    """The processes started by ``root``, transitively (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_killed_up_is_recovered_and_converges(e2e_project: Project, kube: Kube, hub_token: str) -> None:
    stack = new_stack(e2e_project, "e2e", secrets={"hubToken": hub_token})
    up = subprocess.Popen(
        ["make", "--silent", "-C", str(e2e_project.path), "up", "STACK=e2e"],
        env=e2e_project.environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=restore_sigint,
    )
    # The checkpoint itself is written whole (temp file and rename); `pulumi stack export` may not read it yet.
    checkpoint = e2e_project.path / ".pulumi-state" / ".pulumi" / "stacks" / "model-serving" / "e2e.json"
    try:
        wait_until(
            "the update to create its first model namespace", lambda: kube.exists("namespace", "e2e-llama"), 300, 0.2
        )
        # Then an operation in flight: between one step's end and the next one's start the checkpoint records
        # none, and a kill there interrupts nothing a recovery would have to clear.
        wait_until("the update to record an operation in flight", lambda: bool(_pending(checkpoint)), 120, 0.02)
    finally:
        # Everything the update started dies at once, as on a lost machine: make, the CLI, the program and the
        # provider plugins, which run in sessions of their own (so a kill of the process group misses them).
        for pid in [up.pid, *_descendants(up.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        up.wait(timeout=30)

    at_kill = json.loads(checkpoint.read_text())["checkpoint"]["latest"]
    pending, created = at_kill.get("pending_operations"), len(at_kill.get("resources") or [])

    # The README's recovery: `make recover` (lock, half-written metadata, pending operations, refresh), then up.
    stack.make("recover")
    stack.make("up")
    deployment = stack.export()["deployment"]
    assert not deployment.get("pending_operations")
    # The kill interrupted the update: it left an operation in flight, or fewer resources than the finished stack.
    assert pending or created < len(deployment["resources"]), "the update had finished before the kill"
    stack.make("preview", "PREVIEW_ARGS=--expect-no-changes")

    objects = _objects(kube, stack.namespaces())
    expected = planned_objects(e2e_project, "e2e")
    for kind in (
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ResourceQuota",
        "LimitRange",
    ):
        assert sorted(objects.get(kind, [])) == sorted(expected.get(kind, [])), kind
    assert sorted(objects.get("ScaledObject", [])) == sorted(expected.get("ScaledObject", []))
    # One rollout per Deployment: nothing was created twice.
    assert len(objects["ReplicaSet"]) == len(expected["Deployment"]), objects["ReplicaSet"]
    resources = stack.export()["deployment"]["resources"]
    urns = [r["urn"] for r in resources]
    assert len(urns) == len(set(urns))
    ids = [(r["type"], r.get("id")) for r in resources if r.get("custom") and r.get("id")]
    assert len(ids) == len(set(ids)), "two resources in state manage the same object"

    stack.make("destroy")
    for namespace in stack.namespaces():
        wait_until(f"namespace {namespace} to be gone", lambda ns=namespace: not kube.exists("namespace", ns))
    assert json.dumps(stack.export()["deployment"].get("resources") or []) == "[]"
