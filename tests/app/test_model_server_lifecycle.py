"""Process lifecycle: readiness gating, graceful drain on SIGTERM, start-up failures."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from server_harness import APP_DIR, MODEL_ID
from smoke_client import expect_json_error, get, metric, parse_metrics, port_refuses, post


def slow_request(url: str, delay: float, result: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            resp = post(url, "/v1/embeddings", {"input": "in flight"}, headers={"X-Debug-Delay-Seconds": str(delay)})
            result["status"] = resp.status
            result["body"] = resp.json()
        except Exception as exc:  # reported by the test
            result["error"] = repr(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_in_flight(url: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = parse_metrics(get(url, "/metrics").body.decode())
        if metric(samples, "model_server_requests_in_flight") >= count + 1:  # + this scrape
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} request(s) never showed up as in flight")


def test_readyz_is_503_until_the_model_has_loaded(start_server: Any) -> None:
    server = start_server(DEBUG_LOAD_DELAY_SECONDS="3")
    server.wait_listening()
    assert get(server.url, "/healthz").status == 200
    ready = get(server.url, "/readyz")
    assert ready.status == 503
    assert ready.json() == {"status": "loading"}
    resp = post(server.url, "/v1/embeddings", {"input": "too early"})
    err = expect_json_error(resp, 503, "embeddings while loading")
    assert err["code"] == "model_not_ready"
    assert resp.headers["retry-after"] == "5"
    expect_json_error(get(server.url, "/v1/models"), 503, "models while loading")
    samples = parse_metrics(get(server.url, "/metrics").body.decode())
    assert metric(samples, "model_server_model_ready") == 0
    assert metric(samples, "model_server_model_load_seconds") == 0

    server.wait_ready(timeout=120)
    assert post(server.url, "/v1/embeddings", {"input": "now"}).status == 200
    samples = parse_metrics(get(server.url, "/metrics").body.decode())
    assert metric(samples, "model_server_model_ready") == 1
    assert metric(samples, "model_server_model_load_seconds") >= 3  # includes the delay
    assert metric(samples, "model_server_requests_total", endpoint="/readyz", status="503") >= 1


def test_sigterm_drains_the_in_flight_request_then_exits_0(start_server: Any) -> None:
    server = start_server(DEBUG_ALLOW_DELAY_HEADER="1", DRAIN_SECONDS="20")
    server.wait_ready()
    # An idle keep-alive connection must not hold the shutdown up.
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    idle.request("GET", "/healthz")
    idle.getresponse().read()

    result: dict[str, Any] = {}
    thread = slow_request(server.url, 3.0, result)
    wait_in_flight(server.url, 1)
    sent = time.monotonic()
    server.signal(signal.SIGTERM)

    deadline = time.monotonic() + 2
    while not port_refuses(server.url) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert port_refuses(server.url), "new connections still accepted after SIGTERM"
    assert server.alive(), "exited before the in-flight request finished"

    thread.join(30)
    assert result.get("status") == 200, result
    assert len(result["body"]["data"][0]["embedding"]) == 384
    assert server.wait_exit(30) == 0
    took = time.monotonic() - sent
    assert took < 10, f"shutdown took {took:.1f}s"
    idle.close()
    out = server.output()
    # the slow request (a just-answered scrape may still be on its way out)
    in_flight = re.search(r"(\d+) request\(s\) in flight", out)
    assert in_flight and int(in_flight.group(1)) >= 1, out
    assert "drained; exiting" in out
    assert "Traceback" not in out


def test_drain_gives_up_after_drain_seconds_and_still_exits_0(start_server: Any) -> None:
    server = start_server(DEBUG_ALLOW_DELAY_HEADER="1", DRAIN_SECONDS="1")
    server.wait_ready()
    result: dict[str, Any] = {}
    slow_request(server.url, 30.0, result)
    wait_in_flight(server.url, 1)
    sent = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    assert time.monotonic() - sent < 6
    assert "drain timed out after 1s with 1 request(s) still running" in server.output()


def test_idle_sigterm_exits_quickly(start_server: Any) -> None:
    server = start_server()
    server.wait_ready()
    sent = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    assert time.monotonic() - sent < 5


def test_sigterm_while_loading_exits_0(start_server: Any) -> None:
    server = start_server(DEBUG_LOAD_DELAY_SECONDS="30")
    server.wait_listening()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0


def test_readyz_reports_draining(start_server: Any) -> None:
    server = start_server(DEBUG_ALLOW_DELAY_HEADER="1", DRAIN_SECONDS="10")
    server.wait_ready()
    # A keep-alive connection opened before SIGTERM can still ask /readyz while draining.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/readyz")
    assert conn.getresponse().read()
    result: dict[str, Any] = {}
    thread = slow_request(server.url, 2.0, result)
    wait_in_flight(server.url, 1)
    server.signal(signal.SIGTERM)
    time.sleep(0.5)
    conn.request("GET", "/readyz")
    resp = conn.getresponse()
    assert resp.status == 503
    assert resp.getheader("Connection") == "close"
    assert b"draining" in resp.read()
    conn.close()
    thread.join(30)
    assert result.get("status") == 200
    assert server.wait_exit(30) == 0


def test_missing_model_exits_1_with_a_clear_message(start_server: Any, tmp_path: Path) -> None:
    server = start_server(MODEL_DIR=str(tmp_path / "nowhere"))
    assert server.wait_exit(60) == 1
    out = server.output()
    assert "model load failed" in out
    assert "has no config.json" in out
    assert "Traceback" not in out


def test_model_id_resolved_from_the_hub_cache(start_server: Any, tmp_path: Path, model_dir: Path) -> None:
    repo = tmp_path / "hf" / "hub" / ("models--" + MODEL_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(model_dir, target_is_directory=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    server = start_server(MODEL_DIR="", HF_HOME=str(tmp_path / "hf"))
    server.wait_ready()
    assert post(server.url, "/v1/embeddings", {"input": "from the cache"}).status == 200
    assert str(snapshot) in server.output()


def test_hub_token_is_never_logged(start_server: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("hf_TopSecretToken123")
    server = start_server(HF_TOKEN_FILE=str(token_file), LOG_LEVEL="DEBUG")
    server.wait_ready()
    post(server.url, "/v1/embeddings", {"input": "x"})
    server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    out = server.output()
    assert "hub token file" in out
    assert "TopSecret" not in out


def test_bad_configuration_exits_2() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(APP_DIR), "PORT": "not-a-port"}
    proc = subprocess.run(
        [sys.executable, "-m", "model_server"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "configuration error: PORT='not-a-port' is not an integer" in proc.stderr


def test_port_in_use_exits_1(start_server: Any) -> None:
    first = start_server()
    first.wait_listening()
    second = start_server(PORT=str(first.port))
    assert second.wait_exit(60) == 1
    assert "cannot listen on" in second.output()


def test_stalled_or_vanished_clients_do_not_hurt(start_server: Any) -> None:
    server = start_server(KEEPALIVE_SECONDS="0.5")
    server.wait_ready()
    # a body that never arrives: the read times out and the connection is closed
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"input"')
        assert sock.recv(1024) == b""
    # a client that disconnects right after sending its request
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{"input": "x"}')
    assert post(server.url, "/v1/embeddings", {"input": "still fine"}).status == 200
    samples = parse_metrics(get(server.url, "/metrics").body.decode())
    assert metric(samples, "model_server_requests_total", endpoint="/v1/embeddings", status="499") >= 1
    assert "Traceback" not in server.output()
