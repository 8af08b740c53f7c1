"""Black-box client for the model server: used by the pytest suite and by scripts/image-test.

Standard library only, so the host's plain ``python3`` can run it against a container:

    python3 tests/app/smoke_client.py wait     --url http://127.0.0.1:8000 --timeout 120
    python3 tests/app/smoke_client.py check    --url http://127.0.0.1:8000 --model-id ID
    python3 tests/app/smoke_client.py slow     --url ... --delay 4 --result FILE
    python3 tests/app/smoke_client.py refused  --url ...
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

EXPECTED_METRICS = (
    "model_server_requests_in_flight",
    "model_server_request_duration_seconds_bucket",
    "model_server_requests_total",
    "model_server_model_load_seconds",
    "model_server_model_info",
    "model_server_model_ready",
)


class SmokeError(AssertionError):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def request(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Response:
    """One request on a fresh connection. ``body`` is sent as JSON; ``raw`` as is."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        conn.close()


def get(url: str, path: str, **kw: Any) -> Response:
    return request(url, "GET", path, **kw)


def post(url: str, path: str, body: Any = None, **kw: Any) -> Response:
    return request(url, "POST", path, body, **kw)


def wait_ready(url: str, timeout: float, alive: Any = None) -> float:
    """Poll /readyz until 200; returns seconds waited. ``alive()`` False aborts early."""
    start = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - start < timeout:
        if alive is not None and not alive():
            raise SmokeError(f"server exited before it became ready (last /readyz: {last})")
        try:
            resp = get(url, "/readyz", timeout=5)
            if resp.status == 200:
                return time.monotonic() - start
            last = f"{resp.status} {resp.body[:200]!r}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    raise SmokeError(f"/readyz not 200 after {timeout:.0f}s (last: {last})")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
            found = True
    if not found:
        raise SmokeError(f"metric {name}{labels or ''} not found")
    return total


def metric_or_zero(samples: dict[str, float], name: str, **labels: str) -> float:
    try:
        return metric(samples, name, **labels)
    except SmokeError:
        return 0.0


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise SmokeError(message)


