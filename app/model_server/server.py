"""HTTP layer: OpenAI-compatible endpoints, probes, metrics and graceful drain."""

from __future__ import annotations

import base64
import json
import logging
import signal
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .bert import ModelLoadError, SentenceEmbedder
from .config import Settings, resolve_model_dir
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics, endpoint_label

log = logging.getLogger("model_server")

LOADING, READY, FAILED, DRAINING = "loading", "ready", "failed", "draining"
MAX_DEBUG_DELAY = 60.0
ROUTES: dict[str, tuple[str, ...]] = {
    "/healthz": ("GET", "HEAD"),
    "/readyz": ("GET", "HEAD"),
    "/metrics": ("GET",),
    "/v1/models": ("GET",),
    "/v1/embeddings": ("POST",),
    "/v1/completions": ("POST",),
}


class ApiError(Exception):
    """An error reported to the client as an OpenAI-style JSON body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


class ModelServer:
    """Owns the listening socket, the model and the lifecycle state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.state = LOADING
        self.load_error: str | None = None
        self.model: SentenceEmbedder | None = None
        self.model_created = int(time.time())
        self._inflight = 0
        self._inflight_cond = threading.Condition()
        self._inference_slots = threading.BoundedSemaphore(settings.inference_concurrency)
        self._stop = threading.Event()
        self.httpd = _HTTPServer((settings.host, settings.port), _Handler)
        self.httpd.app = self
        self._serve_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> None:
        self._serve_thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        )
        self._serve_thread.start()
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        started = time.monotonic()
        try:
            if self.settings.debug_load_delay_seconds > 0:
                log.info("debug: delaying model load by %.1fs", self.settings.debug_load_delay_seconds)
                if self._stop.wait(self.settings.debug_load_delay_seconds):
                    return
            model_dir = resolve_model_dir(self.settings)
            log.info("loading model %s from %s", self.settings.model_id, model_dir)
            model = SentenceEmbedder.from_dir(model_dir, token_budget=self.settings.token_budget)
            model.embed_ids(model.tokenize(["warm up"]))
        except (ModelLoadError, OSError, ValueError) as exc:
            self.load_error = str(exc)
            log.error("model load failed: %s", exc)
            self.state = FAILED
            self._stop.set()
            return
        except Exception:
            self.load_error = "unexpected error while loading the model"
            log.exception("model load failed")
            self.state = FAILED
            self._stop.set()
            return
        elapsed = time.monotonic() - started
        self.model = model
        self.model_created = int(time.time())
        self.metrics.model_load_seconds.set(elapsed)
        self.metrics.model_info.info(
            {
                "model_id": self.settings.model_id,
                "task": "embedding",
                "architecture": "bert",
                "dimension": str(model.dimension),
                "max_input_tokens": str(model.max_seq_length),
                "pooling": model.pooling,
                "backend": "numpy",
                "server_version": __version__,
            }
        )
        if self.state == LOADING:
            self.state = READY
            self.metrics.model_ready.set(1)
            log.info("model ready in %.2fs (dimension %d)", elapsed, model.dimension)

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (drain, exit code 0) or a failed load (1)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        log.info(
            "listening on %s:%d (model %s, drain %.0fs)",
            self.settings.host,
            self.port,
            self.settings.model_id,
            self.settings.drain_seconds,
        )
        self.start()
        while not self._stop.wait(0.5):
            pass
        if self.state == FAILED:
            self.close()
            log.error("exiting: the model could not be loaded (%s)", self.load_error)
            return 1
        # SIGTERM is the normal way to stop: exit 0 even if the drain timed out
        # (drain() logs how many requests were cut off).
        self.drain(self.settings.drain_seconds)
        return 0

    def drain(self, timeout: float) -> bool:
        """Stop accepting, wait for in-flight requests up to ``timeout`` seconds."""
        self.state = DRAINING
        self.metrics.model_ready.set(0)
        with self._inflight_cond:
            pending = self._inflight
        log.info("shutting down: no new connections; %d request(s) in flight, up to %.0fs", pending, timeout)
        self.close()
        deadline = time.monotonic() + timeout
        with self._inflight_cond:
            while self._inflight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._inflight_cond.wait(remaining)
            left = self._inflight
        if left:
            log.warning("drain timed out after %.0fs with %d request(s) still running", timeout, left)
            return False
        log.info("drained; exiting")
        return True

    def close(self) -> None:
        """Stop the accept loop and close the listening socket (refuse new connections)."""
        self._stop.set()
        if self._serve_thread is not None and self._serve_thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    # ---- request accounting ---------------------------------------------
    def enter(self) -> None:
        with self._inflight_cond:
            self._inflight += 1
        self.metrics.in_flight.inc()

    def leave(self) -> None:
        self.metrics.in_flight.dec()
        with self._inflight_cond:
            self._inflight -= 1
            self._inflight_cond.notify_all()

    # ---- API -------------------------------------------------------------
    def require_ready(self) -> SentenceEmbedder:
        if self.state == READY and self.model is not None:
            return self.model
        if self.state == DRAINING and self.model is not None:
            return self.model  # requests already on an open connection still get served
        raise ApiError(
            503,
            "the model is still loading; retry shortly" if self.state == LOADING else "the server is not ready",
            type_="server_error",
            code="model_not_ready",
            headers={"Retry-After": "5"},
        )

    def check_model_name(self, body: dict[str, Any]) -> None:
        name = body.get("model")
        if name is None:
            return
        if not isinstance(name, str):
            raise _bad("'model' must be a string", "model", "invalid_type")
        if name not in (self.settings.model_id, self.settings.model_id.rsplit("/", 1)[-1]):
            raise ApiError(
                404,
                f"model {name!r} is not served here; this server serves {self.settings.model_id!r}",
                param="model",
                code="model_not_found",
            )

    def models(self) -> dict[str, Any]:
        self.require_ready()
        return {"object": "list", "data": [self.model_card()]}

    def model_card(self) -> dict[str, Any]:
        return {
            "id": self.settings.model_id,
            "object": "model",
            "created": self.model_created,
            "owned_by": "model-serving",
        }

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self.require_ready()
        self.check_model_name(body)
        texts = _parse_input(body.get("input"), self.settings.max_batch_inputs)
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise _bad("'encoding_format' must be 'float' or 'base64'", "encoding_format")
        dims = body.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims != model.dimension):
            raise _bad(
                f"'dimensions' is not adjustable for this model; omit it or pass {model.dimension}",
                "dimensions",
            )
        user = body.get("user")
        if user is not None and not isinstance(user, str):
            raise _bad("'user' must be a string", "user", "invalid_type")
        token_ids = model.tokenize(texts)
        for i, ids in enumerate(token_ids):
            if len(ids) > model.max_seq_length:
                where = "input" if isinstance(body["input"], str) else f"input[{i}]"
                raise ApiError(
                    400,
                    f"{where} has {len(ids)} tokens; this model accepts at most "
                    f"{model.max_seq_length} tokens per input",
                    param="input",
                    code="context_length_exceeded",
                )
        started = time.monotonic()
        with self._inference_slots:
            vectors = model.embed_ids(token_ids)
        self.metrics.inference_seconds.observe(time.monotonic() - started)
        total = sum(len(ids) for ids in token_ids)
        self.metrics.inputs.labels("/v1/embeddings").inc(len(texts))
        self.metrics.prompt_tokens.labels("/v1/embeddings").inc(total)
        data = []
        for i, vec in enumerate(vectors):
            if fmt == "base64":
                emb: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii")
            else:
                emb = [float(x) for x in vec]
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return {
            "object": "list",
            "data": data,
            "model": self.settings.model_id,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        self.require_ready()
        self.check_model_name(body)
        raise ApiError(
            400,
            f"model {self.settings.model_id!r} is an embedding model and cannot generate text; use /v1/embeddings",
            param="model",
            code="model_not_generative",
        )


def _parse_input(value: Any, max_items: int) -> list[str]:
    if value is None:
        raise _bad("'input' is required: a string or a list of strings", "input", "missing_required_parameter")
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        if not value:
            raise _bad("'input' must not be an empty list", "input")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value) or all(
            isinstance(v, list) for v in value
        ):
            raise _bad("token-id input is not supported; send text", "input", "invalid_type")
        items = value
    else:
        raise _bad("'input' must be a string or a list of strings", "input", "invalid_type")
    if len(items) > max_items:
        raise _bad(f"'input' has {len(items)} items; at most {max_items} per request", "input")
    for i, item in enumerate(items):
        where = "input" if isinstance(value, str) else f"input[{i}]"
        if not isinstance(item, str):
            raise _bad(f"{where} must be a string", "input", "invalid_type")
        if not item.strip():
            raise _bad(f"{where} is empty", "input")
    return items


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    app: ModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connection resets and the like: log one line, never a traceback to the client.
        log.debug("connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "model-server/" + __version__
    sys_version = ""
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.app.settings.keepalive_seconds)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # Every method goes through _dispatch, unknown ones too (405, JSON).
    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        app = self.server.app
        started = time.monotonic()
        path = urlsplit(self.path).path
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        endpoint = endpoint_label(path)
        status = 500
        app.enter()
        try:
            if app.state == DRAINING:
                self.close_connection = True
            status = self._route(app, path)
        except ApiError as err:
            status = err.status
            self._send_json(err.status, err.body(), err.headers)
        except OSError as exc:  # the client went away or stalled (timeout): nobody to answer
            status = 499
            self.close_connection = True
            log.info("%s %s: connection lost (%s)", self.command, path, type(exc).__name__)
        except Exception:
            log.exception("unhandled error on %s %s", self.command, path)
            status = 500
            self.close_connection = True
            self._send_json(
                500,
                {"error": {"message": "internal server error", "type": "server_error", "param": None, "code": None}},
            )
        finally:
            elapsed = time.monotonic() - started
            app.metrics.requests.labels(endpoint, self.command, str(status)).inc()
            app.metrics.latency.labels(endpoint).observe(elapsed)
            app.leave()
            level = logging.DEBUG if endpoint in ("/healthz", "/readyz", "/metrics") else logging.INFO
            log.log(level, "%s %s %d %.1fms", self.command, path, status, elapsed * 1000)

    def _route(self, app: ModelServer, path: str) -> int:
        method = self.command
        allowed = ROUTES.get(path)
        if allowed is None and path.startswith("/v1/models/"):
            allowed = ("GET",)
        if allowed is None:
            self._discard_body()
            raise ApiError(404, f"no such endpoint: {path}", code="not_found")
        if method not in allowed:
            self._discard_body()
            raise ApiError(
                405,
                f"{method} is not allowed on {path}; use {', '.join(allowed)}",
                code="method_not_allowed",
                headers={"Allow": ", ".join(allowed)},
            )
        if path == "/healthz":
            return self._send_json(200, {"status": "ok"})
        if path == "/readyz":
            if app.state == READY:
                return self._send_json(200, {"status": "ready", "model": app.settings.model_id})
            return self._send_json(503, {"status": app.state})
        if path == "/metrics":
            return self._send_bytes(200, app.metrics.render(), METRICS_CONTENT_TYPE)
        if path == "/v1/models":
            return self._send_json(200, app.models())
        if path.startswith("/v1/models/"):
            app.require_ready()
            name = path[len("/v1/models/") :]
            if name != app.settings.model_id:
                raise ApiError(404, f"model {name!r} is not served here", param="model", code="model_not_found")
            return self._send_json(200, app.model_card())
        body = self._read_json_body(app)
        self._debug_delay(app)
        if path == "/v1/embeddings":
            return self._send_json(200, app.embeddings(body))
        return self._send_json(200, app.completions(body))

    def _debug_delay(self, app: ModelServer) -> None:
        raw = self.headers.get("X-Debug-Delay-Seconds")
        if raw is None or not app.settings.debug_allow_delay_header:
            return
        try:
            delay = min(max(float(raw), 0.0), MAX_DEBUG_DELAY)
        except ValueError:
            raise _bad("X-Debug-Delay-Seconds must be a number", None, "invalid_header") from None
        time.sleep(delay)

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise _bad("invalid Content-Length header", None, "invalid_header")
        return length

    def _discard_body(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        length = self._content_length() or 0
        if length > 64 * 1024:
            self.close_connection = True
        else:
            self._skip(length)

    def _skip(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _read_json_body(self, app: ModelServer) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "chunked request bodies are not supported; send Content-Length", code="length_required")
        length = self._content_length()
        if length is None:
            raise ApiError(411, "a JSON body with a Content-Length header is required", code="length_required")
        limit = app.settings.max_request_bytes
        if length > limit:
            self.close_connection = True
            if length <= 4 * limit:  # read it so the client sees the 413, not a reset
                self._skip(length)
            raise ApiError(
                413, f"request body of {length} bytes exceeds the {limit}-byte limit", code="request_too_large"
            )
        raw = self.rfile.read(length)
        if len(raw) != length:
            self.close_connection = True
            raise _bad("request body ended early", None, "invalid_body")
        try:
            body = json.loads(raw)
        except UnicodeDecodeError:
            raise _bad("request body is not UTF-8 text", None, "invalid_json") from None
        except json.JSONDecodeError as exc:
            raise _bad(
                f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                None,
                "invalid_json",
            ) from None
        except RecursionError:
            raise _bad("request body is nested too deeply", None, "invalid_json") from None
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object", None, "invalid_json")
        return body

    # ---- responses ------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> int:
        data = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")
        return self._send_bytes(status, data, "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return status

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by http.server itself (bad request line, huge headers): JSON too."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsable request line: still answer with a status line
            self.request_version = "HTTP/1.0"
        body = {"error": {"message": message or phrase, "type": "invalid_request_error", "param": None, "code": None}}
        data = json.dumps(body).encode("utf-8")
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _dispatch logs one line per request
