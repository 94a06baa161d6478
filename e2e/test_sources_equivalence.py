"""The same YAML through both sources -- the manifest directory and the Kubernetes API (the
server double, through the real client, by list and by watch) -- renders a byte-identical
nginx.conf. Everything downstream of the Store cannot tell the two apart.
"""

from __future__ import annotations

import base64
import datetime
import textwrap
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.ingress.classes import ClassFilter
from ingressctl.kube.client import connect
from ingressctl.sources.files import ManifestDirectory
from ingressctl.sources.kube import KubeSource, default_specs
from ingressctl.store import Store

from .cluster import TOKEN, objects, start_apiserver, write_kubeconfig
from .harness import wait_until


def _tls_secret() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.example.com")]), critical=False)
            .sign(key, hashes.SHA256()))
    crt = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Secret
        metadata: {{name: secure-tls, namespace: shop}}
        type: kubernetes.io/tls
        data: {{tls.crt: {crt}, tls.key: {base64.b64encode(pem).decode()}}}
        """)


MANIFESTS = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: ingressctl.io/ingress-controller}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ingressctl, namespace: ingress}
data: {proxy-body-size: 8m, proxy-read-timeout: "30", hsts: "false"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
- addresses: [10.0.0.2]
  conditions: {ready: false, serving: true, terminating: true}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  ports: [{name: grpc, port: 9000}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 2m
spec:
  ingressClassName: nginx
  tls: [{hosts: [secure.example.com], secretName: secure-tls}]
  rules:
  - host: secure.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {number: 9000}}}}
  - host: "*.shop.example.com"
    http:
      paths:
      - {path: /static/, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: broken, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
  - host: broken.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: missing, port: {number: 80}}}}
"""


def _render(store: Store, state: Path) -> str:
    opts = ControllerOptions(state_dir=state, http_port=8080, https_port=8443, listen=("127.0.0.1:",),
                             classes=ClassFilter(), configmap="ingress/ingressctl", resolver=("127.0.0.1",))
    return Controller(store, opts).render_snapshot(store.snapshot()).text


def test_files_and_api_render_identical_nginx_conf(tmp_path: Path) -> None:
    text = MANIFESTS + "---\n" + _tls_secret()
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "all.yaml").write_text(text)
    files_store = Store()
    assert ManifestDirectory(tmp_path / "manifests", files_store).load() == []
    from_files = _render(files_store, tmp_path / "state")
    assert "secure.example.com" in from_files and "10.0.0.1:8080" in from_files

    api = start_apiserver(tmp_path)
    try:
        client = connect(str(write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)))  # type: ignore[attr-defined]
        specs = default_specs(configmap="ingress/ingressctl")
        by_watch = Store()
        watcher = KubeSource(client, by_watch, specs, watch_seconds=5)
        watcher.start(watcher.initial_sync())  # empty at first: everything arrives as watch events
        api.apply(*objects(text))
        by_list = Store()
        KubeSource(client, by_list, specs).initial_sync()
        assert _render(by_list, tmp_path / "state") == from_files
        wait_until(lambda: len(by_watch.snapshot().ingresses) == 2 and by_watch.snapshot().secrets != {}, 5,
                   "watch delivered every object")
        wait_until(lambda: _render(by_watch, tmp_path / "state") == from_files, 5, "watch-built config matches")
        watcher.stop()
    finally:
        api.stop()
