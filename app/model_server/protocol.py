"""uvicorn's pure-Python HTTP/1.1 protocol (h11), with the two things this server adds.

- Requests h11 cannot parse (a garbage request line, a bad Content-Length, headers
  over the size limit) get a JSON 400 like every other error, not uvicorn's text one.
- A read timeout: a client that sends part of a request (headers or body) and then
  stalls is disconnected after ``timeout_keep_alive`` seconds (``KEEPALIVE_SECONDS``,
  the same limit uvicorn applies to idle keep-alive connections). The handler that
  waits for the body then sees a disconnect (status 499 in the metrics).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("model_server")

_BAD_REQUEST = json.dumps(
    {
        "error": {
            "message": "invalid HTTP request",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request",
        }
    },
    separators=(",", ":"),
).encode()


class ModelServerProtocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # uvicorn writes a response's head and body separately: without TCP_NODELAY, Nagle's algorithm
        # holds the body until the client's delayed ACK of the head, about 40 ms on every keep-alive request.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._cancel_read_timer()
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BAD_REQUEST)).encode()),
            (b"cache-control", b"no-store"),
            (b"connection", b"close"),
        ]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=_BAD_REQUEST)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:  # a response had already begun on this connection
            pass
        self.transport.close()

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _arm_read_timer(self) -> None:
        """(Re)start the timer while a request is arriving incompletely; stop it otherwise."""
        self._cancel_read_timer()
        if self.transport is None or self.transport.is_closing():
            return
        state = self.conn.their_state
        partial_head = state is h11.IDLE and bool(self.conn.trailing_data[0])
        if state is h11.SEND_BODY or partial_head:
            self._read_timer = self.loop.call_later(self.timeout_keep_alive, self._read_timed_out)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
            log.info("%s: request not received within %ss; closing the connection", client, self.timeout_keep_alive)
            self.transport.close()
