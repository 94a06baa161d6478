"""e2e: the edge behaves as ingress-nginx's (issue 12): redirects that name no listen port,
the real client address from trusted forwarded headers or the PROXY protocol, request ids,
HSTS over TLS only, and cert-manager's HTTP-01 path never redirected.

Two `ingressctl run` on real nginx: one with the default ConfigMap (forwarded headers not
trusted) and one with `use-forwarded-headers` trusting loopback; a third with the PROXY
protocol. Requests go to 127.0.0.1 from 127.0.0.x source addresses.
"""

from __future__ import annotations

import functools
import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from .annotation_kit import ingress, make_cert, service, started_controller, tls_secret
from .harness import Backends, LocalController, Response

TRUSTING = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: ingressctl, namespace: ingress}
data: {use-forwarded-headers: "true", proxy-real-ip-cidr: "127.0.0.0/8"}
"""
PROXY_PROTOCOL = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: ingressctl, namespace: ingress}
data: {use-proxy-protocol: "true", proxy-real-ip-cidr: "127.0.0.0/8"}
"""


def _manifests(b: Backends, extra: dict[str, str] | None = None) -> dict[str, str]:
    pair = make_cert("tls.test", dns="tls.test")
    root = [("/", "Prefix", "a")]
    return {
        "svc-a.yaml": service("a", [b.start("a")]),
        "svc-acme.yaml": service("acme", [b.start("acme")]),
        "cert.yaml": tls_secret("tls-cert", pair),
        "tls.yaml": ingress("tls", "tls.test", root, tls_secret="tls-cert"),
        "acme.yaml": ingress("acme", "tls.test", [("/.well-known/acme-challenge/token1", "Exact", "acme")],
                             created="2026-01-02T00:00:00Z"),
        "keep.yaml": ingress("keep", "keep.test", root, {"force-ssl-redirect": "true",
                                                         "preserve-trailing-slash": "true"}),
        "force.yaml": ingress("force", "force.test", root, {"force-ssl-redirect": "true"}),
        "approot.yaml": ingress("approot", "approot.test", root, {"app-root": "/app"}),
        "allow.yaml": ingress("allow", "allow.test", root, {"allowlist-source-range": "10.0.0.0/8"}),
        "open.yaml": ingress("open", "open.test", root),
        "svc-errors.yaml": service("errors", [b.start("errors")]),
        "svc-beta.yaml": service("beta", [b.start("beta")]),
        "cookie-main.yaml": ingress("cookie-main", "cookie.test", root),
        "cookie-canary.yaml": ingress("cookie-canary", "cookie.test", [("/", "Prefix", "beta")],
                                      {"canary": "true", "canary-by-cookie": "Canary-By.Cookie"},
                                      created="2026-01-03T00:00:00Z"),
        "rewrite.yaml": ingress("rewrite", "rewrite.test", [("/something", "Prefix", "a")], {"rewrite-target": "/"}),
        "exact.yaml": ingress("exact", "exact.test", [("/foo/", "Exact", "a")]),
        "fallback.yaml": ingress("fallback", "fallback.test", [("/", "Prefix", "missing")],
                                 {"default-backend": "errors"}),
        **(extra or {}),
    }


def _ready(ctl: LocalController) -> bool:
    return ctl.get("open.test").backend == "a"


@pytest.fixture(scope="module")
def plain() -> Iterator[LocalController]:
    b = Backends()
    try:
        yield from started_controller(_manifests(b), _ready)
    finally:
        b.stop()


@pytest.fixture(scope="module")
def trusting() -> Iterator[LocalController]:
    b = Backends()
    try:
        yield from started_controller(_manifests(b, {"configmap.yaml": TRUSTING}), _ready,
                                      extra_args=["--configmap", "ingress/ingressctl"])
    finally:
        b.stop()


def echo(r: Response) -> dict[str, Any]:
    assert r.status == 200, r
    return dict(json.loads(r.body))


# -- redirects ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "path", "location"), [
    ("tls.test", "/p?q=1", "https://tls.test/p?q=1"),
    ("tls.test", "/dir/", "https://tls.test/dir"),  # one trailing slash dropped, as ingress-nginx
    ("keep.test", "/dir/", "https://keep.test/dir/"),  # preserve-trailing-slash
    ("force.test", "/x", "https://force.test/x"),
])
def test_https_redirects_name_no_listen_port(plain: LocalController, host: str, path: str, location: str) -> None:
    r = plain.get(host, path, headers={"Host": f"{host}:{plain.http_port}"})
    assert (r.status, r.headers.get("location")) == (308, location)


def test_app_root_names_no_listen_port(plain: LocalController) -> None:
    r = plain.get("approot.test", "/")
    assert (r.status, r.headers["location"]) == (302, "http://approot.test/app")


def test_the_redirect_host_is_the_forwarded_host_when_trusted(trusting: LocalController) -> None:
    r = trusting.get("tls.test", "/p", headers={"X-Forwarded-Host": "public.example.com:8443"})
    assert (r.status, r.headers["location"]) == (308, "https://public.example.com/p")
    # TLS ended at the balancer in front: no redirect loop
    assert echo(trusting.get("tls.test", "/p", headers={"X-Forwarded-Proto": "https"}))["backend"] == "a"


def test_the_acme_challenge_path_is_never_redirected(plain: LocalController) -> None:
    assert echo(plain.get("tls.test", "/.well-known/acme-challenge/token1"))["backend"] == "acme"


def test_hsts_only_over_tls(plain: LocalController) -> None:
    assert "strict-transport-security" not in plain.get("tls.test", "/").headers
    r = plain.get("tls.test", "/", tls=True)
    assert r.status == 200 and r.headers["strict-transport-security"].startswith("max-age=")


# -- routing details ----------------------------------------------------------------------------

def test_a_canary_cookie_name_with_dashes_and_dots_is_read(plain: LocalController) -> None:
    def backend(cookie: str) -> str:
        return str(echo(plain.get("cookie.test", "/", headers={"Cookie": cookie}))["backend"])

    assert backend("x=1; Canary-By.Cookie=always; y=2") == "beta"
    assert backend("Canary-By.Cookie=never") == "a"
    assert backend("Canary-By.Cookie=alwaysnot; Canary=always") == "a"


def test_rewrite_target_paths_match_caselessly(plain: LocalController) -> None:
    seen = echo(plain.get("rewrite.test", "/SomeThing/deep"))
    assert seen["backend"] == "a" and seen["path"] == "/"
    assert plain.get("rewrite.test", "/somethingelse").status == 404  # whole path elements still


def test_an_exact_path_with_a_trailing_slash_does_not_serve_the_bare_path(plain: LocalController) -> None:
    assert echo(plain.get("exact.test", "/foo/"))["backend"] == "a"
    assert plain.get("exact.test", "/foo").status == 404  # not nginx's 301 to /foo/


# -- the client's address -------------------------------------------------------------------------

