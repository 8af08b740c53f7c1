"""What the e2e modules that run vLLM-shaped models on the real node share: llm-d's inference simulator in vLLM's
place (it serves the OpenAI API and exports vLLM's `vllm:` metrics, with no weights and no GPU), the node's two GPUs
of the e2e pool (scripts/cluster/real-node.sh), and the one place the program's vLLM flags are mapped to the
simulator's (:func:`stand_in_args`)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from components import specs
from components.config import SECRET_KEYS, ModelConfig, parse_stack_config

NODE = "model-serving-node"
NODE_GPUS = 2  # scripts/cluster/real-node.sh
STAND_IN = "model-serving.local/llm-d-inference-sim:v0.10.2"  # scripts/k8s-versions.env, pinned by images.json
SERVED = "fake/llama"  # a name the simulator knows is no hub model: it loads no tokenizer
LOCAL_NODE = {"model-serving.dev/node": "local"}
LOCAL_TOLERATION = {"key": "model-serving.dev/node", "operator": "Equal", "value": "local", "effect": "NoSchedule"}
# The simulator holds no weights and fetches none: what it serves is in its image, as a baked model's weights are
# (env MODEL_DIR; the policy pack's model-revision rule then pins it by the image's digest).
STAND_IN_MODEL_DIR = "/models/fake-llama"


def stand_in_args(program_args: list[str]) -> list[str]:
    """The program's vLLM arguments as the simulator takes them: the one place they are mapped.

    - `--host`, `--revision`, `--tensor-parallel-size`, `--pipeline-parallel-size`, `--distributed-executor-backend`,
      `--gpu-memory-utilization`: vLLM's, which the simulator rejects; it listens on every address and has no weights,
      GPUs, Ray or revisions. Dropped with their values.
    - `--model`: a name the simulator serves without a tokenizer from the hub (which it cannot reach here).
    - `--port`, `--max-model-len`, `--max-num-seqs`: kept (the latter is the batch a replica decodes at once, so
      more requests wait in its queue).
    - Added: the latencies of a model that decodes (a second to the first token, 50 ms a token), so requests take
      long enough to queue, and one sequence at a time.
    """
    dropped = {
        "--host",
        "--revision",
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--distributed-executor-backend",
        "--gpu-memory-utilization",
    }
    args, i = [], 0
    while i < len(program_args):
        flag, value = program_args[i], program_args[i + 1]
        i += 2
        if flag in dropped:
            continue
        if flag == "--model":
            value = SERVED
        if flag == "--max-num-seqs":
            value = "1"
        args += [flag, value]
    return [*args, "--time-to-first-token", "1s", "--inter-token-latency", "50ms", "--mode", "random"]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def chat(url: str) -> dict[str, Any]:
    body = json.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20})
    request = urllib.request.Request(f"{url}/v1/chat/completions", body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        answer: dict[str, Any] = json.load(response)
    return answer


def on_the_real_node(model: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A stack file's model entry run by the simulator on the real node (its label and taint): the simulator's image,
    a stand-in's small resources, one pod replaced at a time (GPUs are exact), a LoadBalancer Service of its own;
    then ``changes``."""
    model.update(
        {
            "image": {"ref": STAND_IN},
            "modelDir": STAND_IN_MODEL_DIR,
            "resources": {"cpu": "100m", "memory": "256Mi", "ephemeralStorage": "3Gi"},
            "modelCache": {"type": "emptyDir", "size": "256Mi"},
            "rollout": {"maxSurge": 0, "maxUnavailable": 1},
            "nodeSelector": LOCAL_NODE,
            "tolerations": [LOCAL_TOLERATION],
            "service": {"type": "LoadBalancer", "port": 80, "sourceRanges": ["127.0.0.0/8"]},
            **changes,
        }
    )
    return model


def keda_on_the_queue(max_replicas: int) -> dict[str, Any]:
    """KEDA from one replica to ``max_replicas`` on vLLM's queue (one waiting request a replica), quick to act."""
    return {
        "driver": "keda",
        "minReplicas": 1,
        "maxReplicas": max_replicas,
        "metric": {"type": "pods", "name": "vllm:num_requests_waiting", "targetAverageValue": "1"},
        "pollingInterval": 5,
        "scaleDownWindowSeconds": 30,
    }


def rendered(config: dict[str, Any], model: dict[str, Any], **stack: Any) -> ModelConfig:
    """``model`` as the program reads it in a stack of ``config`` (its secrets aside) changed by ``stack``."""
    raw = {k: v for k, v in config.items() if k not in SECRET_KEYS}
    return parse_stack_config({**raw, "gateway": {}, **stack, "models": [model]}, has_hub_token=True).models[0]


def simulator_patch(model: ModelConfig) -> dict[str, Any]:
    """The containerPatch that runs the simulator with the model's arguments mapped (:func:`stand_in_args`)."""
    return {
        "command": [f"/bin/{STAND_IN.split('/')[-1].split(':')[0]}"],
        "args": stand_in_args(specs.container_args(model)),
    }
