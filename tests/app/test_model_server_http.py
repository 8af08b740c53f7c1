"""The HTTP API of a ready server: OpenAI-compatible endpoints, errors, metrics."""

from __future__ import annotations

import base64
import http.client
import socket
import struct
import threading
import time
from typing import Any

import pytest
from server_harness import MODEL_ID, ServerProcess
from smoke_client import check_api, expect_json_error, get, metric, metric_or_zero, parse_metrics, post, request


def embeddings(server: ServerProcess, body: Any) -> dict[str, Any]:
    resp = post(server.url, "/v1/embeddings", body)
    assert resp.status == 200, resp.body
    assert resp.content_type.startswith("application/json")
    return resp.json()


def test_end_to_end_smoke_checks(ready_server: ServerProcess) -> None:
    # The same checks scripts/image-test runs against the container.
    assert len(check_api(ready_server.url, MODEL_ID)) == 5


def test_probes(ready_server: ServerProcess) -> None:
    assert get(ready_server.url, "/healthz").json() == {"status": "ok"}
    ready = get(ready_server.url, "/readyz")
    assert ready.status == 200
    assert ready.json() == {"status": "ready", "model": MODEL_ID}
    head = request(ready_server.url, "HEAD", "/healthz")
    assert (head.status, head.body) == (200, b"")


def test_models_list_and_card(ready_server: ServerProcess) -> None:
    body = get(ready_server.url, "/v1/models").json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"]) for m in body["data"]] == [(MODEL_ID, "model")]
    assert get(ready_server.url, f"/v1/models/{MODEL_ID}").json()["id"] == MODEL_ID
    expect_json_error(get(ready_server.url, "/v1/models/other-model"), 404, "unknown model card")


def test_single_string_input(ready_server: ServerProcess) -> None:
    body = embeddings(ready_server, {"input": "hello world", "model": MODEL_ID})
    assert body["object"] == "list"
    assert body["model"] == MODEL_ID
    assert [d["index"] for d in body["data"]] == [0]
    assert body["data"][0]["object"] == "embedding"
    assert len(body["data"][0]["embedding"]) == 384
    # [CLS] hello world [SEP]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_batch_keeps_order_and_matches_single_requests(ready_server: ServerProcess) -> None:
    texts = ["a much longer sentence that needs a lot more padding than the others", "tiny", "medium sized one"]
    batch = embeddings(ready_server, {"input": texts})["data"]
    assert [d["index"] for d in batch] == [0, 1, 2]
    for i, text in enumerate(texts):
        single = embeddings(ready_server, {"input": [text]})["data"][0]["embedding"]
        assert max(abs(a - b) for a, b in zip(single, batch[i]["embedding"], strict=True)) < 1e-5


def test_base64_encoding_matches_floats(ready_server: ServerProcess) -> None:
    floats = embeddings(ready_server, {"input": "same text"})["data"][0]["embedding"]
    encoded = embeddings(ready_server, {"input": "same text", "encoding_format": "base64"})["data"][0]["embedding"]
    decoded = struct.unpack("<384f", base64.b64decode(encoded))
    assert max(abs(a - b) for a, b in zip(floats, decoded, strict=True)) < 1e-6


def test_short_model_name_alias_and_unknown_model(ready_server: ServerProcess) -> None:
    embeddings(ready_server, {"input": "x", "model": "all-MiniLM-L6-v2"})
    err = expect_json_error(post(ready_server.url, "/v1/embeddings", {"input": "x", "model": "gpt-4"}), 404, "model")
    assert err["code"] == "model_not_found"


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("missing input", {"model": MODEL_ID}, "missing_required_parameter"),
    ("null input", {"input": None}, "missing_required_parameter"),
    ("number input", {"input": 42}, "invalid_type"),
    ("object input", {"input": {"text": "hi"}}, "invalid_type"),
    ("mixed list", {"input": ["ok", 3]}, "invalid_type"),
    ("token ids", {"input": [101, 7592, 102]}, "invalid_type"),
    ("nested token ids", {"input": [[101, 102]]}, "invalid_type"),
    ("empty string", {"input": ""}, "invalid_value"),
    ("blank item", {"input": ["fine", "   "]}, "invalid_value"),
    ("empty list", {"input": []}, "invalid_value"),
    ("too many inputs", {"input": ["x"] * 65}, "invalid_value"),
    ("bad encoding", {"input": "x", "encoding_format": "int8"}, "invalid_value"),
    ("dimensions", {"input": "x", "dimensions": 128}, "invalid_value"),
    ("model not a string", {"input": "x", "model": 7}, "invalid_type"),
    ("too long input", {"input": " ".join(["word"] * 300)}, "context_length_exceeded"),
]


