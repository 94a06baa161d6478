"""Building blocks for the annotation e2e tests: manifests, scripted backends, certificates.

`ingress(...)`, `secret(...)` and `service(...)` return manifests as JSON text (YAML is a
superset of JSON, so no quoting surprises). `ScriptedServer` is a loopback HTTP server whose
answers come from a function and which records every request it gets (auth backend, mirror
sink, error-status backend, slow backend). `started_controller` writes every manifest
before starting `ingressctl run`, so a whole test module costs one start and one config.

Design choice: each test module builds all its objects up front and shares one controller
(module scope); tests only send requests, so they stay independent of each other's order.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .harness import INGRESS_CLASS, INGRESSCTL, LocalController, Response, manifests_for_backends

PREFIX = "nginx.ingress.kubernetes.io/"


def ingress(name: str, host: str, paths: list[tuple[str, str, str]], annotations: dict[str, str] | None = None,
            tls_secret: str = "", created: str = "2026-01-01T00:00:00Z") -> str:
    """An Ingress; paths are (path, pathType, service) on port 80; annotation names without prefix."""
    spec: dict[str, Any] = {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": svc, "port": {"number": 80}}}}
        for p, t, svc in paths]}}]}
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    meta = {"name": name, "namespace": "default", "creationTimestamp": created,
            "annotations": {PREFIX + k: v for k, v in (annotations or {}).items()}}
    return json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec})


def secret(name: str, data: dict[str, bytes], type_: str = "Opaque") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": type_,
                       "metadata": {"name": name, "namespace": "default"},
                       "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})


def service(name: str, ports: list[int]) -> str:
    """A Service `name` (port 80) whose EndpointSlices point at 127.0.0.1:<ports>."""
    return manifests_for_backends("default", name, ports)


# -- scripted backends --------------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    version: str = "HTTP/1.1"
    client_cn: str = ""  # common name of the client certificate (TLS with client_ca)


Answer = tuple[int, dict[str, str], bytes]
Script = Callable[[Seen], Answer]


class ScriptedServer:
    """A loopback HTTP/1.1 server answering with `script(request)` and recording requests.

    With `tls`, it speaks HTTPS with that certificate (a backend-protocol HTTPS upstream);
    with `client_ca` too, it asks for a client certificate signed by that CA and records its CN.
    """

    def __init__(self, script: Script, tls: KeyPair | None = None, client_ca: KeyPair | None = None) -> None:
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                cn = next((value for rdn in (peer or {}).get("subject", ()) for key, value in rdn
                           if key == "commonName"), "")
                req = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                           self.rfile.read(length) if length else b"", self.request_version, str(cn))
                outer.seen.append(req)
                status, headers, body = script(req)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the proxy gave up on us (timeout tests)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as d:
                ctx.load_cert_chain(*tls.files(Path(d), "backend"))
                if client_ca is not None:
                    ctx.verify_mode = ssl.CERT_OPTIONAL
                    ctx.load_verify_locations(client_ca.files(Path(d), "client-ca")[0])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- certificates ---------------------------------------------------------------------------------

NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def files(self, directory: Path, name: str) -> tuple[str, str]:
        crt, key = directory / f"{name}.crt", directory / f"{name}.key"
        crt.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        return str(crt), str(key)


def make_cert(cn: str, issuer: KeyPair | None = None, ca: bool = False, dns: str = "") -> KeyPair:
    """A certificate for `cn`, self-signed or signed by `issuer`; `ca` makes it a CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
               .not_valid_after(NOW + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return KeyPair(cert, key)


def tls_secret(name: str, pair: KeyPair) -> str:
    return secret(name, {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem}, "kubernetes.io/tls")


# -- controller and requests -----------------------------------------------------------------------

def started_controller(manifests: dict[str, str], ready: Callable[[LocalController], bool],
                       extra_args: list[str] | None = None, refused: frozenset[str] = frozenset(),
                       ) -> Iterator[LocalController]:
    """Yields a running controller serving `manifests`, once `ready(controller)` holds.

    First, `ingressctl validate` (the admission webhook's checks) must refuse exactly the
    Ingresses named in `refused` ("ns/name"): what nginx is shown to serve, the webhook admits.
    The work directory is a fresh 0711 directory under /tmp (pytest's are 0700): nginx
    workers run as `nobody` and open htpasswd files per request, so they must traverse it.
    """
    workdir = Path(tempfile.mkdtemp(prefix="ingressctl-e2e-ann-"))
    os.chmod(workdir, 0o711)
    ctl = LocalController(workdir, extra_args=list(extra_args or []))
    ctl.write("00-class.yaml", INGRESS_CLASS)
    for name, text in manifests.items():
        ctl.write(name, text)
    try:
        got = validate_refuses(ctl.manifests, extra_args or [])
        assert got == refused, f"ingressctl validate refused {sorted(got)}, expected {sorted(refused)}"
        ctl.start()
        ctl.wait_for(lambda: ready(ctl), timeout=10, what="all annotation manifests live")
        yield ctl
    finally:
        ctl.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def validate_refuses(manifests: Path, extra_args: list[str]) -> frozenset[str]:
    """The Ingresses `ingressctl validate` refuses in a manifest directory ("ns/name")."""
    args = [*INGRESSCTL, "validate", "--manifests", str(manifests)]
    if "--configmap" in extra_args:
        args += ["--configmap", extra_args[extra_args.index("--configmap") + 1]]
    if "--enable-ssl-passthrough" in extra_args:
        args.append("--enable-ssl-passthrough")
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    return frozenset(re.findall(r"^error: Ingress (\S+): ", out.stdout + out.stderr, re.M))


def request_from(source: str, port: int, host: str, path: str = "/") -> Response:
    """A plain HTTP GET to 127.0.0.1:port sent from another loopback address (e.g. 127.0.0.2)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.sock = sock
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
