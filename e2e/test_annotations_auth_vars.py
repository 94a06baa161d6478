"""e2e: auth-url / auth-signin with nginx variables (the oauth2-proxy pattern) and the escaped `rd`.

One `ingressctl run` (real nginx, without the Lua balancer: the Lua module is loaded only
because the model needs `$escaped_request_uri`) and a loopback DNS server, so that `auth-url: http://$host:<port>/...`
resolves the request's own host name through nginx's resolver, as a cluster DNS would.
"""

from __future__ import annotations

import urllib.parse
from contextlib import contextmanager

import pytest

from .annotation_kit import ScriptedServer, Seen, ingress, service, started_controller
from .dns import DNSServer
from .harness import Backends

# The Lua balancer would load the module anyway: without it, only the model decides.
NO_LUA_BALANCER = ["--dynamic-endpoints", "off"]


def _auth(req: Seen) -> tuple[int, dict[str, str], bytes]:
    return (200, {}, b"") if req.headers.get("authorization") == "Bearer good" else (401, {}, b"")


@pytest.fixture(scope="module")
def auth_server():
    s = ScriptedServer(_auth)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def dns():
    d = DNSServer({"vars.test": "127.0.0.1"}).start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def ctl(auth_server, dns):
    b = Backends()
    port = auth_server.port
    m = {
        "svc-a.yaml": service("a", [b.start("a")]),
        # oauth2-proxy as ingress-nginx users write it; rewrite-target checks the order of
        # the rewrite phase (the signin variables are set before `rewrite ... break`).
        "vars.yaml": ingress("vars", "vars.test", [("/app(/|$)(.*)", "ImplementationSpecific", "a")], {
            "auth-url": f"http://$host:{port}/oauth2/auth?rd=$escaped_request_uri",
            "auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri",
            "rewrite-target": "/$2"}),
        "autord.yaml": ingress("autord", "autord.test", [("/", "Prefix", "a")], {
            "auth-url": f"http://127.0.0.1:{port}/check", "auth-signin": "https://login.example.com/start?app=1"}),
        # a catch-all rule would let the client pick where its auth request goes: refused
        "catchall.yaml": ingress("catchall", "", [("/", "Prefix", "a")], {
            "auth-url": f"http://$host:{port}/oauth2/auth"}),
    }
    try:
        yield from started_controller(m, lambda c: c.get("autord.test").status == 302,
                                      extra_args=["--resolver", f"127.0.0.1:{dns.port}", *NO_LUA_BALANCER],
                                      refused=frozenset({"default/catchall"}))
    finally:
        b.stop()


def test_auth_url_with_host_reaches_the_auth_backend(ctl, auth_server, dns):
    before = len(auth_server.seen)
    r = ctl.get("vars.test", "/app/deep?x=1", headers={"Authorization": "Bearer good"})
    assert (r.status, r.backend) == (200, "a")
    assert r.json()["path"] == "/deep?x=1"  # rewrite-target still applies
    check = auth_server.seen[before]
    assert check.path == "/oauth2/auth?rd=%2Fapp%2Fdeep%3Fx%3D1"  # the subrequest sees the variable
    assert check.headers["host"] == f"vars.test:{auth_server.port}"  # $host, resolved by nginx
    assert check.headers["x-original-uri"] == "/app/deep?x=1"
    assert dns.queries >= 1


def test_auth_signin_with_escaped_request_uri(ctl):
    original = "/app/deep/link?x=1&y=a%20b&z=/c"
    r = ctl.get("vars.test", original)
    assert r.status == 302
    location = r.headers["location"]
    assert location == "https://vars.test/oauth2/start?rd=%2Fapp%2Fdeep%2Flink%3Fx%3D1%26y%3Da%2520b%26z%3D%2Fc"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query == {"rd": [original]}  # one parameter: the '&'s of the original query survive


def test_automatic_rd_is_percent_encoded(ctl):
    r = ctl.get("autord.test", "/p?a=1&b=two%20words")
    assert r.status == 302
    location = r.headers["location"]
    assert location.startswith("https://login.example.com/start?app=1&rd=http://autord.test%2Fp%3Fa%3D1%26b")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query == {"app": ["1"], "rd": ["http://autord.test/p?a=1&b=two%20words"]}


def test_lua_module_loaded_only_because_the_model_needs_it(ctl):
    conf = (ctl.state_dir / "nginx" / "nginx.conf").read_text()
    assert conf.count("ngx_http_lua_module.so") == 1
    assert "set_by_lua_block $escaped_request_uri" in conf


def test_lua_module_comes_and_goes_with_a_reload(auth_server):
    """A running nginx without Lua loads the module when the first auth-signin arrives
    (reload, no restart), and drops it when the last one goes."""
    b = Backends()
    try:
        with contextmanager(started_controller)(
                {"svc-a.yaml": service("a", [b.start("a")]),
                 "plain.yaml": ingress("plain", "plain.test", [("/", "Prefix", "a")])},
                lambda c: c.get("plain.test").status == 200, extra_args=NO_LUA_BALANCER) as c:
            conf = c.state_dir / "nginx" / "nginx.conf"
            pid = c.nginx_pid()
            assert "ngx_http_lua_module" not in conf.read_text()
            c.write("late.yaml", ingress("late", "late.test", [("/", "Prefix", "a")], {
                "auth-url": f"http://127.0.0.1:{auth_server.port}/check",
                "auth-signin": "https://login.example.com/start"}))
            c.wait_for(lambda: c.get("late.test").status == 302, timeout=10, what="auth-signin live")
            r = c.get("late.test", "/x?a=1&b=2")
            assert r.headers["location"] == "https://login.example.com/start?rd=http://late.test%2Fx%3Fa%3D1%26b%3D2"
            assert "ngx_http_lua_module" in conf.read_text() and c.nginx_pid() == pid  # reloaded, same master
            c.remove("late.yaml")
            c.wait_for(lambda: c.get("late.test").status == 404, timeout=10, what="auth-signin gone")
            assert "ngx_http_lua_module" not in conf.read_text()
            assert c.get("plain.test").status == 200 and c.nginx_pid() == pid
    finally:
        b.stop()
