"""Small builders for Kubernetes objects in tests: plain dicts in, typed objects out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ingressctl.ingress.build import BuildOptions, BuildResult, build
from ingressctl.objects import KubeObject, parse_object
from ingressctl.store import Snapshot

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def path(p: str, svc: str = "web", port: int | str = 80, ptype: str = "Prefix") -> dict[str, Any]:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"path": p, "pathType": ptype, "backend": {"service": {"name": svc, "port": ref}}}


def ingress(name: str, rules: list[tuple[str, list[dict[str, Any]]]] | None = None, ns: str = "default",
            created: str = "2026-01-01T00:00:00Z", cls: str | None = "nginx",
            annotations: dict[str, str] | None = None, tls: list[dict[str, Any]] | None = None,
            default_backend: tuple[str, int] | None = None) -> KubeObject:
    spec: dict[str, Any] = {"rules": [{"host": h, "http": {"paths": ps}} if h else {"http": {"paths": ps}}
                                      for h, ps in (rules or [])]}
    if cls is not None:
        spec["ingressClassName"] = cls
    if tls:
        spec["tls"] = tls
    if default_backend:
        spec["defaultBackend"] = {"service": {"name": default_backend[0], "port": {"number": default_backend[1]}}}
    return parse_object({"kind": "Ingress", "metadata": {"name": name, "namespace": ns, "creationTimestamp": created,
                                                         "annotations": annotations or {}}, "spec": spec})


def ingress_class(name: str = "nginx", controller: str = "ingressctl.io/ingress-controller",
                  default: bool = False) -> KubeObject:
    ann = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return parse_object({"kind": "IngressClass", "metadata": {"name": name, "annotations": ann},
                         "spec": {"controller": controller}})


def service(name: str = "web", ports: list[tuple[str, int]] | None = None, ns: str = "default",
            **spec: Any) -> KubeObject:
    plist = [{"name": n, "port": p} for n, p in (ports or [("http", 80)])]
    return parse_object({"kind": "Service", "metadata": {"name": name, "namespace": ns},
                         "spec": {"ports": plist, "clusterIP": "10.96.0.10", **spec}})


def endpoint_slice(service_name: str = "web", addresses: list[str] | None = None, port: int = 8080,
                   port_name: str = "http", ns: str = "default", name: str | None = None,
                   conditions: dict[str, bool] | None = None) -> KubeObject:
    eps = [{"addresses": [a], **({"conditions": conditions} if conditions else {})}
           for a in (addresses or ["10.0.0.1"])]
    return parse_object({
        "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name or f"{service_name}-{port}", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}], "endpoints": eps})


def tls_secret(name: str, host: str, ns: str = "default", not_after: dt.datetime | None = None,
               mismatched_key: bool = False) -> KubeObject:
    import base64

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=30))
            .not_valid_after(not_after or NOW + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    if mismatched_key:
        key = ec.generate_private_key(ec.SECP256R1())
    crt = cert.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return parse_object({"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name, "namespace": ns},
                         "data": {"tls.crt": base64.b64encode(crt).decode(),
                                  "tls.key": base64.b64encode(pem).decode()}})


def run_build(*objects: KubeObject, **options: Any) -> BuildResult:
    return build(Snapshot.of(objects), BuildOptions(now=NOW, **options))


def routes(result: BuildResult, host: str) -> list[tuple[str, str, str, int]]:
    """(modifier, path, upstream, status) of every location of one server."""
    server = result.model.server(host)
    assert server is not None, f"no server for {host!r}"
    return [(loc.modifier, loc.path, loc.upstream, loc.status) for loc in server.locations]


def reasons(result: BuildResult) -> list[str]:
    return [p.reason for p in result.problems]
