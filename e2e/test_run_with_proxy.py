"""`ingressctl run --proxy --lb-pools F`: one machine, no netfilter, the ingress controller
itself exposed as a LoadBalancer Service on an address from the pool (in 127.0.0.0/8)."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import INGRESS_CLASS, Backends, LocalController, manifests_for_backends, wait_until

NET = os.getpid() % 250
LB_IP = f"127.100.{NET}.10"


@pytest.fixture
def echo() -> Iterator[Backends]:
    b = Backends()
    yield b
    b.stop()


def get(url: str, host: str) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host})
    with urllib.request.urlopen(req, timeout=3) as r:
        return r.status, str(r.headers.get("X-Backend"))


def test_run_exposes_a_loadbalancer_service_on_a_pool_address(tmp_path: Path, echo: Backends) -> None:
    backend_port = echo.start("app-1")
    (tmp_path / "pools.yaml").write_text(f"pools: [{{name: local, addresses: [{LB_IP}-127.100.{NET}.20]}}]\n")
    ctl = LocalController(tmp_path, extra_args=[
        "--proxy", "--lb-pools", str(tmp_path / "pools.yaml"), "--service-cidr", f"127.101.{NET}.0/24"])
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("10-app.yaml", manifests_for_backends("default", "app", [backend_port]) + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: app.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]}
""")
    ctl.write("20-edge.yaml", f"""
apiVersion: v1
kind: Service
metadata: {{name: edge, namespace: ingress}}
spec:
  type: LoadBalancer
  ports: [{{name: http, port: 8080, targetPort: {ctl.http_port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: edge-1, namespace: ingress, labels: {{kubernetes.io/service-name: edge}}}}
addressType: IPv4
ports: [{{name: http, port: {ctl.http_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
""")
    ctl.start()
    try:
        def served() -> bool:
            try:
                return get(f"http://{LB_IP}:8080/", "app.example") == (200, "app-1")
            except OSError:
                return False
        wait_until(served, 15, "the LoadBalancer address to route through nginx")
        ctl.remove("20-edge.yaml")  # the Service goes: its address is released and unbound
        wait_until(lambda: not served(), 15, "the LoadBalancer address to go away")
    finally:
        ctl.stop()
