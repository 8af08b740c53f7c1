"""A stand-in for the model hub's file API, enough for huggingface_hub's ``snapshot_download`` and ``model_info``
(what the pre-stage Job runs): one repository at one commit, with a plain file and an LFS file. It runs in a pod of
the tests (the pre-stage image's Python, this file in a ConfigMap), never reaching any hub.

Requests must carry ``Authorization: Bearer $HUB_TOKEN``; every request is recorded and listed at ``/_requests``, and
``/_files`` gives each file's sha256 (neither needs the token).
Usage: python3 hub_stand_in.py PORT (env HUB_REPO, HUB_COMMIT, HUB_TOKEN).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REPO = os.environ.get("HUB_REPO", "stand-in/tiny-model")
COMMIT = os.environ.get("HUB_COMMIT", "0123456789abcdef0123456789abcdef01234567")
TOKEN = os.environ.get("HUB_TOKEN", "")
# A config file kept in git and a weights file kept in LFS (its sha256 is what the pre-stage Job verifies).
FILES = {
    "config.json": (json.dumps({"architectures": ["StandIn"], "hidden_size": 64}) + "\n").encode(),
    "model.safetensors": bytes((i * 7 + i // 251) % 256 for i in range(256 * 1024)),
}
LFS = {"model.safetensors"}
SEEN: list[dict[str, Any]] = []


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sibling(name: str, blobs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"rfilename": name}
    if blobs:
        data = FILES[name]
        out |= {"blobId": git_oid(data), "size": len(data)}
        if name in LFS:
            out["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return out


def tree_entry(name: str) -> dict[str, Any]:
    data = FILES[name]
    out: dict[str, Any] = {"type": "file", "path": name, "size": len(data), "oid": git_oid(data)}
    if name in LFS:
        out["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return out


class Hub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.answer(head=True)

    def do_GET(self) -> None:
        self.answer(head=False)

    def answer(self, head: bool) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        if path in ("/_requests", "/_files"):  # the test's own questions: not the hub's API, not recorded
            listing: Any = (
                SEEN if path == "/_requests" else {f: hashlib.sha256(d).hexdigest() for f, d in FILES.items()}
            )
            return self.send(200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, head)
        authorized = not TOKEN or self.headers.get("Authorization") == f"Bearer {TOKEN}"
        SEEN.append({"method": self.command, "path": path, "authorized": authorized})
        if not authorized:
            return self.send(401, b'{"error": "Invalid credentials"}', {"Content-Type": "application/json"}, head)
        info = f"/api/models/{REPO}/revision/"
        tree = f"/api/models/{REPO}/tree/"
        resolve = f"/{REPO}/resolve/"
        if path.startswith(info) and path[len(info) :] in (COMMIT, "main"):
            blobs = query.get("blobs") == ["true"] or "expand" in query
            info_body = {"id": REPO, "modelId": REPO, "sha": COMMIT, "siblings": [sibling(f, blobs) for f in FILES]}
            return self.send(200, json.dumps(info_body).encode(), {"Content-Type": "application/json"}, head)
        if path.startswith(tree) and path[len(tree) :].split("/")[0] in (COMMIT, "main"):
            listed = json.dumps([tree_entry(f) for f in FILES]).encode()
            return self.send(200, listed, {"Content-Type": "application/json"}, head)
        if path.startswith(resolve):
            revision, _, name = path[len(resolve) :].partition("/")
            if revision in (COMMIT, "main") and name in FILES:
                data = FILES[name]
                etag = hashlib.sha256(data).hexdigest() if name in LFS else git_oid(data)
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
                if name in LFS:
                    headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
                return self.send(200, data, headers, head)
        self.send(
            404,
            b'{"error": "Repository Not Found"}',
            {"Content-Type": "application/json", "X-Error-Code": "RepoNotFound"},
            head,
        )

    def send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # one line a request on stderr, as the pod's log
        sys.stderr.write(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")


if __name__ == "__main__":
    ThreadingHTTPServer(("", int(sys.argv[1])), Hub).serve_forever()
