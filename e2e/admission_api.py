"""A minimal Kubernetes API double for the certgen e2e test: Secrets and
ValidatingWebhookConfigurations over real HTTP on loopback, bearer-token auth, resourceVersion
with 409 on stale updates, Status objects for errors. Only tests use it.

Design choice: it knows just the two resources certgen touches, so the test proves the real
`kubernetes` client code path (kubeconfig, auth header, JSON bodies) without depending on the
cluster-mode double.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PATHS = [
    (re.compile(r"^/api/v1/namespaces/([a-z0-9-]+)/secrets(?:/([a-z0-9.-]+))?$"), "Secret"),
    (re.compile(r"^/apis/admissionregistration\.k8s\.io/v1/validatingwebhookconfigurations(?:/([a-z0-9.-]+))?$"),
     "ValidatingWebhookConfiguration"),
]


class AdmissionApi:
    def __init__(self, token: str = "certgen-token") -> None:
        self.token = token
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # kind, ns, name
        self.writes: list[tuple[str, str, str]] = []  # method, kind, name
        self.rv = 100
        self.lock = threading.Lock()
        api = self

        class Handler(_Handler):
            owner = api

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> AdmissionApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            self.objects[(kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.objects[(kind, namespace, name)])

    def delete(self, kind: str, namespace: str, name: str) -> None:
        with self.lock:
            del self.objects[(kind, namespace, name)]

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "certgen", "user": {"token": self.token}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "certgen"}}]}))
        return path


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}


class _Handler(BaseHTTPRequestHandler):
    owner: AdmissionApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        if self.headers.get("Authorization") != f"Bearer {self.owner.token}":
            return self._send(401, _status(401, "Unauthorized", "bad token"))
        path = self.path.split("?")[0]
        for rx, kind in _PATHS:
            m = rx.match(path)
            if m:
                ns, name = (m.group(1), m.group(2)) if kind == "Secret" else ("", m.group(1))
                return self._send(*self._dispatch(method, kind, ns, name or "", body))
        return self._send(404, _status(404, "NotFound", f"no route for {path}"))

    def _dispatch(self, method: str, kind: str, ns: str, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        api = self.owner
        with api.lock:
            if method == "POST":
                name = body["metadata"]["name"]
            key = (kind, ns, name)
            current = api.objects.get(key)
            if method == "GET":
                return (200, current) if current else (404, _status(404, "NotFound", f"{kind} {name} not found"))
            if method == "POST" and current is not None:
                return 409, _status(409, "AlreadyExists", f"{kind} {name} already exists")
            if method == "PUT":
                if current is None:
                    return 404, _status(404, "NotFound", f"{kind} {name} not found")
                if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                    return 409, _status(409, "Conflict", "the object has been modified")
            api.rv += 1
            stored = copy.deepcopy(body)
            stored["metadata"]["resourceVersion"] = str(api.rv)
            if ns:
                stored["metadata"]["namespace"] = ns
            api.objects[key] = stored
            api.writes.append((method, kind, name))
            return (201 if method == "POST" else 200), copy.deepcopy(stored)
