#!/usr/bin/env python3
"""explain_rollout.py STACK: after a failed `pulumi up`, say why the stack's Deployments are not ready.

Pulumi reports a Deployment that times out ("failed to fully initialize", ProgressDeadlineExceeded) but not what
kept its pods back. This asks the cluster, for every Deployment in the stack's state that is not fully rolled
out, what its pods wait for: the scheduler's verdict (Unschedulable: "0/4 nodes are available: 2 Insufficient
nvidia.com/gpu, ..."), an image that cannot be pulled, a container that crashes. `make up` runs it when the
update fails. It needs kubectl (.tools/bin has one after scripts/install-k8s) and the stack's kubeconfig.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


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


def unfinished(resource: dict[str, Any]) -> bool:
    status = (resource.get("outputs") or {}).get("status") or {}
    spec = (resource.get("outputs") or {}).get("spec") or {}
    wanted = spec.get("replicas", 1)
    return status.get("updatedReplicas") != wanted or status.get("availableReplicas") != wanted


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


def explain(stack: str) -> int:
    state = run_json("pulumi", "stack", "export", "--stack", stack)
    deployments = [
        r
        for r in (state.get("deployment") or {}).get("resources") or []
        if r.get("type") == DEPLOYMENT and unfinished(r)
    ]
    if not deployments:
        return 0
    kubectl = kubectl_command(stack)
    if kubectl is None:
        print(
            "explain-rollout: kubectl not found; run scripts/install-k8s to see why pods are not ready", file=sys.stderr
        )
        return 0
    print(f"\nWhy {len(deployments)} Deployment(s) of stack {stack} are not ready:")
    for resource in deployments:
        meta = resource["outputs"]["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        labels = resource["outputs"]["spec"]["selector"].get("matchLabels", {})
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = run_json(*kubectl, "get", "pods", "-n", namespace, "-l", selector, "-o", "json")["items"]
        seen: set[str] = set()
        for pod in pods:
            for problem in pod_problems(pod):
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
