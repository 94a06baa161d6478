"""Property: every Ingress that admission allows renders a configuration the real `nginx -t` accepts.

Hypothesis draws Ingresses from a mix of valid values and hostile ones (the breakouts of
tests/injection_payloads.py, random text); for each one validation allows, the candidate's
configuration is rendered for a real prefix and checked by `nginx -t` (here, in the test;
never in the webhook).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingressctl.admission.validate import ValidateOptions, Validator
from ingressctl.ingress.annotations import REGISTRY
from ingressctl.ingress.build import BuildOptions
from ingressctl.nginx.render import RenderContext
from ingressctl.objects import Ingress, parse_ingress, parse_object
from ingressctl.store import Snapshot
from tests.admission_fixtures import endpoint_slice, ingress, ingress_class, service
from tests.injection_payloads import BREAKOUTS

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def tls_secret(name: str, host: str) -> dict[str, Any]:
    crt, key = self_signed(host)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"tls.crt": crt.decode(), "tls.key": key.decode()}}


HOSTS = ["a.example.com", "b.example.com", "*.apps.example.com", "x-1.example.org", "localhost"]
PATHS = ["/", "/api", "/api/", "/v1/users", "/a-b_c.d~e", "/%41", "/x:y@z", "/(.*)", "/api/v[0-9]+/.*", "/$"]
GENERIC = ["true", "false", "0", "1", "5", "60", "60s", "500ms", "5m", "1m", "8k", "0.5", "100", "HTTP", "HTTPS",
           "GRPC", "GRPCS", "/", "/$1", "https://a.example.com/", "http://auth.example.com/check", "10.0.0.0/8",
           "10.0.0.0/8,192.168.0.0/16", "cookie", "round_robin", "ewma", "X-Header", "a.example.com", "CN=client",
           "default/web", "308", "on", "*", "GET, POST"]
hostile = st.sampled_from(sorted(BREAKOUTS.values()))
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
values = st.one_of(st.sampled_from(GENERIC), st.sampled_from(GENERIC).flatmap(
    lambda g: hostile.map(lambda h: g + h)), text)
hosts = st.one_of(st.sampled_from(HOSTS), st.sampled_from(HOSTS).flatmap(lambda g: hostile.map(lambda h: g + h)),
                  text)
paths = st.one_of(st.sampled_from(PATHS), text.map(lambda t: "/" + t), hostile.map(lambda h: "/" + h))
annotations = st.dictionaries(st.sampled_from(sorted(REGISTRY)).map(lambda n: "nginx.ingress.kubernetes.io/" + n),
                              values, max_size=4)


@st.composite
def candidates(draw: Any) -> dict[str, Any]:
    host = draw(st.one_of(st.none(), hosts))
    raw = ingress("cand", host=host, path=draw(paths),
                  path_type=draw(st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"])),
                  annotations=draw(annotations), created=None)
    if draw(st.booleans()):
        raw["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] = "true"
    if host is not None and draw(st.booleans()):
        raw["spec"]["tls"] = [{"hosts": [host], "secretName": draw(st.sampled_from(["shop-tls", "missing-tls"]))}]
    return raw


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, Path]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: run scripts/setup.sh", pytrace=False)
    prefix = tmp_path_factory.mktemp("admission-nginx") / "nginx"
    for d in ("certs", "tmp", "logs"):
        (prefix / d).mkdir(parents=True)
    crt, key = self_signed("ingressctl-default")
    (prefix / "certs" / "default.pem").write_bytes(crt + key)
    objs = [ingress_class(), service(), endpoint_slice(), tls_secret("shop-tls", "a.example.com"),
            ingress("existing", host="a.example.com", path="/shop")]
    return Snapshot.of([parse_object(o) for o in objs]), prefix


def nginx_test(validator: Validator, snap: Snapshot, cand: Ingress, prefix: Path) -> subprocess.CompletedProcess[str]:
    ctx = RenderContext(prefix=str(prefix), http_port=18080, https_port=18443, listen=("127.0.0.1:",))
    model, text = validator.render(snap, cand, ctx)
    for cert in model.certificates:
        (prefix / "certs" / cert.file_name).write_bytes(cert.cert_pem + cert.key_pem)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return subprocess.run([NGINX, "-t", "-q", "-p", str(prefix), "-c", str(conf)], capture_output=True,
                          text=True, timeout=30, check=False)


def test_what_admission_allows_nginx_accepts(world: tuple[Snapshot, Path]) -> None:
    snap, prefix = world
    validator = Validator(ValidateOptions(build=BuildOptions(now=NOW)))
    outcomes = {"allowed": 0, "denied": 0}

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(candidates())
    def check(raw: dict[str, Any]) -> None:
        verdict = validator.check(snap, raw)
        outcomes["allowed" if verdict.allowed else "denied"] += 1
        if not verdict.allowed:
            assert verdict.reasons, "a denial must say why"
            return
        result = nginx_test(validator, snap, parse_ingress(raw), prefix)
        assert result.returncode == 0, f"nginx -t refused an allowed Ingress:\n{result.stderr}\n{raw}"

    check()
    assert outcomes["allowed"] >= 5, outcomes  # the property was exercised, not vacuously true
    assert outcomes["denied"] >= 5, outcomes
