"""e2e: certificates chosen by SNI in Lua (issue 18 §1), against real nginx.

Only the default server of each HTTPS port builds an SSL context with the certificate table
callback; every other server without TLS settings of its own has none and is served the
certificate the callback picks. These requests prove the pick equals what nginx's own
server selection would give, that servers with handshake settings (ssl-ciphers) keep their
own context, and that a rotated or removed certificate is never served stale.
"""

from __future__ import annotations

import hashlib
import socket
import ssl

import pytest

from tests.factory import tls_secret

from .annotation_kit import ingress
from .harness import INGRESS_CLASS, Backends, LocalController, manifests_for_backends
from .test_gateway_local import _secret_yaml

DEFAULT_CN = "ingressctl default certificate"


def peer(port: int, sni: str | None) -> tuple[str, str]:
    """(common name, SHA-256 of the DER) of the certificate nginx sends for `sni`."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value), hashlib.sha256(der).hexdigest()


def cn(port: int, sni: str | None) -> str:
    return peer(port, sni)[0]


@pytest.fixture(scope="module")
def ctl(tmp_path_factory):
    backends = Backends()
    c = LocalController(tmp_path_factory.mktemp("tls-certs"))
    c.write("00-class.yaml", INGRESS_CLASS)
    c.write("svc.yaml", manifests_for_backends("default", "app", [backends.start("app")]))
    for name, host in (("exact", "exact.test"), ("wild", "*.w.test"), ("main", "main.test"),
                       ("ciph", "ciph.test")):
        c.write(f"secret-{name}.yaml", _secret_yaml(tls_secret(name, host)))
    app = [("/", "Prefix", "app")]
    c.write("exact.yaml", ingress("exact", "exact.test", app, tls_secret="exact"))
    c.write("wild.yaml", ingress("wild", "*.w.test", app, tls_secret="wild"))
    c.write("plain-w.yaml", ingress("plain-w", "plain.w.test", app))
    c.write("main.yaml", ingress("main", "main.test", app, {"server-alias": "alias.test"}, tls_secret="main"))
    c.write("ciph.yaml", ingress("ciph", "ciph.test", app, {"ssl-ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"},
                                 tls_secret="ciph"))
    c.write("nocert.yaml", ingress("nocert", "nocert.test", app))
    c.start()
    c.wait_for(lambda: cn(c.https_port, "ciph.test") == "ciph.test" and cn(c.https_port, "exact.test") == "exact.test",
               timeout=20, what="TLS Ingresses served")
    yield c
    c.stop()
    backends.stop()


@pytest.mark.parametrize(("sni", "expected"), [
    ("exact.test", "exact.test"),
    ("a.w.test", "*.w.test"),            # one-label wildcard
    ("a.b.w.test", DEFAULT_CN),          # an Ingress wildcard covers one label only
    ("plain.w.test", "*.w.test"),        # no TLS of its own: the wildcard's, as ingress-nginx
    ("main.test", "main.test"),
    ("alias.test", "main.test"),         # server-alias: the server's certificate
    ("ciph.test", "ciph.test"),          # ssl-ciphers: an SSL context of its own
    ("nocert.test", DEFAULT_CN),
    ("unknown.test", DEFAULT_CN),
    (None, DEFAULT_CN),                  # no SNI
])
def test_certificate_by_sni(ctl: LocalController, sni: str | None, expected: str) -> None:
    assert cn(ctl.https_port, sni) == expected


def test_requests_over_lua_served_certificates_reach_their_server(ctl: LocalController) -> None:
    for host in ("exact.test", "a.w.test", "alias.test", "ciph.test"):
        assert ctl.get(host, tls=True).status == 200, host


def test_rotation_needs_no_reload_and_removal_is_never_served_stale(ctl: LocalController) -> None:
    before, reloads = peer(ctl.https_port, "exact.test")[1], ctl.reloads()
    for host in ("exact.test", "a.w.test"):  # exact and wildcard entries, rotated together
        assert ctl.get(host, tls=True).status == 200
    ctl.write("secret-exact.yaml", _secret_yaml(tls_secret("exact", "exact.test")) + "---\n"
              + _secret_yaml(tls_secret("wild", "*.w.test")))
    ctl.remove("secret-wild.yaml")
    ctl.wait_for(lambda: peer(ctl.https_port, "exact.test")[1] != before, timeout=10, what="rotated certificate")
    assert cn(ctl.https_port, "a.w.test") == "*.w.test"
    # workers that cached the old certificate parse the new one (the file name changed)
    assert len({peer(ctl.https_port, "exact.test")[1] for _ in range(8)}) == 1
    # a change that does reload, once live, proves how many reloads the rotation took (syncs
    # run one after another, so a reload for the rotation would have been counted by then)
    ctl.write("marker.yaml", ingress("marker", "marker.test", [("/", "Prefix", "app")]))
    ctl.wait_for(lambda: ctl.live_config_has("marker.test"), timeout=10, what="marker live")
    assert ctl.reloads() == reloads + 1, "a certificate served by Lua is rotated by a push, not a reload"
    assert "rotated without a build or reload" in ctl.log(), "the certificate fast path took it"
    ctl.write("exact.yaml", ingress("exact", "exact.test", [("/", "Prefix", "app")]))  # TLS section removed
    ctl.wait_for(lambda: cn(ctl.https_port, "exact.test") == DEFAULT_CN, timeout=10, what="certificate removed")
    assert ctl.get("exact.test", tls=True).status == 200


def test_no_server_but_the_defaults_builds_an_ssl_context(ctl: LocalController) -> None:
    conf = (ctl.state_dir / "nginx" / "nginx.conf").read_text()
    assert conf.count("ssl_client_hello_by_lua_block") == 1
    # the default server's certificate and ciph.test's own; none at http level
    assert conf.count("ssl_certificate ") == 2
