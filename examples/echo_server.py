#!/usr/bin/env python3
"""A tiny HTTP backend for the quickstart and the e2e tests.

Answers every request with JSON naming itself and echoing what it received (method, path,
Host, X-Forwarded-* headers, body length). A request header `X-Echo-Delay: SECONDS` (at most
10) delays the answer, to try timeouts. Each server keeps the last 100 requests it answered
in `server.seen` as (method, path, Host) for tests.
Usage: echo_server.py NAME HOST:PORT [HOST:PORT...]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_for(name: str, port: int) -> type[BaseHTTPRequestHandler]:
    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms Nagle stall on keepalive

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            self.server.seen.append((self.command, self.path, self.headers.get("Host", "")))  # type: ignore[attr-defined]
            try:
                time.sleep(min(float(self.headers.get("X-Echo-Delay") or 0), 10.0))
            except ValueError:
                pass
            data = json.dumps({
                "backend": name, "port": port, "method": self.command, "path": self.path,
                "host": self.headers.get("Host", ""), "body_bytes": len(body),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "peer": self.client_address[0],
            }).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Backend", name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Echo


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away (nginx ends a request at its timeout) is not an error here."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def serve(name: str, addresses: list[str]) -> list[ThreadingHTTPServer]:
    servers = []
    for addr in addresses:
        host, _, port = addr.rpartition(":")
        srv = _Server((host or "127.0.0.1", int(port)), handler_for(name, int(port)))
        srv.daemon_threads = True
        srv.seen = deque(maxlen=100)  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    return servers


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: echo_server.py NAME HOST:PORT [HOST:PORT...]")
    serve(sys.argv[1], sys.argv[2:])
    threading.Event().wait()
