"""ingress-nginx's controller metric names, beside ingressctl's own, so existing dashboards and
alerts keep working after the switch: reload outcome, config hash, certificate expiry per
host, build info. Every series carries ingress-nginx's `controller_namespace`,
`controller_class` and `controller_pod` labels (from POD_NAMESPACE / POD_NAME, as its
Deployment sets them).

Design choice: set from the same places as ingressctl's own metrics (the controller's
outcome and the model it just made live), never computed twice.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterator
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .ingress.model import Certificate, Model, Problem

ORPHAN_REASONS = {"ServiceNotFound": "no-service", "NoEndpoints": "no-endpoint"}

P = "nginx_ingress_controller_"
CONTROLLER = ["controller_namespace", "controller_class", "controller_pod"]


class ExactCounter(Collector):
    """A counter exposed under exactly its name, as client_golang does: ingress-nginx's
    `nginx_ingress_controller_success`, not prometheus_client's `..._success_total`. Its TYPE
    line says untyped: prometheus_client names every counter family `..._total`, and a family
    named otherwise than its samples would not be read as theirs (rate() works on either)."""

    def __init__(self, name: str, doc: str, label_names: list[str], registry: CollectorRegistry) -> None:
        self.name, self.doc, self.label_names = name, doc, label_names
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        fam = Metric(self.name, self.doc, "unknown")
        for labels, value in sorted(self.values.items()):
            fam.add_sample(self.name, dict(zip(self.label_names, labels, strict=True)), value)
        yield fam


class IngressNginxMetrics:
    def __init__(self, registry: CollectorRegistry, controller_class: str, version: str) -> None:
        self.labels = (os.environ.get("POD_NAMESPACE", ""), controller_class,
                       os.environ.get("POD_NAME", socket.gethostname()))
        self._served: object = None  # (default certificate, (host, certificate) of TLS servers) last exported
        r = registry
        self.last_reload_ok = Gauge(P + "config_last_reload_successful", "whether the last reload succeeded",
                                    CONTROLLER, registry=r)
        self.last_reload_ts = Gauge(P + "config_last_reload_successful_timestamp_seconds",
                                    "when the last successful reload happened", CONTROLLER, registry=r)
        self.config_hash = Gauge(P + "config_hash", "hash of the running configuration", CONTROLLER, registry=r)
        self.success = ExactCounter(P + "success", "successful reloads", CONTROLLER, r)
        self.errors = ExactCounter(P + "errors", "failed reloads", CONTROLLER, r)
        self.ssl_expire = Gauge(P + "ssl_expire_time_seconds", "certificate expiry (Unix seconds) per host",
                                ["host", "secret_name", "namespace", "class"], registry=r)
        self.cert_info = Gauge(P + "ssl_certificate_info", "certificate served per host (always 1)",
                               ["class", "host", "namespace", "secret_name", "identifier", "issuer_common_name",
                                "issuer_organization", "public_key_algorithm", "serial_number"], registry=r)
        self.leader = Gauge(P + "leader_election_status", "1 while this replica leads", [*CONTROLLER, "name"],
                            registry=r)
        self.orphans = Gauge(P + "orphan_ingress", "Ingress paths without a Service (no-service) or endpoints "
                             "(no-endpoint)", [*CONTROLLER, "namespace", "ingress", "type"], registry=r)
        self.admission_roundtrip = Gauge(P + "admission_roundtrip_duration",
                                         "seconds the last admission review took", CONTROLLER, registry=r)
        self.admission_tested = Gauge(P + "admission_tested_duration", "seconds the last admission verdict took "
                                      "(ingressctl computes it without running nginx)", CONTROLLER, registry=r)
        self.verdicts = Counter("ingressctl_admission_verdicts", "admission verdicts", ["allowed"], registry=r)
        build = Gauge(P + "build_info", "ingressctl's version", ["release", "build", "repository"], registry=r)
        build.labels(version, "", "ingressctl").set(1)

    def reload(self, ok: bool, config_hash: int, now: float) -> None:
        self.last_reload_ok.labels(*self.labels).set(1 if ok else 0)
        if ok:
            self.success.inc(self.labels)
            self.last_reload_ts.labels(*self.labels).set(now)
            self.config_hash.labels(*self.labels).set(config_hash)
        else:
            self.errors.inc(self.labels)

    def certificates(self, model: Model) -> None:
        """ssl_expire_time_seconds for every host served with a certificate from a Secret
        (recomputed only when which host has which certificate changed)."""
        served = (model.default_certificate, tuple((s.host, s.certificate) for s in model.servers if s.tls))
        if served == self._served:
            return
        self._served = served
        by_file = {c.file_name: c for c in model.certificates}
        self.ssl_expire.clear()
        self.cert_info.clear()
        for server in model.servers:
            cert = by_file.get(server.certificate or model.default_certificate)
            if cert is None or not cert.not_after or not server.host or not server.tls:
                continue
            expiry = datetime.fromisoformat(cert.not_after).timestamp()
            self.ssl_expire.labels(server.host, cert.secret or cert.name, cert.namespace, self.labels[1]).set(expiry)
            self.cert_info.labels(self.labels[1], server.host, cert.namespace, cert.secret or cert.name,
                                  *_certificate_labels(cert)).set(1)

    def leadership(self, identity: str, leader: bool) -> None:
        self.leader.labels(*self.labels, identity).set(1 if leader else 0)

    def orphaned(self, problems: tuple[Problem, ...]) -> None:
        self.orphans.clear()
        for p in problems:
            if p.kind == "Ingress" and p.reason in ORPHAN_REASONS:
                self.orphans.labels(*self.labels, p.namespace, p.name, ORPHAN_REASONS[p.reason]).set(1)

    def admission(self, allowed: bool, seconds: float) -> None:
        self.admission_roundtrip.labels(*self.labels).set(seconds)
        self.admission_tested.labels(*self.labels).set(seconds)
        self.verdicts.labels("true" if allowed else "false").inc()


@functools.lru_cache(maxsize=20_000)  # by content: a certificate is parsed once, not at every sync
def _certificate_labels(cert: Certificate) -> tuple[str, str, str, str, str]:
    """identifier, issuer CN, issuer O, public key algorithm, serial number of the leaf."""
    leaf = x509.load_pem_x509_certificate(cert.cert_pem)

    def issuer(oid: x509.ObjectIdentifier) -> str:
        attrs = leaf.issuer.get_attributes_for_oid(oid)
        return str(attrs[0].value) if attrs else ""

    key = leaf.public_key()
    algorithm = ("RSA" if isinstance(key, rsa.RSAPublicKey) else "ECDSA" if isinstance(key, ec.EllipticCurvePublicKey)
                 else "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else type(key).__name__)
    serial = str(leaf.serial_number)
    cn = issuer(NameOID.COMMON_NAME)
    return f"{cn}-{serial}", cn, issuer(NameOID.ORGANIZATION_NAME), algorithm, serial
