"""Part 7: ``pulumi up`` and ``destroy`` on the local cluster, against kubectl doing the same with the same objects.

For N models (1 and 20), in a throwaway copy of the project on the running local cluster (``make cluster-up``):

- ``pulumi``: ``pulumi up --skip-preview`` of a stack of N copies of the e2e stack's embeddings model (CPU,
  fake nodes, an HPA), timed until it returns (Pulumi waits for every Deployment to be Available), then
  ``pulumi destroy`` timed until it returns (it waits for the objects, namespaces included, to be gone);
- ``kubectl``: the same stack rendered to YAML (``renderDirectory``), then ``kubectl apply --server-side`` of
  the namespaces and of the rest, ``kubectl wait --for=condition=Available`` on every Deployment and
  ``kubectl rollout status`` of each (Available alone holds at once when maxUnavailable covers the replicas),
  timed together; then ``kubectl delete --wait`` of everything, timed until the namespaces are gone.

The ratios are pulumi / kubectl in the same run (the order alternating between repeats); absolute times are
context. No policy pack runs (``make up`` adds one), nothing of the cluster is left behind.
"""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.preview import _copy, _pulumi
from bench.util import median, progress, rounded
from tests.harness import PROJECT, ROOT, stack_config

SIZES = (1, 20)
STACK = "bench"
RENDER_STACK = "bench-render"  # the same objects, written to YAML for kubectl
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
SELECTOR = "app.kubernetes.io/part-of=model-serving"


def _kubectl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(KUBECONFIG), *args], capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result


def cluster_running() -> bool:
    if not (KUBECONFIG.exists() and KUBECTL.exists()):
        return False
    probe = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(KUBECONFIG), "get", "--raw", "/readyz"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


def stack_values(n: int, render: Path | None = None) -> dict[str, Any]:
    """The e2e stack's embeddings model, n times (``bench-m<i>`` in namespaces ``bench-m<i>``), on the cluster."""
    e2e = stack_config("e2e")
    template = next(m for m in e2e[f"{PROJECT}:models"] if m["name"] == "embeddings")
    models = []
    for i in range(n):
        model = copy.deepcopy(template)
        model["name"] = f"m{i:02d}"
        model.pop("routing", None)  # its own Service, as the classic e2e model (no Gateway in this stack)
        model["service"] = {"type": "ClusterIP", "port": 80}
        # Small enough for 20 models on the cluster's two fake CPU nodes (16 CPUs each).
        model["resources"] = {"cpu": "500m", "memory": "1Gi", "ephemeralStorage": "4Gi", "gpus": 0}
        model["modelCache"] = {"type": "emptyDir", "size": "1Gi"}
        model["autoscaling"] = {**model["autoscaling"], "minReplicas": 1, "maxReplicas": 2}
        models.append(model)
    values: dict[str, Any] = {f"{PROJECT}:namespace": STACK, f"{PROJECT}:models": models}
    if render is not None:  # written, not applied: no cluster to name
        values[f"{PROJECT}:renderDirectory"] = str(render)
    else:
        values[f"{PROJECT}:kubeconfig"] = ".cluster/kubeconfig"
        values[f"{PROJECT}:kubeContext"] = e2e[f"{PROJECT}:kubeContext"]
    return values


