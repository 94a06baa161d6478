"""The validating admission webhook: AdmissionReview v1 over HTTPS.

`review(body, check)` is the protocol, without sockets: it parses an AdmissionReview,
refuses malformed ones with an HTTP status and a reason, asks `check` for a verdict and
returns the response review (uid echoed, status message, warnings). `WebhookServer` is the
thin HTTPS layer around it: TLS 1.2 or newer, a bounded body, socket and validation
timeouts, `/healthz`. `CertificateFiles` holds the serving certificate and swaps in a new
one when the files change (watchdog), so a rotated Secret needs no restart; connections
already open keep the context they started with.

Design choice: the server never runs nginx or any other program; a verdict is computed
in memory by `admission.validate` (see CVE-2025-1974 for why).
"""

from __future__ import annotations

import concurrent.futures
import gc
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..store import Snapshot, Store
from ..watch import DebouncedWatch
from .validate import ValidateOptions, Validator, Verdict

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/networking/v1/ingresses"
ROUTES_PATH = "/gateway/v1/routes"  # HTTPRoutes: a second webhook, failurePolicy Ignore (other controllers' routes)
MAX_BODY = 4 << 20  # an object may be 1.5 MiB; a review carries object and oldObject
INGRESS_GVK = {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}
KINDS = (INGRESS_GVK, *({"group": "gateway.networking.k8s.io", "version": "v1", "kind": k}
                        for k in ("HTTPRoute", "GRPCRoute")))

Check = Callable[[Mapping[str, Any]], Verdict]


class BadReview(ValueError):
    """A request the webhook cannot answer with a review: HTTP 400 with this reason."""


def _request(body: bytes) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadReview(f"body is not JSON: {e}") from None
    except RecursionError:
        raise BadReview("body is JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadReview("body is not a JSON object")
    if doc.get("kind") != "AdmissionReview":
        raise BadReview(f"kind {doc.get('kind')!r} is not AdmissionReview")
    if doc.get("apiVersion") != "admission.k8s.io/v1":
        raise BadReview(f"apiVersion {doc.get('apiVersion')!r} is not admission.k8s.io/v1")
    req = doc.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("uid"), str) or not req["uid"]:
        raise BadReview("request.uid is missing")
    kind = req.get("kind")
    if not isinstance(kind, dict) or not any(all(kind.get(k) == v for k, v in gvk.items()) for gvk in KINDS):
        raise BadReview(f"request.kind {kind!r} is not networking.k8s.io/v1 Ingress "
                        "or gateway.networking.k8s.io/v1 HTTPRoute or GRPCRoute")
    return req


def response(uid: str, verdict: Verdict) -> dict[str, Any]:
    resp: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        resp["status"] = {"code": 403, "reason": "Forbidden",
                          "message": f"ingressctl denied {verdict.kind} {verdict.ingress}: {verdict.message}"}
    if verdict.warnings:
        resp["warnings"] = [w[:512] for w in verdict.warnings[:20]]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


