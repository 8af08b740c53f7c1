"""HTTP layer: OpenAI-compatible endpoints, probes, metrics and graceful drain.

uvicorn (h11, asyncio) serves a small Starlette app. The event loop only moves
bytes and answers probes: JSON parsing, tokenizing and rendering run in the
``prepare`` thread pool, forward passes in the ``inference`` pool, both sized
by ``INFERENCE_CONCURRENCY`` (from the container's CPU limit), and the
:class:`~model_server.batching.Batcher` gathers the inputs of concurrent
requests into shared forward passes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .batching import Batcher
from .bert import ModelLoadError, SentenceEmbedder
from .config import Settings, resolve_model_dir
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics, endpoint_label
from .protocol import ModelServerProtocol

log = logging.getLogger("model_server")

LOADING, READY, FAILED, DRAINING = "loading", "ready", "failed", "draining"
MAX_DEBUG_DELAY = 60.0
SERVER_HEADER = "model-server/" + __version__
# Methods that get a route's 404/405; anything else is 501 (as http.server did).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
ROUTES: dict[str, tuple[str, ...]] = {
    "/healthz": ("GET", "HEAD"),
    "/readyz": ("GET", "HEAD"),
    "/metrics": ("GET",),
    "/v1/models": ("GET",),
    "/v1/models/{model_id:path}": ("GET",),
    "/v1/embeddings": ("POST",),
    "/v1/completions": ("POST",),
}
# Bodies up to this size are parsed on the event loop; larger ones in the prepare pool.
INLINE_JSON_BYTES = 16 * 1024
T = TypeVar("T")


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
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        if close:
            self.headers["Connection"] = "close"

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return json_response(self.status, self.body(), self.headers)


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(payload), status_code=status, media_type="application/json", headers=headers)


INTERNAL_ERROR = {"error": {"message": "internal server error", "type": "server_error", "param": None, "code": None}}


class _Uvicorn(uvicorn.Server):
    """uvicorn's server loop, with the signals and the shutdown left to :class:`ModelServer`."""

    def __init__(self, config: uvicorn.Config, owner: ModelServer) -> None:
        super().__init__(config)
        self.owner = owner

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # ModelServer installs its handlers on the event loop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.owner.shutdown(self)


