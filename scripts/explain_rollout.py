#!/usr/bin/env python3
"""explain_rollout.py STACK: after a failed `pulumi up`, say why the stack's Deployments are not ready.

Pulumi reports a Deployment that times out ("failed to fully initialize", ProgressDeadlineExceeded) but not what
kept its pods back. This asks the cluster, for every Deployment in the stack's state that is not fully rolled
out, what its pods wait for: the scheduler's verdict (Unschedulable: "0/4 nodes are available: 2 Insufficient
nvidia.com/gpu, ..."), an image that cannot be pulled, a container that crashes. Before them it names every
PersistentVolumeClaim of the stack that is not bound, with the provisioner's or binder's last warning (a claim is
not awaited, so Pulumi names only the Deployment or Job that waited on it). `make up` runs it when the update
fails. It needs kubectl (.tools/bin has one after scripts/install-k8s) and the stack's kubeconfig.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"


def run_json(*args: str) -> Any:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}: {result.stderr.strip() or result.stdout.strip()}")
    return json.loads(result.stdout or "null")


def kubectl_command(stack: str) -> list[str] | None:
    kubectl = shutil.which("kubectl")  # under make, .tools/bin comes first on PATH
    if kubectl is None:
        return None
    config = run_json("pulumi", "config", "--json", "--stack", stack)
    command = [kubectl]
    kubeconfig = (config.get("model-serving:kubeconfig") or {}).get("value")
    if kubeconfig:
        command += ["--kubeconfig", str(Path(kubeconfig).expanduser().resolve())]
    context = (config.get("model-serving:kubeContext") or {}).get("value")
    if context:
        command += ["--context", context]
    return command


def unfinished(deployment: dict[str, Any]) -> bool:
    """The live Deployment has not rolled out: pods unavailable, not all updated, or its deadline passed. (The
    state's outputs of a failed update can still be the last good ones, so the cluster is asked.)"""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    return (
        status.get("unavailableReplicas", 0) > 0
        or status.get("updatedReplicas", 0) < spec.get("replicas", 1)
        or conditions.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded"
    )


def pod_problems(pod: dict[str, Any]) -> list[str]:
    problems = []
    for condition in pod.get("status", {}).get("conditions", []):
        if condition["type"] == "PodScheduled" and condition["status"] == "False":
            problems.append(f"{condition.get('reason', 'not scheduled')}: {condition.get('message', '')}".strip())
    for container in pod.get("status", {}).get("containerStatuses", []) or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            problems.append(f"container {container['name']}: {waiting['reason']}: {waiting.get('message', '')}".strip())
        terminated = (container.get("lastState") or {}).get("terminated")
        if terminated and container.get("restartCount", 0) > 0:
            problems.append(
                f"container {container['name']} restarted {container['restartCount']}x, last exit "
                f"{terminated.get('exitCode')} ({terminated.get('reason', '')})"
            )
    return problems


def last_warning(kubectl: list[str], namespace: str, name: str, kind: str = "Pod") -> str | None:
    """The object's latest Warning event (a failed probe, a failed mount, a failed provisioning), which its status
    does not carry."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name},type=Warning"
    events = run_json(*kubectl, "get", "events", "-n", namespace, "--field-selector", selector, "-o", "json")["items"]
    if not events:
        return None
    event = max(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return f"{event.get('reason', '')}: {event.get('message', '')}".strip()


def in_state(state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The metadata (namespace and name) of the state's objects of that resource type."""
    found = [
        ((r.get("outputs") or {}).get("metadata") or {})
        for r in (state.get("deployment") or {}).get("resources") or []
        if r.get("type") == kind
    ]
    return [m for m in found if m.get("namespace") and m.get("name")]


def unbound_claims(kubectl: list[str], claims: list[dict[str, Any]]) -> list[str]:
    """Each claim that is not bound, and why: a missing StorageClass, no provisioner, a failed provisioning."""
    lines = []
    for m in claims:
        live = run_json(*kubectl, "get", "pvc", "-n", m["namespace"], m["name"], "-o", "json", "--ignore-not-found")
        phase = (live or {}).get("status", {}).get("phase", "absent")
        if phase == "Bound":
            continue
        warning = last_warning(kubectl, m["namespace"], m["name"], "PersistentVolumeClaim")
        class_name = (live or {}).get("spec", {}).get("storageClassName") or "none"
        why = warning or f"no volume bound it yet (StorageClass {class_name})"
        lines.append(f"  PersistentVolumeClaim {m['namespace']}/{m['name']}: {phase}: {why}")
    return lines


def explain(stack: str) -> int:
    state = run_json("pulumi", "stack", "export", "--stack", stack)
    names, claims = in_state(state, DEPLOYMENT), in_state(state, CLAIM)
    if not names and not claims:
        return 0
    kubectl = kubectl_command(stack)
    if kubectl is None:
        print(
            "explain-rollout: kubectl not found; run scripts/install-k8s to see why pods are not ready", file=sys.stderr
        )
        return 0
    unbound = unbound_claims(kubectl, claims)
    if unbound:
        print(f"\n{len(unbound)} PersistentVolumeClaim(s) of stack {stack} are not bound:", *unbound, sep="\n")
    live = [run_json(*kubectl, "get", "deployment", "-n", m["namespace"], m["name"], "-o", "json") for m in names]
    deployments = [d for d in live if unfinished(d)]
    if not deployments:
        return 0
    print(f"\nWhy {len(deployments)} Deployment(s) of stack {stack} are not ready:")
    for deployment in deployments:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        labels = deployment["spec"]["selector"].get("matchLabels", {})
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = run_json(*kubectl, "get", "pods", "-n", namespace, "-l", selector, "-o", "json")["items"]
        seen: set[str] = set()
        for pod in pods:
            problems = pod_problems(pod)
            warning = last_warning(kubectl, namespace, pod["metadata"]["name"]) if problems else None
            for problem in problems + ([f"last warning: {warning}"] if warning else []):
                if problem not in seen:
                    seen.add(problem)
                    print(f"  Deployment {namespace}/{name}: pod {pod['metadata']['name']}: {problem}")
        if not seen:
            print(f"  Deployment {namespace}/{name}: {len(pods)} pod(s), none reporting a problem yet")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        sys.exit(explain(sys.argv[1]))
    except (RuntimeError, KeyError, subprocess.TimeoutExpired) as error:
        print(f"explain-rollout: {error}", file=sys.stderr)
        sys.exit(0)