def expect_json_error(resp: Response, status: int, what: str) -> dict[str, Any]:
    expect(resp.status == status, f"{what}: expected HTTP {status}, got {resp.status}: {resp.body[:300]!r}")
    expect(resp.content_type.startswith("application/json"), f"{what}: error is not JSON ({resp.content_type})")
    body = resp.json()
    expect(isinstance(body.get("error"), dict), f"{what}: no 'error' object in {body}")
    expect(bool(body["error"].get("message")), f"{what}: error has no message")
    expect(b"Traceback" not in resp.body, f"{what}: stack trace leaked to the client")
    return body["error"]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def check_api(url: str, model_id: str, dimension: int = 384) -> list[str]:
    """The end-to-end checks of a ready server; returns a log of what passed."""
    done: list[str] = []
    resp = get(url, "/healthz")
    expect(resp.status == 200, f"/healthz: {resp.status}")
    resp = get(url, "/readyz")
    expect(resp.status == 200, f"/readyz: {resp.status}")
    done.append("healthz/readyz 200")

    models = get(url, "/v1/models")
    expect(models.status == 200, f"/v1/models: {models.status}")
    ids = [m.get("id") for m in models.json().get("data", [])]
    expect(ids == [model_id], f"/v1/models lists {ids}, expected [{model_id!r}]")
    done.append(f"/v1/models lists {model_id}")

    before = parse_metrics(get(url, "/metrics").body.decode())
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "A woman is playing violin."]
    resp = post(url, "/v1/embeddings", {"model": model_id, "input": texts})
    expect(resp.status == 200, f"/v1/embeddings: {resp.status} {resp.body[:300]!r}")
    body = resp.json()
    vecs = [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])]
    expect(len(vecs) == 3, f"expected 3 embeddings, got {len(vecs)}")
    expect(all(len(v) == dimension for v in vecs), f"embedding dimension is not {dimension}")
    for v in vecs:
        expect(abs(math.sqrt(cosine(v, v)) - 1.0) < 1e-4, "embedding is not unit length")
    related, unrelated = cosine(vecs[0], vecs[1]), cosine(vecs[0], vecs[2])
    expect(related > unrelated + 0.3, f"paraphrase similarity {related:.3f} vs unrelated {unrelated:.3f}")
    expect(body["usage"]["prompt_tokens"] > 0, "usage.prompt_tokens is 0")
    done.append(f"/v1/embeddings: 3 x {dimension}, cos(paraphrase)={related:.3f} > cos(unrelated)={unrelated:.3f}")

    expect_json_error(post(url, "/v1/embeddings", raw=b"{not json"), 400, "bad JSON")
    expect_json_error(post(url, "/v1/embeddings", {"model": model_id}), 400, "missing input")
    expect_json_error(post(url, "/v1/embeddings", {"input": 42}), 400, "wrong input type")
    expect_json_error(get(url, "/no/such/path"), 404, "unknown path")
    err = expect_json_error(post(url, "/v1/completions", {"prompt": "Hello"}), 400, "completions on an embedding model")
    expect("embedding model" in err["message"], f"unclear completions error: {err['message']}")
    done.append("400/404 JSON errors without stack traces")

    metrics = get(url, "/metrics")
    expect(metrics.status == 200, f"/metrics: {metrics.status}")
    expect(metrics.content_type.startswith("text/plain"), f"/metrics content type {metrics.content_type}")
    text = metrics.body.decode()
    for name in EXPECTED_METRICS:
        expect(f"\n{name}" in text or text.startswith(name), f"/metrics lacks {name}")
    after = parse_metrics(text)
    ok = {"endpoint": "/v1/embeddings", "status": "200"}
    ok_delta = metric(after, "model_server_requests_total", **ok) - metric_or_zero(
        before, "model_server_requests_total", **ok
    )
    expect(ok_delta == 1, f"requests_total for /v1/embeddings 200 rose by {ok_delta}, expected 1")
    expect(metric(after, "model_server_model_load_seconds") > 0, "model_load_seconds is not > 0")
    expect(metric(after, "model_server_model_info", model_id=model_id) == 1, "model_info lacks the model id")
    done.append("/metrics: names present, counters moved")
    return done


def port_refuses(url: str, timeout: float = 2.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:  # e.g. reset while the listener closes: not a clear answer yet
        return False


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["wait", "check", "slow", "refused", "inflight"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model-id", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--delay", type=float, default=4.0)
    parser.add_argument("--result", help="slow: write the HTTP status here")
    args = parser.parse_args(argv)
    try:
        if args.command == "wait":
            waited = wait_ready(args.url, args.timeout)
            print(f"ready after {waited:.1f}s")
        elif args.command == "check":
            for line in check_api(args.url, args.model_id):
                print(f"  ok: {line}")
        elif args.command == "slow":
            resp = post(
                args.url,
                "/v1/embeddings",
                {"input": "a request that is in flight during shutdown"},
                headers={"X-Debug-Delay-Seconds": str(args.delay)},
                timeout=args.delay + 60,
            )
            ok = resp.status == 200 and len(resp.json()["data"][0]["embedding"]) > 0
            if args.result:
                with open(args.result, "w", encoding="utf-8") as fh:
                    fh.write(f"{resp.status}\n")
            print(f"slow request finished: HTTP {resp.status}")
            return 0 if ok else 1
        elif args.command == "inflight":  # the in-flight gauge, the scrape that reads it included
            samples = parse_metrics(get(args.url, "/metrics", timeout=5).body.decode())
            print(int(metric(samples, "model_server_requests_in_flight")))
        elif args.command == "refused":
            if not port_refuses(args.url):
                print("the port still accepts connections", file=sys.stderr)
                return 1
            print("new connections are refused")
    except (SmokeError, OSError, ValueError, KeyError) as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
