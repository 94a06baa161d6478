"""`kubectl ingressctl ...`: the plugin entry point found by the real kubectl, the object
commands against the API server double (list only), and backends/conf from a running
controller through a port-forward (a stand-in kubectl forwards to a local `ingressctl run`)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .annotation_kit import started_controller
from .cluster import CLASS, TOKEN, endpoint_slice, ingress, service, start_apiserver, write_kubeconfig
from .harness import ROOT, Backends, LocalController, manifests_for_backends, request
from .test_explain_kube import READ_ONLY

PLUGIN = Path(sys.executable).parent / "kubectl-ingressctl"
INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
"""


def plugin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PLUGIN), *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_kubectl_finds_the_plugin() -> None:
    assert PLUGIN.exists(), "kubectl-ingressctl is not installed: run scripts/setup.sh"
    env = {**os.environ, "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["kubectl", "ingressctl", "explain", "--help"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0 and "usage: ingressctl explain" in out.stdout, out.stderr


def test_object_commands_read_the_cluster_with_list_only(tmp_path: Path) -> None:
    api = start_apiserver(tmp_path, rules=READ_ONLY)
    try:
        api.apply(CLASS, service("web"), endpoint_slice("web", [8080]), ingress("web", "web.example.com", "web"),
                  ingress("bad", "bad.example.com", "web",
                          annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "huge"}))
        kc = str(write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path))  # type: ignore[attr-defined]
        env = {"KUBECONFIG": kc}  # the current context, as kubectl would pass it
        validate, render = plugin("validate", env=env), plugin("render", env=env)
        explain, certs = plugin("explain", "http://web.example.com/", "-o", "json", env=env), plugin("certs", env=env)
    finally:
        api.stop()
    assert validate.returncode == 1 and "error: Ingress default/bad: InvalidAnnotation" in validate.stdout
    assert "1 Ingress(es) valid, 1 refused" in validate.stdout
    assert render.returncode == 0 and "server_name web.example.com;" in render.stdout
    assert json.loads(explain.stdout)["backend"] == {"service": "default/web", "port": 80}
    assert certs.returncode == 0, certs.stderr
    assert not api.denied and {verb for verb, _, _ in api.used()} == {"list"}


FAKE_KUBECTL = """#!/bin/sh
# A stand-in for kubectl: lists one ready pod, and "forwards" to the local controller's status port.
for a in "$@"; do
  case "$a" in
    port-forward) echo "Forwarding from 127.0.0.1:$FAKE_STATUS_PORT -> 10254"; exec sleep 60;;
    get) echo '{"items": [{"metadata": {"name": "ingressctl-controller-abc"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]}'; exit 0;;
  esac
done
exit 1
"""


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LocalController, int]]:
    backends = Backends()
    port = backends.start("shop/web")
    try:
        yield from ((c, port) for c in started_controller(
            {"web.yaml": manifests_for_backends("shop", "web", [port]) + "---\n" + INGRESS},
            lambda c: request(c.http_port, "web.example.com").backend == "shop/web"))
    finally:
        backends.stop()


def test_backends_and_conf_come_from_the_running_controller(running: tuple[LocalController, int],
                                                            tmp_path: Path) -> None:
    ctl, port = running
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "FAKE_STATUS_PORT": str(ctl.status_port)}
    backends, conf = plugin("backends", env=env), plugin("conf", env=env)
    assert backends.returncode == 0, backends.stderr
    assert "shop-web-80\tshop/web:80\t" + f"127.0.0.1:{port}" in backends.stdout.splitlines()
    assert conf.returncode == 0 and conf.stdout == (ctl.state_dir / "nginx" / "nginx.conf").read_text()
