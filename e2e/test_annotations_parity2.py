"""e2e: annotations migrants use (issue 14 §7), with real nginx and traffic:
canary-by-header-pattern, satisfy any/all, use-port-in-redirects, and the per-host
ssl-ciphers / ssl-prefer-server-ciphers.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from collections.abc import Iterator

import pytest

from .annotation_kit import ingress, make_cert, request_from, secret, service, started_controller, tls_secret
from .harness import Backends, LocalController

ROOT = "/"


def _manifests(b: Backends) -> dict[str, str]:
    a, beta = [("/", "Prefix", "a")], [("/", "Prefix", "beta")]
    guarded = {"allowlist-source-range": "127.0.0.2/32", "auth-type": "basic", "auth-secret": "users"}
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    return {
        "svc-a.yaml": service("a", [b.start("a")]),
        "svc-beta.yaml": service("beta", [b.start("beta")]),
        "users.yaml": secret("users", {"auth": f"alice:{sha}\n".encode()}),
        "main.yaml": ingress("main", "canary.test", a),
        "canary.yaml": ingress("canary", "canary.test", beta, {"canary": "true", "canary-by-header": "X-Region",
                                                               "canary-by-header-pattern": "^eu-[a-z]+"},
                               created="2026-01-02T00:00:00Z"),
        "any.yaml": ingress("any", "any.test", a, {**guarded, "satisfy": "any"}),
        "all.yaml": ingress("all", "all.test", a, guarded),
        "port.yaml": ingress("port", "port.test", a, {"app-root": "/app", "use-port-in-redirects": "true"}),
        "noport.yaml": ingress("noport", "noport.test", a, {"app-root": "/app"}),
        "cert.yaml": tls_secret("tls", make_cert("ciphers.test", dns="ciphers.test")),
        "cert2.yaml": tls_secret("tls2", make_cert("plain.test", dns="plain.test")),
        "ciphers.yaml": ingress("ciphers", "ciphers.test", a, {"ssl-ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384",
                                                               "ssl-prefer-server-ciphers": "true"},
                                tls_secret="tls"),
        "plain.yaml": ingress("plain", "plain.test", a, tls_secret="tls2"),
    }


@pytest.fixture(scope="module")
def ctl() -> Iterator[LocalController]:
    b = Backends()
    try:
        yield from started_controller(_manifests(b), lambda c: c.get("canary.test").backend == "a")
    finally:
        b.stop()


@pytest.mark.parametrize(("region", "backend"), [
    ("eu-west", "beta"), ("eu-central", "beta"), ("us-east", "a"), ("xeu-west", "a"),
    ("EU-WEST", "a"),  # case-sensitive, as ingress-nginx's ngx.re.match
    ("always", "a"),  # with a pattern, 'always' is just a value that does not match
])
def test_canary_by_header_pattern(ctl: LocalController, region: str, backend: str) -> None:
    assert ctl.get("canary.test", headers={"X-Region": region}).backend == backend
    assert ctl.get("canary.test").backend == "a"


def _basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}


def test_satisfy_any_lets_either_the_address_or_the_password_in(ctl: LocalController) -> None:
    assert request_from("127.0.0.2", ctl.http_port, "any.test").status == 200
    assert ctl.get("any.test").status == 401
    assert ctl.get("any.test", headers=_basic()).status == 200


def test_satisfy_all_needs_both(ctl: LocalController) -> None:
    assert request_from("127.0.0.2", ctl.http_port, "all.test").status == 401
    assert ctl.get("all.test", headers=_basic()).status == 403


def test_use_port_in_redirects_names_the_listen_port(ctl: LocalController) -> None:
    r = ctl.get("port.test")
    assert r.status == 302 and r.headers["location"] == f"http://port.test:{ctl.http_port}/app", r.headers
    r = ctl.get("noport.test")
    assert r.status == 302 and r.headers["location"] == "http://noport.test/app", r.headers


def _negotiated(ctl: LocalController, host: str, ciphers: str) -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", ctl.https_port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        cipher = tls.cipher()
        assert cipher is not None
        return cipher[0]


def test_ssl_ciphers_apply_to_their_host_only(ctl: LocalController) -> None:
    both = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
    assert _negotiated(ctl, "ciphers.test", both) == "ECDHE-ECDSA-AES256-GCM-SHA384"
    with pytest.raises(ssl.SSLError):
        _negotiated(ctl, "ciphers.test", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert _negotiated(ctl, "plain.test", "ECDHE-ECDSA-AES128-GCM-SHA256") == "ECDHE-ECDSA-AES128-GCM-SHA256"
