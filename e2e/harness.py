"""e2e harness: a real `ingressctl run` on a manifest directory, echo backends, an HTTP client.

`LocalController` starts the real command line as a child process on free loopback ports,
waits for /readyz, and lets a test write or delete manifest files and wait until nginx
serves the result. `Backends` runs echo servers (examples/echo_server.py) on loopback.
`request` speaks HTTP or HTTPS (with SNI) to 127.0.0.1 with any Host header.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INGRESSCTL = [sys.executable, "-m", "ingressctl.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _echo_module() -> Any:
    spec = importlib.util.spec_from_file_location("echo_server", ROOT / "examples" / "echo_server.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Backends:
    """Echo HTTP servers on 127.0.0.1, each answering with its name."""

    def __init__(self) -> None:
        self._echo = _echo_module()
        self.servers: list[Any] = []

    def start(self, name: str, port: int | None = None) -> int:
        port = port or free_port()
        self.servers += self._echo.serve(name, [f"127.0.0.1:{port}"])
        return port

    def stop(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()
        self.servers.clear()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    peer_cn: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def backend(self) -> str:
        return self.headers.get("x-backend", "")


def request(port: int, host: str, path: str = "/", *, tls: bool = False, method: str = "GET",
            headers: dict[str, str] | None = None, body: bytes | None = None, timeout: float = 5.0,
            client_cert: tuple[str, str] | None = None) -> Response:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    cn = ""
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if client_cert:
            ctx.load_cert_chain(*client_cert)
        sock = ctx.wrap_socket(sock, server_hostname=host)
        der = sock.getpeercert(binary_form=True)
        if der:
            from cryptography import x509
            from cryptography.x509.oid import NameOID
            cert = x509.load_der_x509_certificate(der)
            attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = str(attrs[0].value) if attrs else ""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(), cn)
    finally:
        conn.close()


def grace_args(extra_args: list[str]) -> list[str]:
    """Tests stop controllers at once unless they ask for a --shutdown-grace-period."""
    return [] if "--shutdown-grace-period" in extra_args else ["--shutdown-grace-period", "0"]


def wait_until(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Poll until check() is true; returns the seconds it took; AssertionError on timeout."""
    start = time.monotonic()
    last_exc: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except (OSError, http.client.HTTPException) as e:
            last_exc = e
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


@dataclass
class LocalController:
    """`ingressctl run` as a child process on a manifest directory of its own."""

    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def manifests(self) -> Path:
        return self.workdir / "manifests"

    _state: Path | None = None

    @property
    def state_dir(self) -> Path:
        """Outside pytest's 0700 tmp tree: nginx workers (user nobody) read files below it."""
        if self._state is None:
            self._state = Path(tempfile.mkdtemp(prefix="ingressctl-e2e-"))
            os.chmod(self._state, 0o755)
        return self._state

    @property
    def log_path(self) -> Path:
        return self.workdir / "ingressctl.log"

    def write(self, name: str, text: str) -> None:
        """Write a manifest atomically (as editors and kubectl-like tools do)."""
        self.manifests.mkdir(parents=True, exist_ok=True)
        tmp = self.manifests / f".{name}.tmp"
        tmp.write_text(textwrap.dedent(text))
        os.replace(tmp, self.manifests / name)

    def remove(self, name: str) -> None:
        (self.manifests / name).unlink()

    def start(self, timeout: float = 20.0) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        args = [*INGRESSCTL, "-v", "run", "--manifests", str(self.manifests), "--state-dir", str(self.state_dir),
                "--http-port", str(self.http_port), "--https-port", str(self.https_port),
                "--status-port", str(self.status_port), *self._grace(), *self.extra_args]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            wait_until(self.is_ready, timeout, "ingressctl /readyz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"ingressctl did not become ready:\n{self.log()[-6000:]}") from None

    def _grace(self) -> list[str]:
        return grace_args(self.extra_args)

    def is_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"ingressctl exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
        return self.status("/readyz")[0] == 200

    def status(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.status_port, timeout=2)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        except OSError:
            return 0, ""
        finally:
            conn.close()

    def metric(self, name: str) -> float:
        _, text = self.status("/metrics")
        m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def live_config_has(self, text: str) -> bool:
        """The configuration holding `text` is the one the controller counts live: its id is the
        live one in /metrics, set once no old worker accepts (one answer from a new worker
        proves nothing for the next connection)."""
        conf = (self.state_dir / "nginx" / "nginx.conf").read_text()
        m = re.search(r"config-id ([0-9a-f]{12})", conf)
        return text in conf and m is not None and self.metric("ingressctl_config_hash") == int(m.group(1), 16)

    def serving_config_id(self) -> str:
        """The config id nginx's newest workers answer with (its private status socket)."""
        from ingressctl.nginx.process import UnixHTTPConnection

        conn = UnixHTTPConnection(str(self.state_dir / "nginx" / "status.sock"), timeout=2)
        try:
            conn.request("GET", "/ingressctl/config-id", headers={"Connection": "close"})
            return conn.getresponse().read().decode().strip()
        finally:
            conn.close()

    def wait_live(self, timeout: float = 10.0) -> None:
        """Wait until the controller has declared live the configuration nginx's newest workers
        serve (README: "live" means no worker of an older configuration accepts connections)."""
        cid = self.serving_config_id()
        if not re.fullmatch(r"[0-9a-f]{16}", cid):
            raise AssertionError(f"nginx answers config id {cid!r}")
        wait_until(lambda: self.metric("ingressctl_config_hash") == int(cid[:12], 16), timeout,
                   f"configuration {cid} declared live")

    def reloads(self) -> float:
        return self.metric("ingressctl_nginx_reloads_total")

    def get(self, host: str, path: str = "/", **kw: Any) -> Response:
        port = self.https_port if kw.get("tls") else self.http_port
        return request(port, host, path, **kw)

    def wait_for(self, check: Callable[[], bool], timeout: float = 5.0, what: str = "routing change") -> float:
        """Wait until check() holds, then until the configuration that made it hold is live:
        one new worker answering is not enough, old ones may still accept for ~100 ms and
        answer the previous way (issue 11, item 2)."""
        took = wait_until(check, timeout, what)
        try:
            self.wait_live()
        except OSError:  # nginx is not running (a test of that): nothing to settle
            pass
        return took

    def log(self) -> str:
        """The whole output of ingressctl and nginx (error messages show its end)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def nginx_pid(self) -> int:
        return int((self.state_dir / "nginx" / "nginx.pid").read_text().strip())

    def stop(self) -> None:
        try:
            self._stop_process()
        finally:
            if self._state is not None:
                shutil.rmtree(self._state, ignore_errors=True)
                self._state = None

    def _stop_process(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None


def manifests_for_backends(namespace: str, service: str, ports: list[int], service_port: int = 80,
                           port_name: str = "http") -> str:
    """A Service and one EndpointSlice pointing at echo backends on 127.0.0.1:<ports>."""
    slices = "\n".join(textwrap.dedent(f"""\
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {{name: {service}-{i}, namespace: {namespace}, labels: {{kubernetes.io/service-name: {service}}}}}
        addressType: IPv4
        ports: [{{name: {port_name}, port: {port}, protocol: TCP}}]
        endpoints:
        - addresses: ["127.0.0.1"]
        """) for i, port in enumerate(ports))
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {service}, namespace: {namespace}}}
        spec:
          ports: [{{name: {port_name}, port: {service_port}}}]
        """) + slices


INGRESS_CLASS = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: ingressctl.io/ingress-controller}
"""