@pytest.mark.parametrize(("what", "body", "code"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_get_400_json(ready_server: ServerProcess, what: str, body: dict[str, Any], code: str) -> None:
    err = expect_json_error(post(ready_server.url, "/v1/embeddings", body), 400, what)
    assert err["code"] == code
    assert err["type"] == "invalid_request_error"


def test_too_long_item_is_named(ready_server: ServerProcess) -> None:
    body = {"input": ["short", " ".join(["word"] * 300)]}
    err = expect_json_error(post(ready_server.url, "/v1/embeddings", body), 400, "too long")
    assert "input[1] has 302 tokens" in err["message"]
    assert "at most 256" in err["message"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"input": "x"', "invalid_json"),
        (b'["input"]', "invalid_json"),
        (b'"just a string"', "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    ],
    ids=["garbage", "truncated", "array", "string", "not utf-8", "deep nesting"],
)
def test_malformed_json_gets_400(ready_server: ServerProcess, raw: bytes, code: str) -> None:
    err = expect_json_error(post(ready_server.url, "/v1/embeddings", raw=raw), 400, "malformed body")
    assert err["code"] == code


def test_body_limits(ready_server: ServerProcess) -> None:
    huge = b'{"input": "' + b"a" * (4 * 1024 * 1024) + b'"}'
    expect_json_error(post(ready_server.url, "/v1/embeddings", raw=huge), 413, "oversized body")
    no_length = request(ready_server.url, "POST", "/v1/embeddings", headers={"Content-Length": ""})
    assert no_length.status in (400, 411)
    # a raw request without any Content-Length
    with socket.create_connection(("127.0.0.1", ready_server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 411")
    assert b'"error"' in reply


def test_unknown_paths_and_methods(ready_server: ServerProcess) -> None:
    err = expect_json_error(get(ready_server.url, "/v2/whatever"), 404, "unknown path")
    assert err["code"] == "not_found"
    resp = request(ready_server.url, "DELETE", "/v1/embeddings")
    expect_json_error(resp, 405, "DELETE")
    assert resp.headers["allow"] == "POST"
    expect_json_error(get(ready_server.url, "/v1/embeddings"), 405, "GET embeddings")
    expect_json_error(request(ready_server.url, "BREW", "/"), 501, "unknown method")


def test_malformed_request_line_gets_json(ready_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", ready_server.port), timeout=10) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        reply = sock.makefile("rb").read()
    assert reply.split(b"\r\n", 1)[0].startswith(b"HTTP/1.")
    assert b" 400 " in reply.split(b"\r\n", 1)[0]
    assert b'"error"' in reply
    assert b"Traceback" not in reply


def test_completions_explains_embedding_model(ready_server: ServerProcess) -> None:
    err = expect_json_error(post(ready_server.url, "/v1/completions", {"prompt": "Once upon"}), 400, "completions")
    assert err["code"] == "model_not_generative"
    assert "/v1/embeddings" in err["message"]
    expect_json_error(post(ready_server.url, "/v1/completions", raw=b"nope"), 400, "completions bad json")


def test_keep_alive_connection_serves_several_requests(ready_server: ServerProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", ready_server.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("POST", "/v1/embeddings", body=b'{"input": "again"}')
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
        conn.request("GET", "/v1/nothing")
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_keep_alive_responses_are_not_held_back(ready_server: ServerProcess) -> None:
    # A response's head and body are written separately: without TCP_NODELAY, Nagle's algorithm holds the
    # body until the client's delayed ACK (40 ms or more on Linux) on every request of a keep-alive connection.
    conn = http.client.HTTPConnection("127.0.0.1", ready_server.port, timeout=10)
    try:
        times = []
        for _ in range(21):
            started = time.perf_counter()
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            times.append(time.perf_counter() - started)
    finally:
        conn.close()
    assert sorted(times)[10] < 0.03, f"median keep-alive round trip {sorted(times)[10] * 1000:.0f} ms"


def test_metrics_move_with_requests(ready_server: ServerProcess) -> None:
    url = ready_server.url
    first = get(url, "/metrics")
    assert first.content_type.startswith("text/plain; version=0.0.4")
    before = parse_metrics(first.body.decode())
    embeddings(ready_server, {"input": ["one", "two"]})
    post(url, "/v1/embeddings", raw=b"{bad")
    get(url, "/nowhere")
    after = parse_metrics(get(url, "/metrics").body.decode())

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric_or_zero(before, name, **labels)

    assert delta("model_server_requests_total", endpoint="/v1/embeddings", status="200") == 1
    assert delta("model_server_requests_total", endpoint="/v1/embeddings", status="400") == 1
    assert delta("model_server_requests_total", endpoint="other", status="404") == 1
    assert delta("model_server_request_duration_seconds_count", endpoint="/v1/embeddings") == 2
    assert delta("model_server_inputs_total", endpoint="/v1/embeddings") == 2
    assert delta("model_server_prompt_tokens_total", endpoint="/v1/embeddings") == 6
    assert delta("model_server_inference_duration_seconds_count") == 1
    # the scrape itself is the only request in flight
    assert metric(after, "model_server_requests_in_flight") == 1
    assert metric(after, "model_server_requests_waiting") == 0
    assert metric(after, "model_server_model_ready") == 1
    assert 0 < metric(after, "model_server_model_load_seconds") < 120
    assert metric(after, "model_server_model_info", model_id=MODEL_ID, task="embedding", dimension="384") == 1
    assert metric(after, "process_resident_memory_bytes") > 0


def test_in_flight_gauge_counts_a_slow_request(ready_server: ServerProcess) -> None:
    result: dict[str, int] = {}

    def slow() -> None:
        resp = post(ready_server.url, "/v1/embeddings", {"input": "slow"}, headers={"X-Debug-Delay-Seconds": "1.5"})
        result["status"] = resp.status

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        seen = 0.0
        for _ in range(50):
            seen = metric(
                parse_metrics(get(ready_server.url, "/metrics").body.decode()), "model_server_requests_in_flight"
            )
            if seen >= 2:
                break
            time.sleep(0.05)
        assert seen == 2  # the slow request + this scrape
    finally:
        thread.join(30)
    assert result["status"] == 200
