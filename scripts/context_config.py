#!/usr/bin/env python3
"""context_config.py STACK CONTEXT [--keep-placement]: the stack's config file, retargeted at a cluster of your own.

`make up KUBE_CONTEXT=<context>` deploys a stack made for the local cluster (``local``) to another cluster (kind,
minikube, k3d, a real one) without editing the committed stack file: this writes a copy under ``.stack-config/``
and prints its path for ``pulumi up --config-file``. In the copy:

- ``kubeContext`` is set, the local cluster's ``kubeconfig`` and ``imageLock`` are removed (the kubeconfig comes
  from ``KUBECONFIG`` or ``~/.kube/config``; images are referenced as the stack names them);
- the local cluster's node placement (``nodeSelector`` and ``tolerations`` on ``model-serving.dev/node``) is
  removed, unless ``--keep-placement`` (``make up KEEP_PLACEMENT=1``): a plain cluster has no such node;
- what needs an add-on the cluster lacks is turned off, each with a line on stderr: monitoring without
  prometheus-operator's API (``monitoring.coreos.com``), KEDA autoscaling without KEDA's (``keda.sh``: the model
  keeps its minimum replicas). When the cluster cannot be asked, nothing is turned off.

Then one line says which images the cluster's nodes must have and how to load them.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "model-serving:"
LOCAL_ONLY = (f"{PREFIX}kubeconfig", f"{PREFIX}imageLock", f"{PREFIX}renderDirectory")
LOCAL_NODE_LABEL = "model-serving.dev/node"  # the local cluster's real node (scripts/cluster/real-node.sh)
MONITORING_GROUP = "monitoring.coreos.com"
KEDA_GROUP = "keda.sh"


def _without_local_node(model: dict[str, Any]) -> None:
    selector = {k: v for k, v in (model.get("nodeSelector") or {}).items() if k != LOCAL_NODE_LABEL}
    tolerations = [t for t in model.get("tolerations") or [] if t.get("key") != LOCAL_NODE_LABEL]
    for key, value in (("nodeSelector", selector), ("tolerations", tolerations)):
        if value:
            model[key] = value
        else:
            model.pop(key, None)


def retarget(
    document: dict[str, Any], context: str, *, keep_placement: bool = False, api_groups: Iterable[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The retargeted stack document and one note per thing turned off. ``api_groups``: the cluster's API groups
    (None: unknown, nothing is turned off)."""
    document = copy.deepcopy(document)
    config = document.setdefault("config", {}) or {}
    document["config"] = config
    for key in LOCAL_ONLY:
        config.pop(key, None)
    config[f"{PREFIX}kubeContext"] = context
    models = [m for m in config.get(f"{PREFIX}models") or [] if isinstance(m, dict)]
    if not keep_placement:
        for model in models:
            _without_local_node(model)
    notes: list[str] = []
    if api_groups is None:
        return document, notes
    groups = set(api_groups)
    monitoring = config.get(f"{PREFIX}monitoring") or {}
    if monitoring.get("enabled") and MONITORING_GROUP not in groups:
        config[f"{PREFIX}monitoring"] = {**monitoring, "enabled": False}
        notes.append(f"monitoring off: the cluster has no prometheus-operator ({MONITORING_GROUP})")
    for model in models:
        autoscaling = model.get("autoscaling") or {}
        if autoscaling.get("driver") == "keda" and KEDA_GROUP not in groups:
            model.pop("autoscaling")
            model["replicas"] = int(autoscaling.get("minReplicas", 1)) or 1
            notes.append(
                f"{model.get('name')}: {model['replicas']} replica(s), no autoscaling: the cluster has no KEDA"
            )
    return document, notes


def image_line(document: dict[str, Any]) -> str:
    """Which images the cluster's nodes must have, and the commands that load them into kind, minikube or k3d."""
    models = (document.get("config") or {}).get(f"{PREFIX}models") or []
    refs = sorted({str((m.get("image") or {}).get("ref")) for m in models if (m.get("image") or {}).get("ref")})
    if not refs:
        return ""
    first = refs[0]
    return (
        f"the cluster's nodes must have {', '.join(refs)} (make cluster-up builds them into Docker): load each with "
        f"`kind load docker-image {first}`, `minikube image load {first}` or `k3d image import {first}`"
    )


def api_groups(context: str) -> set[str] | None:
    """The API groups of the cluster behind ``context``, or None when it cannot be asked within a few seconds."""
    try:
        from kubernetes import client, config

        api = client.ApisApi(config.new_client_from_config(context=context))
        found = api.get_api_versions(_request_timeout=5)
    except Exception:  # no kubeconfig, no such context, cluster unreachable: decide nothing
        return None
    return {group.name for group in found.groups or []}


def main(argv: list[str]) -> int:
    keep = "--keep-placement" in argv
    args = [a for a in argv if a != "--keep-placement"]
    if len(args) != 2 or not args[1]:
        print("usage: context_config.py STACK CONTEXT [--keep-placement]", file=sys.stderr)
        return 2
    stack, context = args
    source = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    if not source.is_file():
        print(f"context_config.py: no stack file {source.relative_to(ROOT)}", file=sys.stderr)
        return 1
    document, notes = retarget(
        yaml.safe_load(source.read_text()) or {}, context, keep_placement=keep, api_groups=api_groups(context)
    )
    target = ROOT / ".stack-config" / f"Pulumi.{stack}.{context.replace('/', '_')}.yaml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        f"# Written by scripts/context_config.py from stacks/Pulumi.{stack}.yaml for context {context}: do not edit.\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    for note in [*notes, image_line(document)]:
        if note:
            print(f"{context}: {note}", file=sys.stderr)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
