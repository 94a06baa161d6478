"""Webhook certificates: a CA and a serving certificate, kept in a Secret, trusted via caBundle.

`ensure_secret` creates the Secret (type kubernetes.io/tls with `ca.crt`, `tls.crt`,
`tls.key`) or leaves it alone while it is still good: it parses, the key matches, the CA
signed the certificate, the names cover `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` (and any
extra host), and more than `RENEW_BEFORE` remains. Otherwise it is replaced in place.
`patch_webhook` writes the Secret's CA into every `caBundle` (and optionally
`failurePolicy`) of a ValidatingWebhookConfiguration, only when something differs. Both are
idempotent: running them twice changes nothing the second time.

Design choice: the API is a one-method Protocol (`request(method, path, body=...)`, raw JSON,
as `kube.client.KubeClient` provides), so tests can use any double; the CA private key is not
kept: a renewal makes a new CA, and `patch` must then be run again (as the Job does).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes.client.exceptions import ApiException

CA_LIFETIME = timedelta(days=5 * 365)
CERT_LIFETIME = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"


class Api(Protocol):
    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: Any = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ServingCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def service_names(service: str, namespace: str, extra: Sequence[str] = ()) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", *extra]


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate(names: Sequence[str], now: datetime) -> ServingCertificate:
    """A fresh CA (5 years) and a serving certificate (1 year) for `names` (DNS names or IPs)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ingressctl-webhook-ca {now:%Y%m%d%H%M%S}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + CA_LIFETIME)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + CERT_LIFETIME)
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return ServingCertificate(ca.public_bytes(pem), cert.public_bytes(pem), _pem_key(key))


def problem(data: Mapping[str, bytes], names: Sequence[str], now: datetime) -> str:
    """Why the stored certificate must be replaced; "" when it is still good."""
    missing = [k for k in ("ca.crt", "tls.crt", "tls.key") if not data.get(k)]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        ca = x509.load_pem_x509_certificate(data["ca.crt"])
        cert = x509.load_pem_x509_certificate(data["tls.crt"])
        key = serialization.load_pem_private_key(data["tls.key"], password=None)
    except (ValueError, TypeError) as e:
        return f"does not parse ({e})"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.PEM, spki) != \
            cert.public_key().public_bytes(serialization.Encoding.PEM, spki):
        return "tls.key does not match tls.crt"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        return f"tls.crt is not signed by ca.crt ({type(e).__name__})"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "tls.crt has no subjectAltName"
    have = {str(n.value) for n in san}
    lacking = [n for n in names if n not in have]
    if lacking:
        return f"tls.crt does not cover {', '.join(lacking)}"
    expiry = min(cert.not_valid_after_utc, ca.not_valid_after_utc)
    if expiry - now < RENEW_BEFORE:
        return f"expires {expiry:%Y-%m-%d} (renewed {RENEW_BEFORE.days} days before)"
    if cert.not_valid_before_utc > now:
        return "tls.crt is not valid yet"
    return ""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def secret_manifest(namespace: str, name: str, pair: ServingCertificate) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "ingressctl-certgen"}},
            "data": {"ca.crt": _b64(pair.ca_pem), "tls.crt": _b64(pair.cert_pem), "tls.key": _b64(pair.key_pem)}}


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    out = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v, validate=True)
        except ValueError:
            out[k] = b""
    return out


def _get(api: Api, path: str) -> dict[str, Any] | None:
    try:
        return api.request("GET", path)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets/{name}"


def ensure_secret(api: Api, namespace: str, name: str, names: Sequence[str],
                  now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """("kept" | "created" | "replaced: <why>", the Secret as stored)."""
    now = now or datetime.now(UTC)
    path = secret_path(namespace, name)
    existing = _get(api, path)
    if existing is not None:
        why = problem(secret_data(existing), names, now)
        if not why:
            return "kept", existing
        body = secret_manifest(namespace, name, generate(names, now))
        body["metadata"]["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion", "")
        return f"replaced: {why}", api.request("PUT", path, body=body)
    body = secret_manifest(namespace, name, generate(names, now))
    try:
        return "created", api.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)
    except ApiException as e:
        if e.status != 409:
            raise
    raced = _get(api, path)  # another certgen won the race: keep its Secret if it is good
    if raced is not None and not problem(secret_data(raced), names, now):
        return "kept", raced
    raise RuntimeError(f"Secret {namespace}/{name} was created concurrently and is not usable")


def patch_webhook(api: Api, name: str, ca_pem: bytes, failure_policy: str | None = None,
                  attempts: int = 3, keep_policy: Collection[str] = ()) -> bool:
    """Set caBundle (and failurePolicy, except on the webhooks named in `keep_policy`) on every
    webhook of the configuration; True if it changed."""
    for _ in range(attempts):
        vwc = _get(api, VWC_PATH + name)
        if vwc is None:
            raise LookupError(f"ValidatingWebhookConfiguration {name} not found")
        changed = False
        for hook in vwc.get("webhooks") or []:
            cc = hook.setdefault("clientConfig", {})
            if cc.get("caBundle") != _b64(ca_pem):
                cc["caBundle"], changed = _b64(ca_pem), True
            if failure_policy and hook.get("name") not in keep_policy and hook.get("failurePolicy") != failure_policy:
                hook["failurePolicy"], changed = failure_policy, True
        if not changed:
            return False
        try:
            api.request("PUT", VWC_PATH + name, body=vwc)
            return True
        except ApiException as e:
            if e.status != 409:  # someone else wrote it in between: read again
                raise
    raise RuntimeError(f"ValidatingWebhookConfiguration {name} kept changing; gave up after {attempts} tries")
