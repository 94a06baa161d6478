"""The controller and the proxy as their pods run them, short of a container runtime: the
manifest's args and env, the user, capability bounding set and no_new_privs, a read-only
root filesystem with only the pod's emptyDirs (and hostPath) writable and the webhook Secret
mounted read-only, and only the RBAC the ServiceAccount is bound to (the API server double).
The controller must become ready, route through nginx, answer AdmissionReviews over TLS, and
stop cleanly on SIGTERM; the proxy must program netfilter (in a throwaway network namespace);
the certgen Jobs must write the Secret and patch the webhook with nothing writable at all.

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
import yaml

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
  ingressClassName: ingressctl
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
                ca: certs.ServingCertificate | None) -> tuple[dict[str, Path], list[Path]]:
    """Each volumeMount as a local directory: emptyDirs writable by the pod's user, the webhook
    Secret's files readable by its group only (defaultMode 0440, fsGroup). Returns the mapping and
    the writable directories."""
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    mapping, writable = {}, []
    for m in container["volumeMounts"]:
        local = scratch / "mnt" / m["mountPath"].strip("/")
        vol = volumes[m["name"]]
        if "hostPath" in vol:  # the node's own file, as the kubelet mounts it (FileOrCreate)
            local = Path(vol["hostPath"]["path"])
            local.touch(exist_ok=True)
            writable.append(local)
        elif "emptyDir" in vol:
            local.mkdir(parents=True)
            os.chown(local, uid, gid)
            writable.append(local)
        else:
            local.mkdir(parents=True)
            assert vol["secret"]["secretName"] == "ingressctl-admission" and ca is not None, vol
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
    keep.mkdir(exist_ok=True)
    q = shlex.quote
    return (f"mount --bind {q(str(child))} {q(str(keep))} && mount -t tmpfs -o mode=0755 tmpfs {q(str(blocked))} && "
            f"mkdir {q(str(child))} && mount --bind {q(str(keep))} {q(str(child))} && ")


def identity(workload: dict[str, Any], container: dict[str, Any]) -> tuple[int, int]:
    sc, pod = container["securityContext"], pod_spec(workload)["securityContext"]
    uid = int(sc.get("runAsUser", pod.get("runAsUser", 0)))
    return uid, int(sc.get("runAsGroup", pod.get("runAsGroup", uid)))


def launch(workload: dict[str, Any], container: dict[str, Any], args: list[str], env: dict[str, str],
           writable: list[Path], log: Path, own_netns: bool = False, then: str = "") -> subprocess.Popen[bytes]:
    """`ingressctl ARGS` with the container's identity and capabilities on a read-only root
    (`writable` excepted); `own_netns` for a throwaway network namespace, `then` a shell
    command run (as root) in the same namespaces after ingressctl exits."""
    sc, pod = container["securityContext"], pod_spec(workload)["securityContext"]
    uid, gid = identity(workload, container)
    bounding = "-all" + "".join(f",+{c.lower()}" for c in sc["capabilities"].get("add", []))
    groups = f"--groups={pod['fsGroup']}" if "fsGroup" in pod else "--clear-groups"
    setpriv = [_tool("setpriv"), f"--reuid={uid}", f"--regid={gid}", groups, f"--bounding-set={bounding}",
               *([] if sc.get("allowPrivilegeEscalation") else ["--no-new-privs"])]
    command = shlex.join([*setpriv, "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                          sys.executable, "-m", "ingressctl.cli", *args])
    binds = "".join(f"mount --bind {shlex.quote(str(d))} {shlex.quote(str(d))} && " for d in writable)
    run = f"{command}; rc=$?; {then}; exit $rc" if then else f"exec {command}"
    script = f"{python_reachable(log.parent)}{binds}mount -o remount,bind,ro / && {run}"
    out = log.open("wb")
    os.fchown(out.fileno(), uid, gid)  # runc hands PID 1's stdio to the container's user (nginx reopens /dev/stdout)
    unshare = [_tool("unshare"), "--mount", *(["--net"] if own_netns else []), "--propagation", "private"]
    return subprocess.Popen([*unshare, "sh", "-c", script], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


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
           "spec": {"ingressClassName": "ingressctl", "rules": [{"host": host, "http": {"paths": [
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
    api.apply(one(objs, "ConfigMap", "ingressctl-controller"), one(objs, "IngressClass", "ingressctl"), *objects(BACKEND))
    kubeconfig = write_kubeconfig(scratch / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    sc, pod = container["securityContext"], pod_spec(workload)["securityContext"]
    ca = certs.generate(["127.0.0.1"], datetime.datetime.now(datetime.UTC))
    mounts, writable = pod_volumes(workload, container, scratch, identity(workload, container)[0],
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


LB_BACKEND = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {type: LoadBalancer, loadBalancerClass: ingressctl.io/lb, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}, nodeName: node-1}]
"""


