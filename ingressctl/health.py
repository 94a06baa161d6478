"""The status port: /healthz, /readyz and /metrics over plain HTTP.

`/healthz` answers 200 while the process is healthy (the callable says so), `/readyz` 200
once the first configuration is live, `/metrics` the Prometheus text format, and the
`pages` (debug.py) to loopback clients only. Runs in a daemon thread; it never touches the
controller's state, only asks the callables.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, str]]
Page = Callable[[], tuple[int, str, str]]  # status, content type, body


def all_of(*checks: Check) -> Check:
    """One check from several (controller, sources, ...): the first failure wins."""
    def check() -> tuple[bool, str]:
        for c in checks:
            ok, msg = c()
            if not ok:
                return ok, msg
        return True, "ok"
    return check


class StatusServer:
    def __init__(self, address: str, port: int, healthy: Check, ready: Check,
                 registry: CollectorRegistry | None = None, pages: Mapping[str, Page] | None = None) -> None:
        checks = {"/healthz": healthy, "/readyz": ready}
        loopback_pages = dict(pages or {})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in checks:
                    ok, msg = checks[path]()
                    self._send(200 if ok else 503, (msg or ("ok" if ok else "not ready")) + "\n", "text/plain")
                elif path == "/metrics" and registry is not None:
                    self._send(200, generate_latest(registry).decode(), CONTENT_TYPE_LATEST)
                elif path in loopback_pages:
                    if not _loopback(self.client_address[0]):
                        self._send(403, "only from loopback (kubectl port-forward)\n", "text/plain")
                        return
                    code, ctype, body = loopback_pages[path]()
                    self._send(code, body, ctype)
                else:
                    self._send(404, "not found\n", "text/plain")

            def _send(self, code: int, body: str, ctype: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="status", daemon=True)

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback
