"""e2e: upstream annotations (protocol, retries, HTTP version, balancing), more limits, aliases,
mirror without body, custom errors through the global default backend, and snippets.

One `ingressctl run --configmap ingress/ingressctl --default-backend-service default/global-default:80`
(real nginx; the ConfigMap allows snippet annotations) serves every Ingress here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from .annotation_kit import ScriptedServer, ingress, make_cert, service, started_controller
from .harness import Backends, free_port

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: ingressctl, namespace: ingress}
data: {allow-snippet-annotations: "true", custom-http-errors: "418"}
"""


def _slow(req):
    time.sleep(0.6)
    return 200, {"X-Backend": "slowish"}, b"done"


@pytest.fixture(scope="module")
def servers():
    tls = make_cert("backend.internal", issuer=make_cert("Backend CA", ca=True), dns="backend.internal")
    made = {"tls": ScriptedServer(lambda r: (200, {"X-Backend": "tls"}, b"over tls"), tls=tls),
            "version": ScriptedServer(lambda r: (200, {"X-Backend": "version"}, r.version.encode())),
            "slowish": ScriptedServer(_slow),
            "mirror": ScriptedServer(lambda r: (200, {}, b"")),
            "codes": ScriptedServer(lambda r: (502, {"X-Backend": "codes"}, b"bad gateway from upstream")),
            "teapot": ScriptedServer(lambda r: (418, {"X-Backend": "teapot"}, b"short and stout"))}
    yield made
    for s in made.values():
        s.stop()


def _manifests(b: Backends, servers: dict[str, ScriptedServer]) -> dict[str, str]:
    a = [("/", "Prefix", "a")]
    dead = free_port()  # nothing listens there: connection refused
    return {
        "configmap.yaml": CONFIGMAP,
        "svc-a.yaml": service("a", [b.start("a")]),
        "svc-two.yaml": service("two", [b.start("t1"), b.start("t2")]),
        "svc-flaky.yaml": service("flaky", [dead, b.start("live")]),
        "svc-flaky2.yaml": service("flaky2", [dead, b.start("live2")]),
        "svc-flaky3.yaml": service("flaky3", [dead, b.start("live3")]),
        "svc-tls.yaml": service("tlsb", [servers["tls"].port]),
        "svc-version.yaml": service("version", [servers["version"].port]),
        "svc-slowish.yaml": service("slowish", [servers["slowish"].port]),
        "nextoff.yaml": ingress("nextoff", "next-off.test", [("/", "Prefix", "flaky")], {"proxy-next-upstream": "off"}),
        "nexttries.yaml": ingress("nexttries", "next-tries.test", [("/", "Prefix", "flaky3")],
                                  {"proxy-next-upstream-tries": "1"}),
        "nextdefault.yaml": ingress("nextdefault", "next-default.test", [("/", "Prefix", "flaky2")]),
        "https.yaml": ingress("https", "https-backend.test", [("/", "Prefix", "tlsb")], {"backend-protocol": "HTTPS"}),
        "plain.yaml": ingress("plain", "http-to-tls.test", [("/", "Prefix", "tlsb")]),
        "v10.yaml": ingress("v10", "v10.test", [("/", "Prefix", "version")], {"proxy-http-version": "1.0"}),
        "conn.yaml": ingress("conn", "conn.test", [("/", "Prefix", "slowish")], {"limit-connections": "1"}),
        "rpm.yaml": ingress("rpm", "rpm.test", a, {"limit-rpm": "6", "limit-burst-multiplier": "3"}),
        "alias.yaml": ingress("alias", "alias.test", a, {"server-alias": "alias-one.test, alias-two.test"}),
        "iphash.yaml": ingress("iphash", "iphash.test", [("/", "Prefix", "two")], {"load-balance": "ip_hash"}),
        "rr.yaml": ingress("rr", "rr.test", [("/", "Prefix", "two")]),
        "mirror.yaml": ingress("mirror", "mirror-nobody.test", a, {
            "mirror-target": f"http://127.0.0.1:{servers['mirror'].port}/copy", "mirror-request-body": "false"}),
        "svc-global.yaml": service("global-default", [b.start("global-default")]),
        "svc-codes.yaml": service("codes", [servers["codes"].port]),
        "svc-teapot.yaml": service("teapot", [servers["teapot"].port]),
        "teapot.yaml": ingress("teapot", "teapot.test", [("/", "Prefix", "teapot")]),
        "authsnip.yaml": ingress("authsnip", "auth-snippet.test", a, {
            "auth-url": f"http://127.0.0.1:{servers['mirror'].port}/auth-check",
            "auth-snippet": "proxy_set_header X-From-Snippet yes;"}),
        "teapot-own.yaml": ingress("teapot-own", "teapot-own.test", [("/", "Prefix", "teapot")],
                                   {"custom-http-errors": "500"}),
        "errors.yaml": ingress("errors", "errors-global.test", [("/", "Prefix", "codes")],
                               {"custom-http-errors": "502"}),
        "snippet.yaml": ingress("snippet", "snippet.test", a, {
            "configuration-snippet": 'add_header X-Snippet "on;{}" always;',
            "server-snippet": 'location = /from-server-snippet { return 200 "server snippet"; }'}),
        "badsnippet.yaml": ingress("badsnippet", "bad-snippet.test", a, {"configuration-snippet": "include /etc/passwd;"}),
    }