def test_proxy_programs_netfilter_as_its_pod_would(scratch: Path) -> None:
    """The proxy's args (Services from a manifest directory instead of the API, one sync),
    root with only NET_ADMIN and NET_RAW, a read-only root but the xtables lock, in a
    throwaway network namespace: the LoadBalancer address from the example pool is DNATed
    to the endpoint."""
    objs = kustomize(DEPLOY / "overlays" / "bare-metal")
    workload, container = next((w, c) for w, c in containers(objs) if expanded_args(w, c)[0] == "proxy")
    manifests = scratch / "manifests"
    manifests.mkdir()
    (manifests / "objects.yaml").write_text(yaml.safe_dump_all([one(objs, "ConfigMap", "ingressctl-lb-pools"),
                                                                *objects(LB_BACKEND)]))
    mounts, writable = pod_volumes(workload, container, scratch, *identity(workload, container), ca=None)
    args = [*relocate(expanded_args(workload, container), mounts), f"--manifests={manifests}", "--once"]
    env = {**env_values(workload, container), "PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": str(mounts["/tmp"])}
    log = scratch / "proxy.log"
    proc = launch(workload, container, args, env, writable, log, own_netns=True, then="iptables-save -t nat")
    try:
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        print(log.read_text(errors="replace")[-4000:])
    text = log.read_text(errors="replace")
    assert rc == 0 and "synced 1 Service ports" in text
    dnat = [line for line in text.splitlines() if "10.244.1.5:8080" in line]
    assert dnat, "no DNAT to the endpoint"
    assert any("192.0.2.10/32" in line for line in text.splitlines()), "no rule for the pool's first address"


def test_certgen_jobs_run_as_their_pods_would(scratch: Path) -> None:
    """Both Jobs as uid 10101 with no capability and no writable path at all (they mount
    nothing): the Secret is created and its CA lands in the webhook configuration."""
    objs = kustomize(DEPLOY / "overlays" / "nodeport")
    jobs = {expanded_args(w, c)[1]: (w, c) for w, c in containers(objs) if w["kind"] == "Job"}
    workload = jobs["create"][0]
    api = start_apiserver(scratch, rules=rules_for(objs, pod_spec(workload)["serviceAccountName"]))
    vwc = one(objs, "ValidatingWebhookConfiguration", "ingressctl-admission")
    api.apply(vwc)
    kubeconfig = write_kubeconfig(scratch / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    try:
        for verb in ("create", "patch"):
            w, c = jobs[verb]
            assert not c.get("volumeMounts")
            env = {**env_values(w, c), "PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}
            log = scratch / f"{verb}.log"
            proc = launch(w, c, [*expanded_args(w, c), f"--kubeconfig={kubeconfig}"], env, [], log)
            assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")
        ca = api.get("Secret", "ingressctl", "ingressctl-admission")["data"]["ca.crt"]
        hooks = api.get("ValidatingWebhookConfiguration", "", vwc["metadata"]["name"])["webhooks"]
        assert [h["clientConfig"]["caBundle"] for h in hooks] == [ca, ca]
        assert [h["failurePolicy"] for h in hooks] == ["Fail", "Ignore"]  # routes of other controllers pass
    finally:
        api.stop()
    assert not api.denied
