"""The capability model of the image and the manifests, on the real kernel: nginx carries
`cap_net_bind_service=+ep` (as the Dockerfile sets it), and runs as the manifests' user with
the manifests' capability bounding set and no_new_privs as allowPrivilegeEscalation says.
- the hostNetwork DaemonSet's settings let nginx bind port 80-style ports (< 1024);
- the Deployment's settings run nginx on its high ports;
- without NET_BIND_SERVICE in the bounding set the kernel refuses to exec nginx at all,
  which is why every pod running nginx keeps it there.
setpriv (util-linux) stands in for the container runtime; needs root (as e2e does)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_kit import DEPLOY, ROOT, containers, expanded_args, flag, kustomize, pod_spec

from .harness import free_port, wait_until

SETCAP = re.search(r"setcap (\S+) /usr/sbin/nginx", (ROOT / "Dockerfile").read_text())


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        pytest.fail(f"{name} is missing: run scripts/setup.sh")
    return path


def controller(overlay: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    for w, c in containers(kustomize(DEPLOY / "overlays" / overlay)):
        args = expanded_args(w, c)
        if args[0] == "controller":
            return w, c, args
    raise AssertionError(f"{overlay}: no controller")


def free_low_port() -> int:
    for port in range(900, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below 1024 on 127.0.0.1")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix=f"ictl-caps-{os.getpid()}-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def nginx_copy(workdir: Path) -> Path:
    """A copy of nginx with the Dockerfile's file capability."""
    assert SETCAP, "the Dockerfile must setcap /usr/sbin/nginx"
    binary = workdir / "nginx"
    shutil.copy2(_tool("nginx"), binary)
    subprocess.run([_tool("setcap"), SETCAP.group(1), str(binary)], check=True, capture_output=True)
    return binary


def run_as_manifest(binary: Path, workload: dict[str, Any], container: dict[str, Any], port: int,
                    tmp_path: Path) -> subprocess.Popen[str]:
    """nginx listening on 127.0.0.1:port with the container's user, bounding set and no_new_privs."""
    sc, pod = container["securityContext"], pod_spec(workload)["securityContext"]
    uid = str(sc.get("runAsUser", pod["runAsUser"]))
    state = tmp_path / f"state-{port}"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    t = f"{state}/t"
    (state / "nginx.conf").write_text(
        f"pid {state}/nginx.pid; error_log stderr; events {{}}\n"
        f"http {{ access_log off; client_body_temp_path {t}b; proxy_temp_path {t}p; fastcgi_temp_path {t}f;"
        f" uwsgi_temp_path {t}u; scgi_temp_path {t}s; server {{ listen 127.0.0.1:{port}; return 204; }} }}\n")
    bounding = "-all" + "".join(f",+{c.lower()}" for c in sc["capabilities"].get("add", []))
    argv = [_tool("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", f"--bounding-set={bounding}"]
    if not sc.get("allowPrivilegeEscalation"):
        argv.append("--no-new-privs")
    argv += [str(binary), "-p", str(state), "-c", str(state / "nginx.conf"), "-g", "daemon off;"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 204")


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out


def test_hostnetwork_daemonset_settings_let_nginx_bind_a_low_port(nginx_copy: Path, workdir: Path) -> None:
    w, c, args = controller("daemonset-hostnetwork")
    assert int(flag(args, "--http-port") or 80) < 1024
    port = free_low_port()
    proc = run_as_manifest(nginx_copy, w, c, port, workdir)
    try:
        wait_until(lambda: answers(port), 10, f"nginx on 127.0.0.1:{port}")
    finally:
        print(stop(proc))


def test_deployment_settings_run_nginx_on_its_high_ports(nginx_copy: Path, workdir: Path) -> None:
    w, c, args = controller("deployment-loadbalancer")
    assert int(flag(args, "--http-port") or 80) >= 1024
    port = free_port()
    proc = run_as_manifest(nginx_copy, w, c, port, workdir)
    try:
        wait_until(lambda: answers(port), 10, f"nginx on 127.0.0.1:{port}")
    finally:
        print(stop(proc))


def test_without_the_capability_in_the_bounding_set_nginx_cannot_even_start(nginx_copy: Path,
                                                                           workdir: Path) -> None:
    w, c, _ = controller("deployment-loadbalancer")
    c = {**c, "securityContext": {**c["securityContext"], "capabilities": {"drop": ["ALL"]}}}
    proc = run_as_manifest(nginx_copy, w, c, free_port(), workdir)
    assert proc.wait(timeout=10) != 0
    assert "Operation not permitted" in stop(proc)
