"""e2e: TLS towards backends (issue 14 §3) with a real TLS backend: verification on refuses a
backend signed by another CA or named otherwise (502) and passes the right one; nginx presents
the client certificate of proxy-ssl-secret (mTLS); a missing Secret answers 503 instead of
proxying unverified; proxy-ssl-verify without a Secret is refused (ingress-nginx would ignore it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .annotation_kit import ScriptedServer, ingress, make_cert, secret, service, started_controller
from .harness import LocalController

CA = make_cert("backend CA", ca=True)
OTHER_CA = make_cert("another CA", ca=True)
CLIENT_CA = make_cert("client CA", ca=True)
BACKEND = make_cert("backend.internal", issuer=CA, dns="backend.internal")
CLIENT = make_cert("nginx-client", issuer=CLIENT_CA)


@pytest.fixture(scope="module")
def backend() -> Iterator[ScriptedServer]:
    server = ScriptedServer(lambda r: (200, {"X-Backend": "tls"}, b"ok"), tls=BACKEND, client_ca=CLIENT_CA)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ctl(backend: ScriptedServer) -> Iterator[LocalController]:
    root = [("/", "Prefix", "tlsb")]
    https = {"backend-protocol": "HTTPS"}
    verify = {**https, "proxy-ssl-verify": "on", "proxy-ssl-name": "backend.internal"}
    manifests = {
        "svc.yaml": service("tlsb", [backend.port]),
        "secrets.yaml": "\n---\n".join([
            secret("right", {"ca.crt": CA.cert_pem}), secret("wrong", {"ca.crt": OTHER_CA.cert_pem}),
            secret("mtls", {"ca.crt": CA.cert_pem, "tls.crt": CLIENT.cert_pem, "tls.key": CLIENT.key_pem}),
            secret("no-ca", {"tls.crt": CLIENT.cert_pem, "tls.key": CLIENT.key_pem})]),
        "right.yaml": ingress("right", "right.test", root, {**verify, "proxy-ssl-secret": "right"}),
        "wrong-ca.yaml": ingress("wrong-ca", "wrong-ca.test", root, {**verify, "proxy-ssl-secret": "wrong"}),
        "wrong-name.yaml": ingress("wrong-name", "wrong-name.test", root, {
            **verify, "proxy-ssl-secret": "right", "proxy-ssl-name": "other.internal"}),
        "mtls.yaml": ingress("mtls", "mtls.test", root, {**verify, "proxy-ssl-secret": "mtls",
                                                         "proxy-ssl-server-name": "on"}),
        "plain.yaml": ingress("plain", "plain.test", root, https),
        "missing.yaml": ingress("missing", "missing.test", root, {**verify, "proxy-ssl-secret": "nope"}),
        "no-ca.yaml": ingress("no-ca", "no-ca.test", root, {**verify, "proxy-ssl-secret": "no-ca"}),
        "nosecret.yaml": ingress("nosecret", "nosecret.test", root, {**https, "proxy-ssl-verify": "on"}),
    }
    yield from started_controller(manifests, lambda c: c.get("plain.test").status == 200,
                                  refused=frozenset({"default/nosecret"}))


@pytest.mark.parametrize(("host", "status"), [
    ("right.test", 200), ("wrong-ca.test", 502), ("wrong-name.test", 502), ("mtls.test", 200),
    ("plain.test", 200),  # backend-protocol HTTPS alone: encrypted, not verified (nginx's default)
    ("missing.test", 503), ("no-ca.test", 503),  # verification asked for, no CA: never proxied unverified
    ("nosecret.test", 404),  # refused: not served at all
])
def test_verification_of_the_backend(ctl: LocalController, host: str, status: int) -> None:
    assert ctl.get(host).status == status


def test_the_client_certificate_is_presented_only_where_configured(ctl: LocalController,
                                                                   backend: ScriptedServer) -> None:
    backend.seen.clear()
    assert ctl.get("mtls.test").status == 200 and ctl.get("right.test").status == 200
    assert [s.client_cn for s in backend.seen] == ["nginx-client", ""]
