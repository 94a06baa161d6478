"""Building the kustomize overlays under deploy/ and looking inside the result.

`kubectl_binary()` picks the kubectl that scripts/setup.sh provides: the one in the
virtualenv if setup had to install it (the machine's kubectl was missing or too old to
build directory resources), else the one on PATH. A missing kubectl fails the tests; it
never skips them.

Design choice: the tests read the *built* output (`kubectl kustomize`), the very objects
`kubectl apply -k` would send, never the source files, so patches, the namespace
transformer and replacements are all part of what is checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = ("deployment-loadbalancer", "daemonset-hostnetwork", "nodeport", "bare-metal")
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubectl_binary() -> str:
    venv = Path(sys.executable).parent / "kubectl"
    if venv.is_file():
        return str(venv)
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is not installed: run scripts/setup.sh (it provides one that can run "
                    "`kubectl kustomize`)")
    return found


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR` as a list of objects; fails the test with kubectl's message."""
    r = subprocess.run([kubectl_binary(), "kustomize", str(directory)], check=False, capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed: {r.stderr.strip()}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def containers(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container and init container of every workload."""
    for o in objs:
        if o["kind"] in WORKLOADS:
            spec = pod_spec(o)
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield o, c


def env_values(workload: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """What the kubelet would put in each env var (downward API fields get sample values)."""
    samples = {"metadata.namespace": workload["metadata"].get("namespace", "default"),
               "metadata.name": workload["metadata"]["name"] + "-abcde", "spec.nodeName": "node-1"}
    out = {}
    for e in container.get("env", []):
        if "value" in e:
            out[e["name"]] = e["value"]
        else:
            out[e["name"]] = samples[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return out


def expanded_args(workload: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The container's args with $(VAR) expanded as the kubelet does; an undefined VAR fails."""
    env = env_values(workload, container)
    out = []
    for arg in container.get("args", []):
        for name in _VAR.findall(arg):
            assert name in env, f"{container['name']}: $({name}) in {arg!r} is not in the container's env"
        out.append(_VAR.sub(lambda m: env[m.group(1)], arg))
    return out


def flag(args: list[str], name: str) -> str | None:
    """The value of --name=VALUE (or --name VALUE) in args; None when absent."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A container port by number or by name (as Services and probes refer to them)."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def rules_for(objs: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    """The rules of every Role and ClusterRole bound to the ServiceAccount `account`."""
    out: list[dict[str, Any]] = []
    for b in objs:
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding") and \
                any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"]):
            out += one(objs, b["roleRef"]["kind"], b["roleRef"]["name"])["rules"]
    return out