def review(body: bytes, check: Check) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON document) for one request body."""
    try:
        req = _request(body)
    except BadReview as e:
        return 400, {"error": str(e)}
    if req.get("operation") not in ("CREATE", "UPDATE"):
        return 200, response(req["uid"], Verdict("", True))
    obj = req.get("object")
    if not isinstance(obj, dict):
        return 400, {"error": "request.object is missing"}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and not meta.get("namespace") and isinstance(req.get("namespace"), str):
        obj = {**obj, "metadata": {**meta, "namespace": req["namespace"]}}  # the namespace of the request URL
    return 200, response(req["uid"], check(obj))


class StoreCheck:
    """`Check` against the live Store; options follow the snapshot (e.g. the ConfigMap)."""

    def __init__(self, store: Store, options_for: Callable[[Snapshot], ValidateOptions]) -> None:
        self.store, self.options_for = store, options_for
        self._lock = threading.Lock()
        self._validator: Validator | None = None

    def __call__(self, obj: Mapping[str, Any]) -> Verdict:
        with self._lock:  # choosing the validator only; the verdict runs beside others
            snap = self.store.snapshot()
            validator = self._current(snap)
        return validator.check(snap, obj)

    def warm(self) -> None:
        """Build the host index now (~0.1 s at 10,000 Ingresses) rather than in the first verdict."""
        with self._lock:
            snap = self.store.snapshot()
            self._current(snap).index.refresh(snap.ingresses)

    def _current(self, snap: Snapshot) -> Validator:
        """The validator for `snap`'s options; a new one (ConfigMap edit, the hourly clock) keeps the index."""
        opts = self.options_for(snap)
        current = self._validator
        if current is None or current.options != opts:
            fresh = Validator(opts)
            if current is not None and current.index.allow_snippets == fresh.index.allow_snippets:
                fresh.index = current.index  # cached routes depend on the snippet policy only
            self._validator = current = fresh
        return current


