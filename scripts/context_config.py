#!/usr/bin/env python3
"""context_config.py STACK CONTEXT: the stack's config file, retargeted at a cluster of your own.

`make up KUBE_CONTEXT=<context>` deploys a stack made for the local cluster (``local``) to another cluster (kind,
minikube, a real one) without editing the committed stack file: this writes a copy under ``.stack-config/`` with
``kubeContext`` set, the local cluster's ``kubeconfig`` and ``imageLock`` removed (the kubeconfig comes from
``KUBECONFIG`` or ``~/.kube/config``; images are referenced as the stack names them), and prints its path for
``pulumi up --config-file``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LOCAL_ONLY = ("model-serving:kubeconfig", "model-serving:imageLock", "model-serving:renderDirectory")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1]:
        print("usage: context_config.py STACK CONTEXT", file=sys.stderr)
        return 2
    stack, context = argv
    source = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    if not source.is_file():
        print(f"context_config.py: no stack file {source.relative_to(ROOT)}", file=sys.stderr)
        return 1
    document = yaml.safe_load(source.read_text()) or {}
    config = document.setdefault("config", {}) or {}
    for key in LOCAL_ONLY:
        config.pop(key, None)
    config["model-serving:kubeContext"] = context
    document["config"] = config
    target = ROOT / ".stack-config" / f"Pulumi.{stack}.{context.replace('/', '_')}.yaml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        f"# Written by scripts/context_config.py from stacks/Pulumi.{stack}.yaml for context {context}: do not edit.\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