@pytest.fixture(scope="module")
def ctl(servers):
    b = Backends()
    try:
        yield from started_controller(_manifests(b, servers), lambda c: c.get("rr.test").status == 200,
                                      extra_args=["--configmap", "ingress/ingressctl",
                                                  "--default-backend-service", "default/global-default:80"],
                                      refused=frozenset({"default/badsnippet"}))
    finally:
        b.stop()


def test_proxy_next_upstream_off_or_one_try_shows_the_dead_endpoint(ctl):
    got = Counter(ctl.get("next-off.test").status for _ in range(12))
    assert got[502] >= 1 and got[200] >= 1, got
    got = Counter(ctl.get("next-tries.test").status for _ in range(12))
    assert got[502] >= 1 and got[200] >= 1, got  # one try only: no retry either
    # the default (error timeout, 3 tries) retries the other endpoint: no error reaches the client
    got = Counter(ctl.get("next-default.test").backend for _ in range(12))
    assert got == Counter(live2=12), got


def test_backend_protocol_https(ctl):
    for _ in range(3):  # interleaved: a kept-alive TLS connection must not serve the plain-HTTP Ingress
        r = ctl.get("https-backend.test")
        assert (r.status, r.body) == (200, b"over tls")
        assert ctl.get("http-to-tls.test").status == 502  # the same Service spoken to in plain HTTP


def test_proxy_http_version(ctl):
    assert ctl.get("v10.test").body == b"HTTP/1.0"


def test_limit_connections_503_for_concurrent_requests(ctl):
    statuses: list[int] = []

    def one() -> None:
        statuses.append(ctl.get("conn.test", timeout=5).status)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    got = Counter(statuses)
    assert sum(got.values()) == 3 and got[200] >= 1 and got[503] >= 1, got
    # alone again: allowed (the worker may free the slot a moment after the client has its answer)
    ctl.wait_for(lambda: ctl.get("conn.test").status == 200, timeout=3, what="a lone connection allowed")


def test_limit_rpm_with_burst_multiplier(ctl):
    got = Counter(ctl.get("rpm.test").status for _ in range(30))
    assert set(got) == {200, 503}, got
    assert 19 <= got[200] <= 20, got  # 6/min, burst 6*3: 1 + 18 at once (a token every 10 s)


def test_server_alias(ctl):
    for host in ("alias.test", "alias-one.test", "alias-two.test"):
        assert ctl.get(host).backend == "a", host


def test_load_balance_ip_hash_keeps_one_client_on_one_endpoint(ctl):
    assert len(Counter(ctl.get("iphash.test").backend for _ in range(12))) == 1
    assert set(Counter(ctl.get("rr.test").backend for _ in range(12))) == {"t1", "t2"}  # without it: both


def test_mirror_without_request_body(ctl, servers):
    sink = servers["mirror"]
    r = ctl.get("mirror-nobody.test", "/x", method="POST", body=b"secret-body")
    assert (r.status, r.json()["body_bytes"]) == (200, 11)  # the real upstream gets the body
    deadline = time.monotonic() + 5
    while not sink.seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sink.seen, "mirror target got nothing"
    copy = sink.seen[-1]
    assert (copy.method, copy.path, copy.body) == ("POST", "/copy", b"")


def test_snippets_allowed_by_the_configmap(ctl):
    r = ctl.get("snippet.test")
    assert (r.backend, r.headers.get("x-snippet")) == ("a", "on;{}")  # re-quoted: ';{}' stays text
    r = ctl.get("snippet.test", "/from-server-snippet")
    assert (r.status, r.body) == (200, b"server snippet")


def test_denied_snippet_refuses_only_its_ingress(ctl):
    assert ctl.get("bad-snippet.test").backend == "global-default"  # its host is unknown: the default backend
    log = ctl.log_path.read_text()
    assert "Ingress default/badsnippet: InvalidAnnotation" in log and "include" in log
    assert ctl.get("snippet.test").status == 200


def test_custom_http_errors_fall_back_to_the_global_default_backend(ctl):
    r = ctl.get("errors-global.test", "/x")
    assert r.backend == "global-default"
    assert r.json()["headers"]["x-code"] == "502" and r.json()["headers"]["x-service-name"] == "codes"


def test_the_configmaps_custom_http_errors_cover_locations_without_their_own(ctl):
    r = ctl.get("teapot.test")
    assert r.backend == "global-default", r  # answered by the default backend, told which code it replaces
    assert r.json()["headers"]["x-code"] == "418" and r.json()["headers"]["x-service-name"] == "teapot"
    own = ctl.get("teapot-own.test")  # its own annotation (500) wins: the 418 passes through
    assert (own.status, own.body) == (418, b"short and stout")


def test_auth_snippet_lands_in_the_auth_location(ctl, servers):
    assert ctl.get("auth-snippet.test").status == 200
    checks = [s for s in servers["mirror"].seen if s.path.startswith("/auth-check")]
    assert checks and checks[-1].headers["x-from-snippet"] == "yes"
