"""e2e: SSL passthrough (issue 14 §4) with real nginx: with --enable-ssl-passthrough the HTTPS
port reads the SNI; a passthrough host's TLS reaches its backend untouched (the client sees the
backend's own certificate), every other host on the same port is still ended by nginx with the
client's address intact (PROXY protocol on the internal hop)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .annotation_kit import ScriptedServer, ingress, make_cert, service, started_controller, tls_secret
from .harness import Backends, LocalController

BACKEND_CERT = make_cert("pt.test", dns="pt.test")


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[LocalController, ScriptedServer]]:
    tls_backend = ScriptedServer(lambda r: (200, {"X-Backend": "passthrough"}, b"straight through"), tls=BACKEND_CERT)
    b = Backends()
    try:
        root = [("/", "Prefix", "web")]
        manifests = {
            "web.yaml": service("web", [b.start("web")]), "pt-svc.yaml": service("ptb", [tls_backend.port]),
            "pt.yaml": ingress("pt", "pt.test", [("/", "Prefix", "ptb")], {"ssl-passthrough": "true"}),
            "cert.yaml": tls_secret("term-cert", make_cert("term.test", dns="term.test")),
            "term.yaml": ingress("term", "term.test", root, tls_secret="term-cert"),
        }
        yield from ((c, tls_backend) for c in started_controller(
            manifests, lambda c: c.get("term.test", tls=True).status == 200, extra_args=["--enable-ssl-passthrough"]))
    finally:
        b.stop()
        tls_backend.stop()


def test_a_passthrough_host_reaches_its_backend_with_the_backends_certificate(
        setup: tuple[LocalController, ScriptedServer]) -> None:
    ctl, backend = setup
    r = ctl.get("pt.test", tls=True)
    assert (r.status, r.peer_cn, r.body, r.headers.get("x-backend")) == (200, "pt.test", b"straight through",
                                                                         "passthrough")
    assert "x-real-ip" not in backend.seen[-1].headers  # nginx never saw the request: nothing was added


def test_other_hosts_on_the_port_are_ended_by_nginx_with_the_client_address(
        setup: tuple[LocalController, ScriptedServer]) -> None:
    ctl, _ = setup
    r = ctl.get("term.test", "/who", tls=True)
    assert r.status == 200 and r.peer_cn == "term.test"
    seen = json.loads(r.body)
    assert seen["headers"]["x-real-ip"] == "127.0.0.1" and seen["headers"]["x-forwarded-port"] == "443", seen
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert ctl.get("unknown.test", tls=True).status == 404  # the default server, behind the front too


def test_plain_http_is_unchanged(setup: tuple[LocalController, ScriptedServer]) -> None:
    ctl, _ = setup
    assert ctl.get("term.test").status == 308  # the TLS host's redirect to HTTPS