class ModelServer:
    """Owns the listening socket, the model, the worker pools and the lifecycle state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.state = LOADING
        self.load_error: str | None = None
        self.model: SentenceEmbedder | None = None
        self.batcher: Batcher | None = None
        self.model_created = int(time.time())
        self._inflight = 0
        self._idle: asyncio.Event | None = None
        self._aborting = False
        self._cancel_load = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._uvicorn: _Uvicorn | None = None
        workers = settings.inference_concurrency
        self.prepare_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare")
        self.inference_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        # A SIGTERM from the moment the port accepts connections (a probe may see it before the event loop
        # runs) stops the server like a later one: recorded here, acted on once the loop serves.
        self._stop_requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.request_stop())
        self.sock = _listen(settings.host, settings.port)
        self.app = build_app(self)
        # Read at scrape time, on the event loop like every change to the batcher's queue.
        self.metrics.requests_waiting.set_function(lambda: self.batcher.waiting_requests() if self.batcher else 0)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    # ---- lifecycle -------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (drain, exit code 0) or a failed load (1)."""
        log.info(
            "listening on %s:%d (model %s, drain %.0fs, %d inference worker(s), batch wait %gms)",
            self.settings.host,
            self.port,
            self.settings.model_id,
            self.settings.drain_seconds,
            self.settings.inference_concurrency,
            self.settings.batch_wait_ms,
        )
        try:
            asyncio.run(self._serve())
        finally:
            self._cancel_load.set()
            self.prepare_pool.shutdown(wait=False, cancel_futures=True)
            self.inference_pool.shutdown(wait=False, cancel_futures=True)
        if self.state == FAILED:
            log.error("exiting: the model could not be loaded (%s)", self.load_error)
            return 1
        # SIGTERM is the normal way to stop: exit 0 even if the drain timed out (shutdown() logs it).
        return 0

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._idle = asyncio.Event()
        self._idle.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        config = uvicorn.Config(
            self.app,
            http=ModelServerProtocol,
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            headers=[("Server", SERVER_HEADER)],
            timeout_keep_alive=self.settings.keepalive_seconds,  # type: ignore[arg-type]
            backlog=128,
        )
        self._uvicorn = _Uvicorn(config, self)
        self._uvicorn.should_exit = self._stop_requested  # a signal that came before it existed
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()
        await self._uvicorn.serve(sockets=[self.sock])

    def request_stop(self) -> None:
        self._stop_requested = True
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def _load(self) -> None:
        """In a thread: load and warm up the model, then hand it to the event loop."""
        started = time.monotonic()
        try:
            if self.settings.debug_load_delay_seconds > 0:
                log.info("debug: delaying model load by %.1fs", self.settings.debug_load_delay_seconds)
                if self._cancel_load.wait(self.settings.debug_load_delay_seconds):
                    return
            model_dir = resolve_model_dir(self.settings)
            log.info("loading model %s from %s", self.settings.model_id, model_dir)
            model = SentenceEmbedder.from_dir(model_dir, token_budget=self.settings.token_budget)
            model.embed_ids(model.tokenize(["warm up"]))
        except (ModelLoadError, OSError, ValueError) as exc:
            log.error("model load failed: %s", exc)
            self._call_in_loop(self._load_failed, str(exc))
            return
        except Exception:
            log.exception("model load failed")
            self._call_in_loop(self._load_failed, "unexpected error while loading the model")
            return
        self._call_in_loop(self._loaded, model, time.monotonic() - started)

    def _call_in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                self._loop.call_soon_threadsafe(fn, *args)

    def _load_failed(self, error: str) -> None:
        self.load_error = error
        self.state = FAILED
        self.request_stop()

    def _loaded(self, model: SentenceEmbedder, elapsed: float) -> None:
        self.model = model
        self.model_created = int(time.time())
        self.batcher = Batcher(
            model.embed_ids,
            self.inference_pool,
            workers=self.settings.inference_concurrency,
            wait_seconds=self.settings.batch_wait_ms / 1000.0,
            token_budget=model.token_budget,
            on_batch=self.metrics.observe_batch,
        )
        self.batcher.start()
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

    async def shutdown(self, server: uvicorn.Server) -> None:
        """Stop accepting, let in-flight requests finish for up to DRAIN_SECONDS, then close."""
        self._cancel_load.set()
        for listener in server.servers:
            listener.close()  # new connections are refused from here on
        if self.state == FAILED:
            await self._close_connections(server, abort=True)
            return
        self.state = DRAINING
        self.metrics.model_ready.set(0)
        timeout = self.settings.drain_seconds
        log.info("shutting down: no new connections; %d request(s) in flight, up to %.0fs", self._inflight, timeout)
        assert self._idle is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        if self._inflight:
            log.warning("drain timed out after %.0fs with %d request(s) still running", timeout, self._inflight)
            await self._close_connections(server, abort=True)
        else:
            log.info("drained; exiting")
            await self._close_connections(server, abort=False)
        if self.batcher is not None:
            await self.batcher.close()

    async def _close_connections(self, server: uvicorn.Server, *, abort: bool) -> None:
        state = server.server_state
        if abort:
            self._aborting = True  # handlers cancelled below end quietly (their clients are cut off)
            for conn in list(state.connections):
                conn.transport.abort()
            await asyncio.sleep(0)  # let connection_lost mark the requests disconnected
            for task in list(state.tasks):
                task.cancel()
        else:
            for conn in list(state.connections):
                conn.shutdown()  # idle keep-alive connections close now, busy ones after their response
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=2.0)

    # ---- request accounting ---------------------------------------------
    def enter(self) -> None:
        self._inflight += 1
        if self._idle is not None:
            self._idle.clear()
        self.metrics.in_flight.inc()

    def leave(self) -> None:
        self.metrics.in_flight.dec()
        self._inflight -= 1
        if self._inflight == 0 and self._idle is not None:
            self._idle.set()

    @property
    def draining(self) -> bool:
        return self.state == DRAINING

    @property
    def aborting(self) -> bool:
        return self._aborting

    async def in_pool(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    # ---- API -------------------------------------------------------------
    def require_ready(self) -> SentenceEmbedder:
        if self.model is not None and self.state in (READY, DRAINING):
            return self.model  # while draining, requests already on an open connection still get served
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

    def model_card(self) -> dict[str, Any]:
        return {
            "id": self.settings.model_id,
            "object": "model",
            "created": self.model_created,
            "owned_by": "model-serving",
        }

    def prepare_embeddings(self, model: SentenceEmbedder, body: dict[str, Any]) -> tuple[list[list[int]], str]:
        """Validate an embeddings request and tokenize its inputs (in the prepare pool)."""
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
        return token_ids, fmt

    def render_embeddings(self, vectors: np.ndarray, fmt: str, tokens: int) -> bytes:
        """The response body (in the prepare pool, one embedding at a time so the GIL changes hands)."""
        parts = []
        for i, vec in enumerate(vectors):
            if fmt == "base64":
                emb = '"' + base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii") + '"'
            else:
                emb = json.dumps(vec.tolist(), separators=(",", ":"), allow_nan=False)
            parts.append(f'{{"object":"embedding","index":{i},"embedding":{emb}}}')
        tail = json.dumps(
            {"model": self.settings.model_id, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
            separators=(",", ":"),
        )
        return ('{"object":"list","data":[' + ",".join(parts) + "]," + tail[1:]).encode("utf-8")

    async def embed(self, token_ids: list[list[int]]) -> np.ndarray:
        assert self.batcher is not None
        started = time.monotonic()
        vectors = await self.batcher.embed(token_ids)
        self.metrics.inference_seconds.observe(time.monotonic() - started)
        return vectors

    async def read_json(self, request: Request) -> dict[str, Any]:
        headers = request.headers
        if "transfer-encoding" in headers:
            raise ApiError(
                411, "chunked request bodies are not supported; send Content-Length", code="length_required", close=True
            )
        raw = headers.get("content-length")
        if raw is None:
            raise ApiError(411, "a JSON body with a Content-Length header is required", code="length_required")
        length = int(raw)  # h11 has checked that it is a number
        limit = self.settings.max_request_bytes
        if length > limit:
            if length <= 4 * limit:  # read it so the client sees the 413, not a reset
                async for _ in request.stream():
                    pass
            raise ApiError(
                413,
                f"request body of {length} bytes exceeds the {limit}-byte limit",
                code="request_too_large",
                close=True,
            )
        raw_body = await request.body()
        if len(raw_body) <= INLINE_JSON_BYTES:
            return _parse_json(raw_body)
        return await self.in_pool(self.prepare_pool, _parse_json, raw_body)

    async def debug_delay(self, request: Request) -> None:
        raw = request.headers.get("x-debug-delay-seconds")
        if raw is None or not self.settings.debug_allow_delay_header:
            return
        try:
            delay = min(max(float(raw), 0.0), MAX_DEBUG_DELAY)
        except ValueError:
            raise _bad("X-Debug-Delay-Seconds must be a number", None, "invalid_header") from None
        await asyncio.sleep(delay)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the proto says TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _parse_json(raw: bytes) -> dict[str, Any]:
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


# ---- the ASGI app --------------------------------------------------------------------------------------------------
def build_app(server: ModelServer) -> ASGIApp:
    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        if server.state == READY:
            return json_response(200, {"status": "ready", "model": server.settings.model_id})
        return json_response(503, {"status": server.state})

    async def metrics(request: Request) -> Response:
        return Response(server.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def models(request: Request) -> Response:
        server.require_ready()
        return json_response(200, {"object": "list", "data": [server.model_card()]})

    async def model_card(request: Request) -> Response:
        server.require_ready()
        name = request.path_params["model_id"]
        if name != server.settings.model_id:
            raise ApiError(404, f"model {name!r} is not served here", param="model", code="model_not_found")
        return json_response(200, server.model_card())

    async def embeddings(request: Request) -> Response:
        body = await server.read_json(request)
        await server.debug_delay(request)
        model = server.require_ready()
        token_ids, fmt = await server.in_pool(server.prepare_pool, server.prepare_embeddings, model, body)
        vectors = await server.embed(token_ids)
        tokens = sum(len(ids) for ids in token_ids)
        server.metrics.inputs.labels("/v1/embeddings").inc(len(token_ids))
        server.metrics.prompt_tokens.labels("/v1/embeddings").inc(tokens)
        payload = await server.in_pool(server.prepare_pool, server.render_embeddings, vectors, fmt, tokens)
        return Response(payload, media_type="application/json")

    async def completions(request: Request) -> Response:
        body = await server.read_json(request)
        await server.debug_delay(request)
        server.require_ready()
        server.check_model_name(body)
        raise ApiError(
            400,
            f"model {server.settings.model_id!r} is an embedding model and cannot generate text; use /v1/embeddings",
            param="model",
            code="model_not_generative",
        )

    handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {
        "/healthz": healthz,
        "/readyz": readyz,
        "/metrics": metrics,
        "/v1/models": models,
        "/v1/models/{model_id:path}": model_card,
        "/v1/embeddings": embeddings,
        "/v1/completions": completions,
    }
    routes: list[tuple[Route, tuple[str, ...]]] = []
    for path, methods in ROUTES.items():
        route = Route(path, handlers[path], methods=list(methods))
        route.methods = set(methods)  # Starlette adds HEAD to every GET route; keep the table's methods
        routes.append((route, methods))

    def allowed(scope: Scope) -> str:
        for route, methods in routes:
            if route.matches(scope)[0] is not Match.NONE:
                return ", ".join(methods)
        return ""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        if exc.status_code == 405:
            allow = allowed(request.scope)
            return ApiError(
                405,
                f"{request.method} is not allowed on {path}; use {allow}",
                code="method_not_allowed",
                headers={"Allow": allow},
            ).response()
        if exc.status_code == 404:
            return ApiError(404, f"no such endpoint: {path}", code="not_found").response()
        return ApiError(exc.status_code, exc.detail, headers=dict(exc.headers or {})).response()

    async def client_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)  # nobody to send it to: recorded in the metrics only

    async def internal_error(request: Request, exc: Exception) -> Response:
        return json_response(500, INTERNAL_ERROR, {"Connection": "close"})

    app = Starlette(
        routes=[route for route, _ in routes],
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            ClientDisconnect: client_gone,
            Exception: internal_error,
        },
    )
    app.router.redirect_slashes = False
    return _Front(server, app)


class _Front:
    """Outermost ASGI layer: path normalisation, unknown methods, request accounting and logs, last-resort errors."""

    def __init__(self, server: ModelServer, app: ASGIApp) -> None:
        self.server = server
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        server = self.server
        started = time.monotonic()
        method = scope["method"]
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
            scope = {**scope, "path": path}
        endpoint = endpoint_label(path)
        status = 500
        response_started = False

        async def tracked_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((b"cache-control", b"no-store"))
                if server.draining and (b"connection", b"close") not in headers:
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        server.enter()
        try:
            if method not in KNOWN_METHODS:
                await ApiError(501, f"unsupported method {method!r}", close=True).response()(
                    scope, receive, tracked_send
                )
            else:
                await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if not server.aborting:
                raise
            status = 499  # cut off by a drain that timed out
        except Exception:
            log.exception("unhandled error on %s %s", method, path)
            if not response_started:  # else Starlette has sent the JSON 500 and re-raised it for this log
                await json_response(500, INTERNAL_ERROR, {"Connection": "close"})(scope, receive, tracked_send)
        finally:
            elapsed = time.monotonic() - started
            server.metrics.requests.labels(endpoint, method, str(status)).inc()
            server.metrics.latency.labels(endpoint).observe(elapsed)
            server.leave()
            if status == 499:
                log.info("%s %s: connection lost", method, path)
            level = logging.DEBUG if endpoint in ("/healthz", "/readyz", "/metrics") else logging.INFO
            log.log(level, "%s %s %d %.1fms", method, path, status, elapsed * 1000)
