"""The `local` stack's language model served for real: Gemma 3 270M on llama.cpp on the local cluster's real node,
beside the embeddings model, through the LoadBalancer stand-in.

Chat completions, plain and streamed; a prompt longer than a slot's context gets llama-server's own 400; more
concurrent requests than slots queue (``llamacpp:requests_deferred``) and all succeed.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

from components.config import ENGINES
from tests.e2e.conftest import Kube, Stack, new_stack, post_embeddings
from tests.project import Project

STACK = "local"
NODE = "model-serving-node"
NAMESPACE = "llm"  # the tests' own: a `make up` of the checkout may be serving in `local-gemma`
SLOTS = 2  # llamacpp.parallel in stacks/Pulumi.local.yaml
HELLO = [{"role": "user", "content": "Say hello"}]


def request(
    url: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 120
) -> tuple[int, bytes]:
    """One request on a connection of its own (the load balancer picks a pod per connection)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request(method, path, None if body is None else json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def chat(url: str, **params: Any) -> tuple[int, dict[str, Any]]:
    status, raw = request(url, "POST", "/v1/chat/completions", {"messages": HELLO, "max_tokens": 24, **params})
    return status, json.loads(raw or b"{}")


def metric(url: str, name: str) -> float:
    status, raw = request(url, "GET", "/metrics", timeout=10)
    assert status == 200
    for line in raw.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not on /metrics")


@pytest.fixture(scope="module")
def deployed(e2e_project: Project) -> Iterator[Stack]:
    e2e_project.edit_config(STACK, {"namespace": NAMESPACE})
    stack = new_stack(e2e_project, STACK)
    up = stack.make("up")
    output = up.stdout + up.stderr
    assert "pulumi-resource-kubernetes from $PATH" not in output, output  # the plugin cache's provider, no warning
    yield stack


@pytest.fixture(scope="module")
def endpoint(deployed: Stack) -> str:
    return deployed.endpoint("gemma")


def test_both_models_run_on_the_real_node(deployed: Stack, kube: Kube) -> None:
    for model in ("minilm", "gemma"):
        pods = [p for p in kube.items("pods", f"{NAMESPACE}-{model}") if not p["metadata"].get("deletionTimestamp")]
        assert len(pods) == 1, model
        assert pods[0]["spec"]["nodeName"] == NODE
        assert all(c["ready"] for c in pods[0]["status"]["containerStatuses"]), model
    status, body = post_embeddings(deployed.endpoint("minilm"), {"input": "hello"})
    assert status == 200 and len(body["data"][0]["embedding"]) == 384


def test_llama_server_runs_restricted(deployed: Stack, kube: Kube) -> None:
    namespace = f"{NAMESPACE}-gemma"
    pod = kube.items("pods", namespace)[0]["metadata"]["name"]
    status = kube.run("exec", pod, "-n", namespace, "--", "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] == "10001"
    assert int(fields["CapEff"], 16) == 0 and fields["NoNewPrivs"].strip() == "1"
    touched = kube.run("exec", pod, "-n", namespace, "--", "touch", "/models/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr


def test_the_printed_example_gets_a_generated_answer(endpoint: str) -> None:
    """What `make up` tells a user to try (the engine's example request), as is: no max_tokens, no model."""
    path, body = ENGINES["llamacpp"].example
    status, raw = request(endpoint, "POST", path, json.loads(body))
    assert status == 200, raw[:500]
    answer = json.loads(raw)
    assert answer["model"] == "google/gemma-3-270m"
    assert answer["choices"][0]["message"]["content"].strip()
    assert 0 < answer["usage"]["completion_tokens"] <= 256  # llamacpp.maxTokens caps an open-ended answer


def test_chat_completion_streams_through_the_load_balancer(endpoint: str) -> None:
    status, raw = request(
        endpoint, "POST", "/v1/chat/completions", {"messages": HELLO, "max_tokens": 16, "stream": True}
    )
    assert status == 200
    events = [line[len("data: ") :] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e.startswith("{")]
    assert len(deltas) >= 3 and "".join(deltas).strip()


def test_a_prompt_longer_than_a_slot_gets_the_engines_400(endpoint: str) -> None:
    long_prompt = " ".join(["tokens"] * 5000)  # more than a slot's 2048 tokens of context
    status, raw = request(endpoint, "POST", "/v1/completions", {"prompt": long_prompt, "max_tokens": 4})
    assert status == 400, raw[:300]
    error = json.loads(raw)["error"]
    assert error["code"] == 400 and "context" in error["message"]


def test_requests_beyond_the_slots_queue_and_all_succeed(endpoint: str) -> None:
    clients = SLOTS * 3
    deferred: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            deferred.append(metric(endpoint, "llamacpp:requests_deferred"))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda _: chat(endpoint, max_tokens=48), range(clients)))
    finally:
        done.set()
        watcher.join(timeout=30)
    assert [status for status, _ in results] == [200] * clients
    assert all(body["choices"][0]["message"]["content"].strip() for _, body in results)
    assert max(deferred) >= 1, f"llamacpp:requests_deferred never rose: {deferred}"
    assert metric(endpoint, "llamacpp:requests_deferred") == 0