def test_forwarded_headers_are_replaced_when_not_trusted(plain: LocalController) -> None:
    seen = echo(plain.get("open.test", "/", headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https",
                                                     "X-Forwarded-Host": "evil.example", "Proxy": "http://x:1"}))
    h = seen["headers"]
    assert h["x-forwarded-for"] == "127.0.0.1" and h["x-real-ip"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http" and h["x-scheme"] == "http"
    assert h["x-forwarded-host"] == "open.test" and h["x-forwarded-port"] == str(plain.http_port)
    assert h["x-original-forwarded-for"] == "6.6.6.6"
    assert "proxy" not in h  # httpoxy
    assert plain.get("allow.test", "/", headers={"X-Forwarded-For": "10.1.2.3"}).status == 403


def test_the_real_client_address_comes_from_trusted_forwarded_headers(trusting: LocalController) -> None:
    r = trusting.get("allow.test", "/", headers={"X-Forwarded-For": "203.0.113.7, 10.1.2.3"})
    assert echo(r)["headers"]["x-real-ip"] == "10.1.2.3"  # the allowlist saw 10.1.2.3: 200
    assert trusting.get("allow.test", "/", headers={"X-Forwarded-For": "203.0.113.7"}).status == 403
    h = echo(trusting.get("open.test", "/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}))
    assert (h["headers"]["x-forwarded-proto"], h["headers"]["x-forwarded-port"]) == ("https", "443")


# -- request ids ----------------------------------------------------------------------------------

def test_the_clients_request_id_is_passed_on_and_generated_when_absent(plain: LocalController) -> None:
    assert echo(plain.get("open.test", "/", headers={"X-Request-ID": "abc-123"}))["headers"]["x-request-id"] == "abc-123"
    generated = echo(plain.get("open.test", "/"))["headers"]["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_a_default_backend_answering_for_a_missing_service_gets_the_error_headers(plain: LocalController) -> None:
    seen = echo(plain.get("fallback.test", "/some/page?x=1", headers={"Accept": "application/json",
                                                                      "X-Request-ID": "rid-7"}))
    h = seen["headers"]
    assert seen["backend"] == "errors"
    assert (h["x-code"], h["x-format"], h["x-original-uri"]) == ("503", "application/json", "/some/page?x=1")
    assert (h["x-namespace"], h["x-ingress-name"], h["x-service-name"], h["x-service-port"]) == (
        "default", "fallback", "missing", "80")
    assert h["x-request-id"] == "rid-7"


# -- PROXY protocol ---------------------------------------------------------------------------------

def _get_with_proxy_protocol(port: int, host: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 80\r\n"
                  + f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _proxied_ok(port: int) -> bool:
    return _get_with_proxy_protocol(port, "open.test")[0] == 200


def test_proxy_protocol_gives_the_client_address() -> None:
    b = Backends()
    try:
        for ctl in started_controller(_manifests(b, {"configmap.yaml": PROXY_PROTOCOL}), lambda c: True,
                                      extra_args=["--configmap", "ingress/ingressctl"]):
            ctl.wait_for(functools.partial(_proxied_ok, ctl.http_port), 10, "PROXY protocol listener")
            status, body = _get_with_proxy_protocol(ctl.http_port, "allow.test")
            assert status == 200 and json.loads(body)["headers"]["x-real-ip"] == "10.9.8.7"
    finally:
        b.stop()


def test_redirect_https_port_names_the_local_https_port() -> None:
    b = Backends()
    try:
        for ctl in started_controller(_manifests(b), _ready, extra_args=["--redirect-https-port", "8443"]):
            r = ctl.get("tls.test", "/p")
            assert (r.status, r.headers["location"]) == (308, "https://tls.test:8443/p")
    finally:
        b.stop()



def _serves_cn(ctl: LocalController, host: str, cn: str) -> bool:
    return ctl.get(host, tls=True).peer_cn == cn


def test_the_default_ssl_certificate_is_served_and_followed() -> None:
    b = Backends()
    try:
        manifests = {**_manifests(b), "fallback.yaml": tls_secret("fallback", make_cert("fallback.example")),
                     "missing.yaml": ingress("missing", "missing.test", [("/", "Prefix", "a")],
                                             tls_secret="does-not-exist")}
        for ctl in started_controller(manifests, _ready, extra_args=["--default-ssl-certificate", "default/fallback"]):
            assert ctl.get("missing.test", tls=True).peer_cn == "fallback.example"  # its own Secret is missing
            assert ctl.get("unknown.test", tls=True).peer_cn == "fallback.example"  # the default server
            assert ctl.get("tls.test", tls=True).peer_cn == "tls.test"  # a host's own certificate wins
            ctl.write("fallback.yaml", tls_secret("fallback", make_cert("rotated.example")))
            ctl.wait_for(functools.partial(_serves_cn, ctl, "unknown.test", "rotated.example"),
                         what="the rotated default certificate")
    finally:
        b.stop()


def test_cookie_and_redirect_rewrites_and_the_connection_header() -> None:
    from .annotation_kit import ScriptedServer

    backend = ScriptedServer(lambda r: (302, {"Set-Cookie": "sid=1; Path=/; Domain=backend.local",
                                              "Location": "http://backend.local/next",
                                              "X-Conn": r.headers.get("connection", "")}, b""))
    b = Backends()
    try:
        manifests = {**_manifests(b), "svc-scripted.yaml": service("scripted", [backend.port]),
                     "rewrites.yaml": ingress("rewrites", "rewrites.test", [("/", "Prefix", "scripted")], {
                         "proxy-cookie-path": "/ /app", "proxy-cookie-domain": "backend.local example.org",
                         "proxy-redirect-from": "http://backend.local/", "proxy-redirect-to": "https://example.org/",
                         "connection-proxy-header": "keep-alive"})}
        for ctl in started_controller(manifests, _ready):
            r = ctl.get("rewrites.test", "/")
            assert r.status == 302 and r.headers["location"] == "https://example.org/next"
            assert r.headers["set-cookie"] == "sid=1; Path=/app; Domain=example.org"
            assert r.headers["x-conn"] == "keep-alive"
    finally:
        b.stop()
        backend.stop()


def test_ingress_nginx_controller_metric_names_are_exposed(plain: LocalController) -> None:
    import datetime as dt

    _, text = plain.status("/metrics")
    assert re.search(r'^nginx_ingress_controller_config_last_reload_successful\{[^}]*controller_class='
                     r'"ingressctl.io/ingress-controller"[^}]*\} 1\.0$', text, re.M), text
    assert re.search(r"^nginx_ingress_controller_success\{[^}]*\} [1-9]", text, re.M)  # exactly: no _total
    assert re.search(r"^nginx_ingress_controller_config_hash\{[^}]*\} [1-9]", text, re.M)
    m = re.search(r'^nginx_ingress_controller_ssl_expire_time_seconds\{[^}]*host="tls.test"[^}]*\} (\S+)$', text,
                  re.M)
    assert m and float(m.group(1)) > dt.datetime.now(dt.UTC).timestamp(), text
    assert 'secret_name="tls-cert"' in m.group(0) and 'namespace="default"' in m.group(0)
    assert "nginx_ingress_controller_build_info{" in text
    info = re.search(r'^nginx_ingress_controller_ssl_certificate_info\{([^}]*host="tls.test"[^}]*)\} 1\.0$', text, re.M)
    assert info and 'issuer_common_name="tls.test"' in info.group(1) and 'public_key_algorithm="ECDSA"' in info.group(1)