class CertificateFiles:
    """The serving certificate; `reload()` swaps it when both files load, else keeps the old one."""

    def __init__(self, cert: str | Path, key: str | Path) -> None:
        self.cert, self.key = Path(cert), Path(key)
        self.context = self._load()
        self.loads = 1
        self._watch: DebouncedWatch | None = None

    def _load(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def reload(self) -> bool:
        try:
            self.context = self._load()
        except (OSError, ssl.SSLError) as e:
            log.warning("webhook certificate %s not reloaded (keeping the current one): %s", self.cert, e)
            return False
        self.loads += 1
        log.info("webhook certificate reloaded from %s", self.cert)
        return True

    def watch(self, debounce: float = 0.2) -> None:
        """Follow both files' directories (Secret volumes swap a symlink, not the file)."""
        dirs = {self.cert.resolve().parent, self.key.resolve().parent, self.cert.parent, self.key.parent}
        self._watch = DebouncedWatch(dirs, self.reload, debounce).start()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()


@dataclass(frozen=True)
class Limits:
    max_body: int = MAX_BODY
    socket_timeout: float = 10.0  # reading the request, writing the answer
    check_timeout: float = 5.0  # computing the verdict
    max_connections: int = 128  # open at once; more are closed at accept
    max_verdicts: int = 16  # computing at once, overdue ones included; more answer 503 at once
    stuck_after: float = 30.0  # /healthz fails while a verdict has run this long


class Verdicts:
    """Verdicts run each in a thread of its own, so one that overruns its deadline (a thread
    cannot be cancelled) holds no lock and no pool slot another review needs; their number is
    capped, and the overdue ones are visible to /healthz."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._running: dict[int, float] = {}  # id -> monotonic start
        self._next = 0

    def run(self, body: bytes, check: Check) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if len(self._running) >= self.limits.max_verdicts:
                return 503, {"error": f"{len(self._running)} verdicts are being computed; try again"}
            self._next += 1
            ident = self._next
            self._running[ident] = time.monotonic()
        future: concurrent.futures.Future[tuple[int, dict[str, Any]]] = concurrent.futures.Future()

        def work() -> None:
            try:
                future.set_result(review(body, check))
            except BaseException as e:
                future.set_exception(e)
            finally:
                with self._lock:
                    self._running.pop(ident, None)

        threading.Thread(target=work, name=f"admission-{ident}", daemon=True).start()
        try:
            return future.result(timeout=self.limits.check_timeout)
        except concurrent.futures.TimeoutError:
            return 504, {"error": f"validation did not finish within {self.limits.check_timeout:g}s"}
        except Exception as e:  # a bug answers 500 (failurePolicy decides) instead of hanging up
            log.exception("admission review failed")
            return 500, {"error": f"internal error: {type(e).__name__}: {e}"}

    def stuck(self) -> int:
        """How many verdicts have run longer than `stuck_after`."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for started in self._running.values() if now - started > self.limits.stuck_after)


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], certs: CertificateFiles, check: Check,
                 limits: Limits = Limits()) -> None:
        self.certs, self.check, self.limits = certs, check, limits
        self.verdicts = Verdicts(limits)
        self.connections = threading.BoundedSemaphore(limits.max_connections)
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        sock.settimeout(self.limits.socket_timeout)
        # Answers are small and the API server waits for each: without TCP_NODELAY the body
        # waited ~40 ms for the delayed ACK of the headers' segment (issue 18 §7).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake runs in the request thread, so a slow client cannot stall accept().
        return self.certs.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.acquire(blocking=False):  # refused fast: no thread, no handshake
            log.debug("webhook connection from %s refused: %d open", client_address[0], self.limits.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def verdict(self, body: bytes) -> tuple[int, dict[str, Any]]:
        return self.verdicts.run(body, self.check)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        try:
            self.connection.do_handshake()
            super().handle()
        except (OSError, ssl.SSLError) as e:  # handshake failures, timeouts, resets
            log.debug("webhook connection from %s ended: %s", self.client_address[0], e)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/healthz":
            stuck = self.server.verdicts.stuck()
            if stuck:
                self._send(503, {"status": f"{stuck} verdicts running for more than "
                                           f"{self.server.limits.stuck_after:g}s"})
            else:
                self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": f"no such path {self.path.split('?')[0]}"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] not in (WEBHOOK_PATH, ROUTES_PATH):
            self._send(404, {"error": f"POST AdmissionReviews to {WEBHOOK_PATH} or {ROUTES_PATH}"})
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(411, {"error": "Content-Length is required"})
            return
        if len(length) > 12 or int(length) > self.server.limits.max_body:
            self._send(413, {"error": f"body larger than {self.server.limits.max_body} bytes"})
            return
        body = self.rfile.read(int(length))
        if self.headers.get_content_type() != "application/json":
            self._send(400, {"error": "Content-Type must be application/json"})
            return
        status, doc = self.server.verdict(body)
        self._send(status, doc)

    def _send(self, status: int, doc: Mapping[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self._headers_buffer.append(b"\r\n" + data)  # headers and body in one write
        self.flush_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook %s: " + format, self.client_address[0], *args)


class Webhook:
    """A running webhook (a server thread and a certificate watcher); `stop()` ends both."""

    def __init__(self, server: WebhookServer, certs: CertificateFiles) -> None:
        self.server, self.certs = server, certs
        self.thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.certs.stop()


def _observed(check: Check, observe: Callable[[bool, float], None]) -> Check:
    """`check`, reporting each verdict and how long it took (the controller's metrics)."""
    def timed(obj: Mapping[str, Any]) -> Verdict:
        started = time.monotonic()
        verdict = check(obj)
        observe(verdict.allowed, time.monotonic() - started)
        return verdict
    return timed


def start_webhook(store: Store, options_for: Callable[[Snapshot], ValidateOptions], port: int,
                  cert: str | Path, key: str | Path, address: str = "0.0.0.0",
                  limits: Limits = Limits(), observe: Callable[[bool, float], None] | None = None) -> Webhook:
    """Start the webhook in a background thread (for `ingressctl controller` and `webhook`).

    Raises OSError (port) or ssl.SSLError / OSError (certificate files) before any thread starts.
    """
    certs = CertificateFiles(cert, key)
    check = StoreCheck(store, options_for)
    server = WebhookServer((address, port), certs, check if observe is None else _observed(check, observe), limits)
    check.warm()
    # The Store's objects (the initial sync) are long-lived: keep them out of the cyclic GC,
    # whose full collections otherwise pause a verdict for 0.1-0.2 s at 10,000 Ingresses.
    gc.freeze()
    certs.watch()
    hook = Webhook(server, certs)
    hook.thread.start()
    return hook
