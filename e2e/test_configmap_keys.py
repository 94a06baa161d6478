"""e2e: ConfigMap keys that change every request (issue 14 §6), with real nginx and traffic:
headers hidden, passed, added and sent (add-headers / proxy-set-headers name ConfigMaps of
headers), clients refused by address, User-Agent and Referer — also where an Ingress has
an allowlist of its own, which in nginx would replace http-level access rules.

One `ingressctl run` whose ConfigMap sets them all; one scripted backend that records what
it receives and answers with its own Server and X-Secret headers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .annotation_kit import ScriptedServer, ingress, request_from, service, started_controller
from .harness import Backends, LocalController

SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: ingressctl, namespace: ingress}
data:
  hide-headers: X-Secret
  allow-backend-server-header: "true"
  add-headers: ingress/response-headers
  proxy-set-headers: ingress/request-headers
  block-cidrs: 127.0.0.66/32
  block-user-agents: "EvilBot/1.0,~*crawler"
  block-referers: "~spam\\\\.example"
  global-allowed-response-headers: X-Team-Header
  no-such-key: "1"
"""
TEAM_HEADERS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: team-headers, namespace: default}
data: {X-Team-Header: blue, X-Not-Allowed: "no"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: auth-headers, namespace: default}
data: {X-Auth-Team: platform}
"""
AUTH: list[ScriptedServer] = []
RESPONSE_HEADERS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: response-headers, namespace: ingress}
data: {X-Frame-Options: DENY, X-Served-By: "ingressctl $proxy_upstream_name"}
"""
REQUEST_HEADERS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: request-headers, namespace: ingress}
data: {X-Team: platform, X-Start: "t=${msec}", X-Bad: "$secret_variable"}
"""


@pytest.fixture(scope="module")
def ctl() -> Iterator[tuple[LocalController, ScriptedServer]]:
    backend = ScriptedServer(lambda r: (200, {"X-Secret": "s3cr3t", "X-Kept": "yes"}, b"ok"))
    auth = ScriptedServer(lambda r: (200, {}, b""))
    b = Backends()
    try:
        root = [("/", "Prefix", "scripted")]
        manifests = {"svc.yaml": service("scripted", [backend.port]),
                     "open.yaml": ingress("open", "open.test", root),
                     "allow.yaml": ingress("allow", "allow.test", root, {"allowlist-source-range": "127.0.0.0/8"}),
                     "settings.yaml": SETTINGS, "response.yaml": RESPONSE_HEADERS, "request.yaml": REQUEST_HEADERS,
                     "team.yaml": TEAM_HEADERS,
                     "custom.yaml": ingress("custom", "custom.test", root, {"custom-headers": "team-headers"}),
                     "authed.yaml": ingress("authed", "authed.test", root, {
                         "auth-url": f"http://127.0.0.1:{auth.port}/check", "auth-proxy-set-headers": "auth-headers"}),
                     "cached.yaml": ingress("cached", "cached.test", root, {
                         "auth-url": f"http://127.0.0.1:{auth.port}/cached", "auth-cache-key": "$http_x_user",
                         "auth-cache-duration": "200 1m"})}
        AUTH.append(auth)
        yield from ((c, backend) for c in started_controller(
            manifests, lambda c: c.get("open.test").status == 200, extra_args=["--configmap", "ingress/ingressctl"]))
    finally:
        b.stop()
        backend.stop()
        auth.stop()


def test_response_headers_hidden_passed_and_added(ctl: tuple[LocalController, ScriptedServer]) -> None:
    c, _ = ctl
    r = c.get("open.test")
    assert r.status == 200 and "x-secret" not in r.headers and r.headers["x-kept"] == "yes"
    assert r.headers["server"].startswith("BaseHTTP/"), r.headers  # the backend's, not nginx's
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-served-by"] == "ingressctl default-scripted-80"


def test_request_headers_reach_the_backend_and_a_bad_one_is_left_out(
        ctl: tuple[LocalController, ScriptedServer]) -> None:
    c, backend = ctl
    backend.seen.clear()
    assert c.get("open.test").status == 200
    seen = backend.seen[-1].headers
    assert seen["x-team"] == "platform" and seen["x-start"].startswith("t=1") and "x-bad" not in seen
    assert seen["x-real-ip"] == "127.0.0.1"  # ingressctl's own request headers stay


def test_blocked_user_agents_and_referers_get_403(ctl: tuple[LocalController, ScriptedServer]) -> None:
    c, _ = ctl
    assert c.get("open.test", headers={"User-Agent": "EvilBot/1.0"}).status == 403
    assert c.get("open.test", headers={"User-Agent": "Some CRAWLER 2"}).status == 403
    assert c.get("open.test", headers={"User-Agent": "EvilBot/1.01"}).status == 200  # exact, not a prefix
    assert c.get("open.test", headers={"Referer": "https://spam.example/x"}).status == 403
    assert c.get("open.test", headers={"Referer": "https://spamXexample/x"}).status == 200


@pytest.mark.parametrize("host", ["open.test", "allow.test"])
def test_blocked_addresses_get_403_even_where_an_ingress_allows_them(
        ctl: tuple[LocalController, ScriptedServer], host: str) -> None:
    c, _ = ctl
    assert request_from("127.0.0.66", c.http_port, host).status == 403
    assert request_from("127.0.0.65", c.http_port, host).status == 200


def test_problems_of_the_configmap_are_reported_as_metrics(ctl: tuple[LocalController, ScriptedServer]) -> None:
    c, _ = ctl
    _, text = c.status("/metrics")
    assert 'ingressctl_problems{reason="UnknownConfigMapKey"} 1.0' in text
    assert 'ingressctl_problems{reason="InvalidConfigMapValue"} 1.0' in text  # X-Bad's variable


def test_custom_headers_only_those_the_configmap_allows(ctl: tuple[LocalController, ScriptedServer]) -> None:
    c, _ = ctl
    r = c.get("custom.test")
    assert r.headers["x-team-header"] == "blue" and "x-not-allowed" not in r.headers
    assert "x-team-header" not in c.get("open.test").headers  # only that Ingress's locations


def test_auth_proxy_set_headers_reach_the_auth_service(ctl: tuple[LocalController, ScriptedServer]) -> None:
    c, _ = ctl
    assert c.get("authed.test").status == 200
    assert AUTH[-1].seen[-1].headers["x-auth-team"] == "platform"


def test_auth_answers_are_cached_per_key(ctl: tuple[LocalController, ScriptedServer]) -> None:
    c, _ = ctl
    auth = AUTH[-1]

    def asked() -> int:
        return sum(1 for s in auth.seen if s.path.startswith("/cached"))

    before = asked()
    for _ in range(3):
        assert c.get("cached.test", headers={"X-User": "alice"}).status == 200
    assert asked() == before + 1  # one auth request for alice, then the cache
    assert c.get("cached.test", headers={"X-User": "bob"}).status == 200
    assert asked() == before + 2  # another key: asked again


def test_bind_address_replaces_the_listen_address(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket

    from .harness import INGRESS_CLASS

    b = Backends()
    c = LocalController(tmp_path, extra_args=["--configmap", "ingress/bind"])
    c.write("00-class.yaml", INGRESS_CLASS)
    c.write("svc.yaml", service("web", [b.start("web")]))
    c.write("ing.yaml", ingress("web", "web.test", [("/", "Prefix", "web")]))
    c.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bind, namespace: ingress}\n"
                       "data: {bind-address: 127.0.0.3}\n")
    try:
        c.start()
        with socket.create_connection(("127.0.0.3", c.http_port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", c.http_port), timeout=5).close()
    finally:
        c.stop()
        b.stop()
