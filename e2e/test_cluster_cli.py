"""What a user sees when cluster mode cannot start (one line, exit 1), the admission webhook
served by `ingressctl controller --webhook-port`, and the controller ConfigMap in local mode
(`ingressctl run --configmap`) with its unknown keys reported.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from .cluster import (
    CLASS,
    TOKEN,
    ClusterController,
    endpoint_slice,
    ingress,
    make_tls,
    service,
    start_apiserver,
    write_kubeconfig,
)
from .harness import (
    INGRESSCTL,
    ROOT,
    Backends,
    LocalController,
    free_port,
    manifests_for_backends,
    wait_until,
)


def _controller(kubeconfig: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INGRESSCTL, "controller", "--kubeconfig", str(kubeconfig), "--state-dir", "/nonexistent",
                           *extra], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case, expected", [
    ("unreachable", "cannot reach the Kubernetes API at https://127.0.0.1:"),
    ("bad-token", "refused our credentials (401 Unauthorized)"),
    ("wrong-ca", "TLS with the Kubernetes API at https://127.0.0.1:"),
    ("no-file", "kubeconfig"),
])
def test_startup_failures_are_one_line(tmp_path: Path, case: str, expected: str) -> None:
    api = start_apiserver(tmp_path)
    try:
        ca = api.ca_path  # type: ignore[attr-defined]
        token = "wrong" if case == "bad-token" else TOKEN
        if case == "wrong-ca":
            ca = make_tls(tmp_path / "other-ca")[0]
        url = f"https://127.0.0.1:{free_port()}" if case == "unreachable" else api.url
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, token, ca)
        if case == "no-file":
            kubeconfig = tmp_path / "missing"
        out = _controller(kubeconfig)
    finally:
        api.stop()
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ingressctl controller: ") and expected in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_webhook_flags_need_files(tmp_path: Path) -> None:
    out = _controller(tmp_path / "kc", "--webhook-port", "9443")
    assert out.returncode == 1 and "--webhook-port needs --webhook-cert" in out.stderr


def test_controller_serves_the_admission_webhook(tmp_path: Path, backends: Backends) -> None:
    api = start_apiserver(tmp_path)
    _, cert, key = make_tls(tmp_path / "webhook-tls")
    port = free_port()
    a = backends.start("a")
    api.apply(CLASS, service("web"), endpoint_slice("web", [a]), ingress("app", "app.example.com", "web"))
    ctl = ClusterController(tmp_path, api=api, name="hook", extra_args=[
        "--webhook-port", str(port), "--webhook-cert", str(cert), "--webhook-key", str(key)])
    try:
        ctl.start()
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u1", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "operation": "CREATE", "namespace": "default", "name": "dup",
            "object": ingress("dup", "app.example.com", "web")}}
        answer = _post_review(port, review)
        assert answer["response"]["uid"] == "u1"
        assert answer["response"]["allowed"] is False  # same host and path as the existing Ingress
        # the verdict is in the controller's metrics (ingress-nginx's admission gauge and our counter)
        assert 'ingressctl_admission_verdicts_total{allowed="false"} 1.0' in ctl.status("/metrics")[1]
        assert ctl.metric("nginx_ingress_controller_admission_roundtrip_duration") > 0
    finally:
        ctl.stop()
        api.stop()


def _post_review(port: int, review: dict) -> dict:  # type: ignore[type-arg]
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    body = json.dumps(review).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"POST /networking/v1/ingresses HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: ingressctl, namespace: ingress}}
data: {{proxy-body-size: "{size}", not-a-setting: "1"}}
"""


def test_configmap_in_local_mode(tmp_path: Path, backends: Backends) -> None:
    a = backends.start("a")
    ctl = LocalController(tmp_path, extra_args=["--configmap", "ingress/ingressctl"])
    ctl.write("00-class.yaml", CLASS_YAML)
    ctl.write("10-app.yaml", manifests_for_backends("default", "web", [a]) + INGRESS_YAML)
    ctl.write("20-config.yaml", CONFIGMAP.format(size="100"))
    ctl.start()
    try:
        wait_until(lambda: ctl.get("app.example.com").backend == "a", 5, "served")
        assert ctl.get("app.example.com", method="POST", body=b"x" * 500).status == 413
        assert "not-a-setting" in ctl.log_path.read_text(errors="replace")  # unknown keys are reported
        ctl.write("20-config.yaml", CONFIGMAP.format(size="1m"))
        wait_until(lambda: ctl.get("app.example.com", method="POST", body=b"x" * 500).backend == "a", 5,
                   "edited ConfigMap applied")
    finally:
        ctl.stop()


CLASS_YAML = json.dumps(CLASS)
INGRESS_YAML = "---\n" + json.dumps(ingress("app", "app.example.com", "web")) + "\n"
