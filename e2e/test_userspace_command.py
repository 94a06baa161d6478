"""`ingressctl proxy --mode userspace --manifests DIR` as a user runs it: as nobody (no root),
cluster IPs on loopback, nodePorts, endpoint changes picked up from the directory."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import INGRESSCTL, ROOT, Backends, wait_until

CIDR_BASE = f"127.99.{os.getpid() % 250}"


def free_node_port() -> int:
    for _ in range(200):
        port = random.randint(30000, 32767)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in the nodePort range")


def manifests(node_port: int, ports: list[int], scheduler: str = "rr") -> str:
    svc = f"""apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default, annotations: {{ingressctl.io/scheduler: "{scheduler}"}}}}
spec:
  type: NodePort
  ports: [{{name: http, port: 8080, targetPort: http, nodePort: {node_port}}}]
"""
    slices = [f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-{i}, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
""" for i, port in enumerate(ports)]
    return "---\n".join([svc, *slices])


def who(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as r:
        return str(r.headers.get("X-Backend") or r.read().decode())


@pytest.fixture
def echo() -> Iterator[Backends]:
    b = Backends()
    yield b
    b.stop()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged proxy can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="icu-userspace-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_userspace_mode_needs_no_root(tmp_path: Path, shared_dir: Path, echo: Backends) -> None:
    ports = [echo.start("one"), echo.start("two")]
    node_port = free_node_port()
    (shared_dir / "web.yaml").write_text(manifests(node_port, ports))
    (shared_dir / "web.yaml").chmod(0o644)
    log = (tmp_path / "proxy.log").open("w")
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(nobody + INGRESSCTL + ["proxy", "--mode", "userspace", "--manifests", str(shared_dir),
                                          "--service-cidr", f"{CIDR_BASE}.0/24", "--status-port", "0",
                                          "--nodeport-addresses", "127.0.0.1/32", "--min-sync-period", "0.1"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    cluster_ip = f"{CIDR_BASE}.2"
    try:
        wait_until(lambda: _answers(cluster_ip, 8080), 15, "proxy listening on the cluster IP")
        seen = Counter(who(cluster_ip, 8080) for _ in range(6))
        assert len(seen) == 2 and set(seen.values()) == {3}, seen
        assert len({who("127.0.0.1", node_port) for _ in range(4)}) == 2
        (shared_dir / "web.yaml").write_text(manifests(node_port, ports[1:]))  # one endpoint left
        wait_until(lambda: len({who(cluster_ip, 8080) for _ in range(4)}) == 1, 15, "endpoint removal")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    print((tmp_path / "proxy.log").read_text()[-2000:])


def _answers(host: str, port: int) -> bool:
    try:
        who(host, port)
        return True
    except OSError:
        time.sleep(0.1)
        return False
