"""A Kubernetes API server double for e2e tests: real HTTP(S), the real REST paths, the real
`kubernetes` Python client on the other end. Only tests use it.

Speaks: get / list (with resourceVersion in the list metadata, items without kind and
apiVersion, as the API server sends them) / watch (chunked JSON lines: ADDED, MODIFIED,
DELETED, BOOKMARK with allowWatchBookmarks, ERROR 410 Expired for a compacted
resourceVersion, timeoutSeconds) / create / update / merge and strategic-merge patch /
delete, the status subresource, label and field selectors, optimistic concurrency (409),
bearer-token authentication (401) and RBAC-style authorization from ClusterRole rules (403).
Faults for tests: `drop_watches()` cuts every open watch like a lost TCP connection,
`restart()` stops and starts the server on the same port with the watch cache lost (a
resume then gets 410), `stop()` leaves the API unreachable.

Design choice: the server records every authorized request as (verb, group, resource,
namespace, name), so a test can prove that `deploy/base/rbac.yaml` lists exactly the verbs
the controller uses.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .apistore import BY_KIND, RESOURCES, ApiError, ApiStore, Resource, field_matcher, label_matcher

Rule = dict[str, list[str]]  # a ClusterRole rule: apiGroups, resources, verbs, resourceNames


def allowed(rules: list[Rule] | None, verb: str, group: str, resource: str, name: str) -> bool:
    if rules is None:
        return True
    for r in rules:
        if (group in r.get("apiGroups", []) or "*" in r.get("apiGroups", [])) and \
                (resource in r.get("resources", []) or "*" in r.get("resources", [])) and \
                (verb in r.get("verbs", []) or "*" in r.get("verbs", [])) and \
                (not r.get("resourceNames") or name in r["resourceNames"]):
            return True
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: ApiServer

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.api.tls is not None:  # handshake in the handler thread, not in accept()
            try:
                request = self.api.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        self.api.track(request, True)
        try:
            super().finish_request(request, client_address)
        finally:
            self.api.track(request, False)


class ApiServer:
    def __init__(self, token: str = "test-token", rules: list[Rule] | None = None,
                 certfile: str | None = None, keyfile: str | None = None,
                 bookmark_interval: float = 1.0, max_watch_seconds: float = 30.0) -> None:
        self.store = ApiStore()
        self.tokens: dict[str, list[Rule] | None] = {token: rules}
        self.bookmark_interval = bookmark_interval
        self.max_watch_seconds = max_watch_seconds
        self.tls: ssl.SSLContext | None = None
        if certfile:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(certfile, keyfile)
        self.requests: list[tuple[str, ...]] = []  # token, verb, group, resource, ns, name
        self.denied: list[tuple[str, ...]] = []
        self.port = 0
        self.epoch = 0  # bumped by drop_watches/stop: open watches of older epochs end
        self._conns: set[Any] = set()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def add_token(self, token: str, rules: list[Rule] | None = None) -> None:
        self.tokens[token] = rules

    def used(self, token: str | None = None) -> set[tuple[str, str, str]]:
        """(verb, group, resource) of every authorized request (of one token)."""
        return {r[1:4] for r in self.requests if token is None or r[0] == token}

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ApiServer:
        httpd = _Server(("127.0.0.1", self.port), _Handler)
        httpd.api = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self.drop_watches()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, lose the watch cache, wait, start again on the same port."""
        self.stop()
        self.store.compact()
        time.sleep(down_for)
        self.start()

    def drop_watches(self) -> None:
        with self.store.cond:
            self.epoch += 1
            self.store.cond.notify_all()
        with self._lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def track(self, conn: Any, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # -- helpers for tests -------------------------------------------------------------------
    def apply(self, *objects: dict[str, Any]) -> None:
        for obj in objects:
            self.store.put_object(obj)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        res = BY_KIND[kind]
        self.store.delete(res, namespace if res.namespaced else "", name)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        res = BY_KIND[kind]
        return self.store.get(res, namespace if res.namespaced else "", name)

    def list(self, kind: str, namespace: str = "") -> list[dict[str, Any]]:
        return self.store.list(BY_KIND[kind], namespace, lambda _: True, lambda _: True)[0]


def _parse_path(path: str) -> tuple[Resource, str, str, str]:
    """(resource, namespace, name, subresource) for /api/v1/... and /apis/G/V/... paths."""
    segs = [s for s in path.split("/") if s]
    if segs[:1] == ["api"] and len(segs) >= 2:
        gv, rest = segs[1], segs[2:]
    elif segs[:1] == ["apis"] and len(segs) >= 3:
        gv, rest = f"{segs[1]}/{segs[2]}", segs[3:]
    else:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    res = RESOURCES.get((gv, rest[0])) if rest else None
    if res is None or len(rest) > 3 or (ns and not res.namespaced):
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and (sub != "status" or not res.has_status):
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
    if res.namespaced and name and not ns:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
    return res, ns, name, sub


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing ----------------------------------------------------------------------------
    def _send_json(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {e}") from None

    def _serve(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path == "/version":
                return self._send_json(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-double"})
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            if token is None or token not in api.tokens:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            res, ns, name, sub = _parse_path(url.path)
            verb = _VERBS.get(method) or ("get" if name else "watch" if q.get("watch") in ("true", "1") else "list")
            record = (token, verb, res.group, res.plural + (f"/{sub}" if sub else ""), ns, name)
            if not allowed(api.tokens[token], *record[1:4], name):
                api.denied.append(record)
                raise ApiError(403, "Forbidden", f'{res.plural} is forbidden: cannot {verb} resource '
                               f'"{record[3]}" in API group "{res.group}"')
            api.requests.append(record)
            self._dispatch(verb, res, ns, name, sub, q)
        except ApiError as e:
            self._send_json(e.code, e.status())

    def _dispatch(self, verb: str, res: Resource, ns: str, name: str, sub: str, q: dict[str, str]) -> None:
        store = self.server.api.store
        if verb == "get":
            return self._send_json(200, store.get(res, ns, name))
        if verb in ("list", "watch"):
            labels = label_matcher(q.get("labelSelector"))
            fields = field_matcher(q.get("fieldSelector"), res)
            if verb == "watch":
                return self._watch(res, ns, q, labels, fields)
            items, rv = store.list(res, ns, labels, fields)
            for i in items:
                i.pop("kind", None)
                i.pop("apiVersion", None)
            return self._send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.group_version,
                                         "metadata": {"resourceVersion": str(rv)}, "items": items})
        if verb == "create":
            return self._send_json(201, store.create(res, ns, self._body()))
        if verb == "update":
            return self._send_json(200, store.update(res, ns, name, self._body(), sub))
        if verb == "patch":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0]
            if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format"
                               f" - accepted media types include: application/merge-patch+json ({ctype})")
            return self._send_json(200, store.patch(res, ns, name, self._body(), sub))
        if verb == "delete":
            return self._send_json(200, store.delete(res, ns, name))
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported")

    # -- watch -------------------------------------------------------------------------------
    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, res: Resource, ns: str, q: dict[str, str], labels: Any, fields: Any) -> None:
        api, store = self.server.api, self.server.api.store
        timeout = min(float(q.get("timeoutSeconds") or api.max_watch_seconds), api.max_watch_seconds)
        deadline = time.monotonic() + timeout
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        start = q.get("resourceVersion") or "0"
        if not start.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resource version: {start}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        epoch = api.epoch
        try:
            with store.cond:
                if start == "0":  # "any": synthetic ADDED for the current state
                    items, cursor = store.list(res, ns, labels, fields)
                    pending = [("ADDED", i) for i in items]
                else:
                    cursor, pending = int(start), []
            self._stream(res, ns, labels, fields, cursor, pending, epoch, deadline, bookmarks)
        except (OSError, ValueError):
            self.close_connection = True

    def _stream(self, res: Resource, ns: str, labels: Any, fields: Any, cursor: int,
                pending: list[tuple[str, dict[str, Any]]], epoch: int, deadline: float, bookmarks: bool) -> None:
        api, store = self.server.api, self.server.api.store
        last_bookmark = time.monotonic()
        while True:
            for etype, obj in pending:
                self._chunk({"type": etype, "object": obj})
            now = time.monotonic()
            if bookmarks and now - last_bookmark >= api.bookmark_interval:
                last_bookmark = now
                self._chunk({"type": "BOOKMARK", "object": {
                    "kind": res.kind, "apiVersion": res.group_version,
                    "metadata": {"resourceVersion": str(cursor), "creationTimestamp": None}}})
            if now >= deadline:
                self.wfile.write(b"0\r\n\r\n")  # a clean end of the stream
                return
            with store.cond:
                if api.epoch != epoch:
                    self.close_connection = True  # dropped: no terminating chunk, connection cut
                    return
                try:
                    pending, cursor = store.events_after(res, ns, cursor, labels, fields)
                except ApiError as e:
                    self._chunk({"type": "ERROR", "object": e.status()})
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if not pending:
                    wait = min(deadline - now, api.bookmark_interval) if bookmarks else deadline - now
                    store.cond.wait(max(0.0, wait))
