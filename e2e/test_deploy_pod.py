"""The controller as its pod runs it, short of a container runtime: the manifest's args and
env, its user, capability bounding set and no_new_privs, a read-only root filesystem with
only the pod's emptyDirs writable and the webhook Secret mounted read-only, and only the
RBAC its ServiceAccount is bound to (the API server double). It must become ready, route
through nginx, answer AdmissionReviews over TLS, and stop cleanly on SIGTERM.

Mount paths are relocated under a scratch directory (the args' paths rewritten to match)
and ports swapped for free ones; everything else is the built manifest. Needs root for the
mount namespace (`unshare`) and setpriv, as e2e does.

Design choice: the read-only root is a private mount namespace in which `/` is remounted
read-only and the emptyDir directories are bind-mounted over themselves first, so a write
anywhere else fails exactly as it would in the pod."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingressctl.admission import certs
from ingressctl.admission.server import WEBHOOK_PATH
from tests.deploy_kit import DEPLOY, containers, env_values, expanded_args, kustomize, one, pod_spec, rules_for

from .cluster import TOKEN, objects, start_apiserver, write_kubeconfig
from .harness import ROOT, free_port, wait_until

BACKEND = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.50, ports: [{name: http, port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing (util-linux): run scripts/setup.sh")
    return path


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"ictl-pod-{os.getpid()}-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def relocate(args: list[str], mounts: dict[str, Path]) -> list[str]:
    """--flag=/mount/path[/more] -> --flag=<local dir>[/more], for the longest matching mount."""
    out = []
    for a in args:
        name, eq, value = a.partition("=")
        for mount_path in sorted(mounts, key=len, reverse=True):
            if eq and (value == mount_path or value.startswith(mount_path + "/")):
                a = f"{name}={mounts[mount_path]}{value[len(mount_path):]}"
                break
        out.append(a)
    return out


def pod_volumes(workload: dict[str, Any], container: dict[str, Any], scratch: Path, uid: int, gid: int,
                ca: certs.ServingCertificate) -> tuple[dict[str, Path], list[Path]]:
    """Each volumeMount as a local directory: emptyDirs writable by the pod's user, the webhook
    Secret's files readable by its group only (defaultMode 0440, fsGroup). Returns the mapping and
    the writable directories."""
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    mapping, writable = {}, []
    for m in container["volumeMounts"]:
        local = scratch / "mnt" / m["mountPath"].strip("/")
        local.mkdir(parents=True)
        vol = volumes[m["name"]]
        if "emptyDir" in vol:
            os.chown(local, uid, gid)
            writable.append(local)
        else:
            assert vol["secret"]["secretName"] == "ingressctl-admission", vol
            for key, data in (("tls.crt", ca.cert_pem), ("tls.key", ca.key_pem), ("ca.crt", ca.ca_pem)):
                (local / key).write_bytes(data)
                os.chown(local / key, 0, gid)
                (local / key).chmod(vol["secret"]["defaultMode"])
        mapping[m["mountPath"]] = local
    return mapping, writable


def python_reachable(scratch: Path) -> str:
    """Shell commands that let the pod's user reach this interpreter when it lives under a
    directory only root may enter (pyenv in /root): inside the mount namespace, a tmpfs over
    that directory with the interpreter's tree bind-mounted back into it."""
    real = Path(sys.executable).resolve()
    blocked = next((p for p in reversed(real.parents) if not os.stat(p).st_mode & 0o001), None)
    if blocked is None:
        return ""
    child = blocked / real.relative_to(blocked).parts[0]
    keep = scratch / "hidden-interpreter"
    keep.mkdir()
    q = shlex.quote
    return (f"mount --bind {q(str(child))} {q(str(keep))} && mount -t tmpfs -o mode=0755 tmpfs {q(str(blocked))} && "
            f"mkdir {q(str(child))} && mount --bind {q(str(keep))} {q(str(child))} && ")


