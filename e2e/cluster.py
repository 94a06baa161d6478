"""e2e harness for cluster mode: the API server double over TLS, a kubeconfig for it, the
RBAC rules of deploy/base/rbac.yaml, and `ingressctl controller` as a child process.

Objects are written with `objects(yaml_text)` -> dicts, so a test can feed the very same
YAML to the file source and to the API double.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .apiserver import ApiServer
from .harness import INGRESSCTL, ROOT, LocalController, free_port, grace_args, wait_until

TOKEN = "e2e-controller-token"


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(textwrap.dedent(text)) if d]


def rbac_rules() -> list[dict[str, list[str]]]:
    """ClusterRole + Role rules of deploy/base/rbac.yaml (the double does not scope by namespace)."""
    docs = yaml.safe_load_all((ROOT / "deploy" / "base" / "rbac.yaml").read_text())
    return [r for d in docs if d and d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server-key.pem): a CA and a serving certificate for 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e-apiserver-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def write_kubeconfig(path: Path, server: str, token: str, ca: Path | None) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "e2e", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}],
    }))
    return path


def start_apiserver(workdir: Path, rules: list[dict[str, list[str]]] | None = None, **kw: Any) -> ApiServer:
    ca, cert, key = make_tls(workdir / "apiserver-tls")
    api = ApiServer(token=TOKEN, rules=rules, certfile=str(cert), keyfile=str(key), **kw).start()
    api.ca_path = ca  # type: ignore[attr-defined]
    return api


@dataclass
class ClusterController(LocalController):
    """`ingressctl controller` as a child process, pointed at the double by a kubeconfig."""

    api: ApiServer | None = None
    name: str = "ctl"
    lease: tuple[float, float, float] = (3.0, 2.0, 0.5)
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)

    @property
    def kubeconfig(self) -> Path:
        return write_kubeconfig(self.workdir / f"{self.name}.kubeconfig", self.api.url, self.token,  # type: ignore[union-attr]
                                self.api.ca_path)  # type: ignore[union-attr]

    @property
    def token(self) -> str:
        return f"token-{self.name}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        d, r, p = self.lease
        args = [*INGRESSCTL, "-v", "controller", "--kubeconfig", str(self.kubeconfig),
                "--state-dir", str(self.state_dir), "--listen-address", "127.0.0.1",
                "--http-port", str(self.http_port), "--https-port", str(self.https_port),
                "--status-port", str(self.status_port), "--status-address", "127.0.0.1",
                "--election-namespace", "ingressctl", "--lease-duration", str(d), "--renew-deadline", str(r),
                "--retry-period", str(p), *grace_args(self.extra_args), *self.extra_args]
        env = {**os.environ, "POD_NAME": self.name, **self.env}
        env.pop("KUBECONFIG", None)
        self.api.add_token(self.token, rbac_rules())  # type: ignore[union-attr]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                         start_new_session=True)
        try:
            wait_until(self.is_ready, timeout, "ingressctl controller /readyz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"ingressctl controller did not become ready:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL the controller and its nginx (a pod that died): no lease release, no cleanup."""
        try:
            nginx = self.nginx_pid()  # nginx runs in a process group of its own
        except (OSError, ValueError):
            nginx = 0
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        if nginx:
            try:
                os.killpg(nginx, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


def lease_holder(api: ApiServer, name: str = "ingressctl-leader") -> str:
    try:
        return str(api.get("Lease", "ingressctl", name)["spec"].get("holderIdentity") or "")
    except Exception:
        return ""


def ingress_status(api: ApiServer, namespace: str, name: str) -> list[dict[str, str]]:
    obj = api.get("Ingress", namespace, name)
    return list(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])




# -- fixtures (imported by the cluster test modules) ---------------------------------------------

CLASS = objects("""
    apiVersion: networking.k8s.io/v1
    kind: IngressClass
    metadata: {name: nginx}
    spec: {controller: ingressctl.io/ingress-controller}
    """)[0]


def service(name: str, namespace: str = "default", port: int = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP"}]}}


def endpoint_slice(service_name: str, ports: list[int], namespace: str = "default", suffix: str = "a",
                   ready: bool = True) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-{suffix}", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": p, "protocol": "TCP"} for p in ports[:1]],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}] if ports else []}


def ingress(name: str, host: str, service_name: str, path: str = "/", namespace: str = "default",
            annotations: dict[str, str] | None = None, class_name: str = "nginx") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {"ingressClassName": class_name, "rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": service_name, "port": {"number": 80}}}}]}}]}}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = start_apiserver(tmp_path, rules=rbac_rules(), bookmark_interval=0.5)
    yield server
    server.stop()
    assert not server.denied, f"requests outside deploy/base/rbac.yaml: {server.denied}"


@pytest.fixture
def cluster_controllers(tmp_path: Path, api: ApiServer) -> Iterator[list[ClusterController]]:
    """A list the test appends started controllers to; all are stopped at the end."""
    started: list[ClusterController] = []
    yield started
    for c in started:
        c.stop()


def start_controller(started: list[ClusterController], workdir: Path, api: ApiServer, name: str,
                     *args: str, env: dict[str, str] | None = None) -> ClusterController:
    c = ClusterController(workdir, extra_args=list(args), api=api, name=name, env=env or {})
    c.start()
    started.append(c)
    return c
