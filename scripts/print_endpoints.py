#!/usr/bin/env python3
"""print_endpoints.py STACK < outputs.json: after `make up`, each model's endpoint and a request to try on it.

Reads `pulumi stack output --json` on stdin and the stack file for each model's engine, whose example request
(components/config/engines.py) it prints as a curl line: embeddings for the server, a chat completion for LLMs.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import ENGINES, stack_file_config  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: print_endpoints.py STACK < outputs.json", file=sys.stderr)
        return 2
    outputs = json.load(sys.stdin)
    config = stack_file_config(ROOT / "stacks" / f"Pulumi.{argv[0]}.yaml")
    for model in config.get("models", []):
        url = outputs.get(f"{model['name']}_endpoint")
        if not url:
            continue
        path, body = ENGINES[model.get("engine", "server")].example
        print(f"{model['name']}: {url}   try: curl -s {url}{path} -d {shlex.quote(body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