def launch(workload: dict[str, Any], container: dict[str, Any], args: list[str], env: dict[str, str],
           writable: list[Path], log: Path) -> subprocess.Popen[bytes]:
    sc, pod = container["securityContext"], pod_spec(workload)["securityContext"]
    uid, gid = sc.get("runAsUser", pod["runAsUser"]), sc.get("runAsGroup", pod["runAsGroup"])
    bounding = "-all" + "".join(f",+{c.lower()}" for c in sc["capabilities"].get("add", []))
    setpriv = [_tool("setpriv"), f"--reuid={uid}", f"--regid={gid}", f"--groups={pod['fsGroup']}",
               f"--bounding-set={bounding}", *([] if sc.get("allowPrivilegeEscalation") else ["--no-new-privs"])]
    command = [*setpriv, "env", "-i", *(f"{k}={v}" for k, v in env.items()),
               sys.executable, "-m", "ingressctl.cli", *args]
    binds = "".join(f"mount --bind {shlex.quote(str(d))} {shlex.quote(str(d))} && " for d in writable)
    script = f"{python_reachable(log.parent)}{binds}mount -o remount,bind,ro / && exec {shlex.join(command)}"
    out = log.open("wb")
    os.fchown(out.fileno(), uid, gid)  # runc hands PID 1's stdio to the container's user (nginx reopens /dev/stdout)
    return subprocess.Popen([_tool("unshare"), "--mount", "--propagation", "private", "sh", "-c", script],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_leftovers(scratch: Path) -> None:
    """nginx runs in its own session: after a failed run, end every process started from
    scratch (the nginx master names it in its command line) and their children (workers)."""
    parents: dict[int, int] = {}
    ours = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                if str(scratch).encode() in (entry / "cmdline").read_bytes():
                    ours.add(int(entry.name))
        except OSError:
            continue
    ours |= {pid for pid, ppid in parents.items() if ppid in ours}
    for pid in ours:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def nginx_uids(scratch: Path) -> set[int]:
    """Real uids of the nginx masters serving from scratch."""
    uids = set()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if entry.name.isdigit() and cmdline.startswith(b"nginx") and str(scratch).encode() in cmdline:
                line = next(x for x in (entry / "status").read_text().splitlines() if x.startswith("Uid:"))
                uids.add(int(line.split()[1]))
        except OSError:
            continue
    return uids


def get(port: int, path: str, host: str = "localhost") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


def admission_review(port: int, ca_pem: bytes, host: str) -> dict[str, Any]:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "new", "namespace": "default"},
           "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
               {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "operation": "CREATE", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
        "object": obj}})
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl.create_default_context(cadata=ca_pem.decode()))
    try:
        conn.request("POST", WEBHOOK_PATH, body=body, headers={"Content-Type": "application/json"})
        response: dict[str, Any] = json.loads(conn.getresponse().read())["response"]
        return response
    finally:
        conn.close()


@pytest.mark.parametrize("overlay", ["nodeport", "daemonset-hostnetwork"])
def test_controller_runs_as_its_pod_would(overlay: str, scratch: Path) -> None:
    objs = kustomize(DEPLOY / "overlays" / overlay)
    workload, container = next((w, c) for w, c in containers(objs) if expanded_args(w, c)[0] == "controller")
    api = start_apiserver(scratch, rules=rules_for(objs, pod_spec(workload)["serviceAccountName"]))
    api.apply(one(objs, "ConfigMap", "ingressctl-controller"), one(objs, "IngressClass", "nginx"), *objects(BACKEND))
    kubeconfig = write_kubeconfig(scratch / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    sc, pod = container["securityContext"], pod_spec(workload)["securityContext"]
    ca = certs.generate(["127.0.0.1"], datetime.datetime.now(datetime.UTC))
    mounts, writable = pod_volumes(workload, container, scratch, sc.get("runAsUser", pod["runAsUser"]),
                                   pod["fsGroup"], ca)
    ports = {"--http-port": free_port(), "--https-port": free_port(), "--status-port": free_port(),
             "--webhook-port": free_port()}
    args = [*relocate(expanded_args(workload, container), mounts), *(f"{k}={v}" for k, v in ports.items()),
            f"--kubeconfig={kubeconfig}", "--lease-duration=3", "--renew-deadline=2", "--retry-period=0.5"]
    env = {**env_values(workload, container), "PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": str(mounts["/tmp"])}
    proc = launch(workload, container, args, env, writable, scratch / "controller.log")
    try:
        wait_until(lambda: get(ports["--status-port"], "/readyz") == 200, 30, "/readyz")
        assert get(ports["--status-port"], "/healthz") == 200
        assert get(ports["--http-port"], "/", "web.example.com") == 503  # routed: the Service has no endpoints
        assert admission_review(ports["--webhook-port"], ca.ca_pem, "new.example.com")["allowed"] is True
        assert nginx_uids(scratch) == {sc.get("runAsUser", pod["runAsUser"])}  # the nginx master
        assert list(mounts["/var/lib/ingressctl"].glob("**/nginx.conf")), "nginx.conf lives under --state-dir"
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        kill_leftovers(scratch)
        api.stop()
        print((scratch / "controller.log").read_text(errors="replace")[-4000:])
    assert not api.denied, f"requests outside the ServiceAccount's RBAC: {api.denied}"