def _write_stack(project: Path, stack: str, values: dict[str, Any]) -> None:
    """Set the stack file's model-serving config to ``values``, keeping what ``_copy`` set (image, secret)."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    kept = {k: v for k, v in (document.get("config") or {}).items() if k.endswith((":imageRefOverride", ":hubToken"))}
    document["config"] = {**kept, **values}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _timed(func: Any, *args: Any) -> float:
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def _kubectl_up(manifests: Path) -> None:
    namespaces = sorted(manifests.rglob("*namespace*.yaml"))
    _kubectl("apply", "--server-side", *(arg for f in namespaces for arg in ("-f", str(f))))
    _kubectl("apply", "--server-side", "-R", "-f", str(manifests))
    _kubectl("wait", "--for=condition=Available", "deployment", "-A", "-l", SELECTOR, "--timeout=600s")
    # Available holds from the start for a Deployment whose maxUnavailable covers its replicas (the models'
    # default): wait, as Pulumi does, for every rollout to finish with all its pods ready.
    listed = _kubectl("get", "deployment", "-A", "-l", SELECTOR, "-o", "json").stdout
    for item in json.loads(listed)["items"]:
        meta = item["metadata"]
        _kubectl("rollout", "status", "deployment", meta["name"], "-n", meta["namespace"], "--timeout=600s")


def _kubectl_down(manifests: Path) -> None:
    _kubectl("delete", "-R", "-f", str(manifests), "--wait=true", "--ignore-not-found", "--timeout=600s")


def _leftovers() -> list[str]:
    names = _kubectl("get", "namespaces", "-o", "json").stdout
    return [ns["metadata"]["name"] for ns in json.loads(names)["items"] if ns["metadata"]["name"].startswith("bench-")]


def run(repeats: int = 2) -> dict[str, Any]:
    if not cluster_running():
        return {"skipped": "the local cluster is not running (make cluster-up)"}
    if _leftovers():
        return {"skipped": f"namespaces of an earlier run are still there: {', '.join(_leftovers())}"}
    out: dict[str, Any] = {"repeats": repeats, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="model-serving-bench-cluster-") as tmp:
        project = _copy(Path(tmp) / "project", None, stacks=(STACK, RENDER_STACK))
        (project / ".cluster").symlink_to(ROOT / ".cluster")
        for n in SIZES:
            render = Path(tmp) / f"rendered-{n}"
            _write_stack(project, RENDER_STACK, stack_values(n, render))
            progress(f"cluster: rendering {n} model(s) for kubectl")
            _pulumi(project, "up", "--stack", RENDER_STACK, "--yes", "--skip-preview", "--non-interactive")
            _write_stack(project, STACK, stack_values(n))
            manifests = render / "1-manifest"
            times: dict[str, list[float]] = {
                "pulumi_up": [],
                "pulumi_destroy": [],
                "kubectl_up": [],
                "kubectl_down": [],
            }
            for repeat in range(repeats):
                order = ("pulumi", "kubectl") if repeat % 2 == 0 else ("kubectl", "pulumi")
                for tool in order:
                    if tool == "pulumi":
                        up = ("up", "--stack", STACK, "--yes", "--skip-preview", "--non-interactive")
                        times["pulumi_up"].append(_timed(_pulumi, project, *up))
                        down = ("destroy", "--stack", STACK, "--yes", "--skip-preview", "--non-interactive")
                        times["pulumi_destroy"].append(_timed(_pulumi, project, *down))
                    else:
                        times["kubectl_up"].append(_timed(_kubectl_up, manifests))
                        times["kubectl_down"].append(_timed(_kubectl_down, manifests))
                    left = _leftovers()
                    if left:
                        raise RuntimeError(f"{tool} left namespaces behind: {', '.join(left)}")
                progress(
                    f"cluster: {n} model(s), repeat {repeat + 1}/{repeats}: "
                    + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items())
                )
            up_ratio = median([p / k for p, k in zip(times["pulumi_up"], times["kubectl_up"], strict=True)])
            down_ratio = median([p / k for p, k in zip(times["pulumi_destroy"], times["kubectl_down"], strict=True)])
            out["sizes"][str(n)] = {
                "up_ratio": rounded(up_ratio),
                "destroy_ratio": rounded(down_ratio),
                "seconds": {k: rounded(median(v), 2) for k, v in times.items()},
                "objects": len(list(manifests.rglob("*.yaml"))),
            }
    largest = out["sizes"][str(SIZES[-1])]
    out["up_ratio_kubectl"] = largest["up_ratio"]
    out["destroy_ratio_kubectl"] = largest["destroy_ratio"]
    return out
