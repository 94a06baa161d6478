"""Table-driven tests of the Kubernetes Ingress semantics in ingress/build.py."""

from __future__ import annotations

import datetime as dt

import pytest

from ingressctl.ingress.classes import ClassFilter
from ingressctl.ingress.settings import Settings
from ingressctl.objects import parse_object

from .factory import (
    NOW,
    endpoint_slice,
    ingress,
    ingress_class,
    path,
    reasons,
    routes,
    run_build,
    service,
    tls_secret,
)

BASE = (ingress_class(), service(), endpoint_slice())
UP = "default-web-80"


# -- paths ------------------------------------------------------------------------------------
@pytest.mark.parametrize("paths, expected", [
    pytest.param([path("/foo")], [("=", "/foo", UP, 0), ("", "/foo/", UP, 0), ("", "/", "", 404)],
                 id="prefix-matches-element-and-below-not-foobar"),
    pytest.param([path("/foo/")], [("=", "/foo", UP, 0), ("", "/foo/", UP, 0), ("", "/", "", 404)],
                 id="prefix-trailing-slash-ignored"),
    pytest.param([path("/foo", ptype="Exact")], [("=", "/foo", UP, 0), ("", "/", "", 404)],
                 id="exact-only-that-path"),
    pytest.param([path("/foo/", ptype="Exact")], [("=", "/foo/", UP, 0), ("=", "/foo", "", 404), ("", "/", "", 404)],
                 id="exact-keeps-trailing-slash"),  # /foo is not /foo/: 404, not nginx's 301
    pytest.param([path("/")], [("", "/", UP, 0)], id="prefix-root"),
    pytest.param([path("/foo"), path("/foo", svc="other", ptype="Exact")],
                 [("=", "/foo", "", 503), ("", "/foo/", UP, 0), ("", "/", "", 404)],
                 id="exact-beats-prefix-at-equal-length"),
    pytest.param([path("/a"), path("/a/b")],
                 [("=", "/a/b", UP, 0), ("=", "/a", UP, 0), ("", "/a/b/", UP, 0), ("", "/a/", UP, 0),
                  ("", "/", "", 404)], id="longest-prefix-listed-first"),
    pytest.param([path("/Foo", ptype="ImplementationSpecific")],
                 [("=", "/Foo", UP, 0), ("", "/Foo/", UP, 0), ("", "/", "", 404)],
                 id="implementation-specific-is-prefix"),
])
def test_paths(paths, expected):
    r = run_build(*BASE, ingress("a", [("example.com", paths)]))
    assert routes(r, "example.com") == expected


def test_regex_only_with_use_regex():
    ann = {"nginx.ingress.kubernetes.io/use-regex": "true"}
    r = run_build(*BASE, ingress("a", [("x.com", [path("/api/v[0-9]+", ptype="ImplementationSpecific")])],
                                 annotations=ann))
    assert ("~*", "/api/v[0-9]+", UP, 0) in routes(r, "x.com")
    r = run_build(*BASE, ingress("a", [("x.com", [path("/api/v[0-9]+", ptype="ImplementationSpecific")])]))
    assert reasons(r) == ["InvalidIngress"] and r.model.server("x.com") is None


@pytest.mark.parametrize("bad", ["/foo;bar", "/foo bar", "foo", "/a{b}", "/x'y", "/$host", "/a//b", "/a/../b",
                                 "/a\nb", "/a#b", '/a"b'])
def test_unsafe_paths_skip_the_ingress_and_keep_others(bad):
    r = run_build(*BASE, ingress("bad", [("bad.com", [path(bad)])]), ingress("good", [("good.com", [path("/")])]))
    assert "InvalidIngress" in reasons(r)
    assert r.model.server("bad.com") is None
    assert routes(r, "good.com") == [("", "/", UP, 0)]


# -- hosts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("host, server_name", [
    ("example.com", "example.com"),
    ("*.example.com", r"~^[^.]+\.example\.com$"),
])
def test_server_names(host, server_name):
    r = run_build(*BASE, ingress("a", [(host, [path("/")])]))
    assert r.model.server(host).server_name == server_name


@pytest.mark.parametrize("bad_host", ["EXAMPLE.com", "a..b", "*.*.x.com", "x.com;", "a b.com", "-a.com", "a.*.com"])
def test_invalid_hosts_are_refused(bad_host):
    r = run_build(*BASE, ingress("a", [(bad_host, [path("/")])]))
    assert reasons(r) == ["InvalidIngress"]


def test_hostless_rules_apply_to_every_host_without_shadowing():
    r = run_build(*BASE, service("other"), endpoint_slice("other", ["10.0.0.9"]),
                  ingress("a", [("", [path("/shared"), path("/", svc="other")])]),
                  ingress("b", [("h.com", [path("/")])], created="2026-02-01T00:00:00Z"))
    assert routes(r, "h.com") == [("=", "/shared", UP, 0), ("", "/shared/", UP, 0), ("", "/", UP, 0)]
    assert ("", "/", "default-other-80", 0) in routes(r, "")


# -- conflicts --------------------------------------------------------------------------------
@pytest.mark.parametrize("older, newer", [
    (("a", "default", "2026-01-01T00:00:00Z"), ("b", "default", "2026-01-02T00:00:00Z")),
    (("z", "default", "2025-12-31T00:00:00Z"), ("a", "default", "2026-01-01T00:00:00Z")),
    (("a", "ns1", "2026-01-01T00:00:00Z"), ("a", "ns2", "2026-01-01T00:00:00Z")),  # tie: namespace/name
])
def test_oldest_ingress_wins_a_conflict(older, newer):
    objs = [ingress_class()]
    for (_, ns, _), port in ((older, 8001), (newer, 8002)):
        objs += [service("web", ns=ns), endpoint_slice("web", [f"10.0.0.{port % 10}"], ns=ns)]
    objs += [ingress(older[0], [("c.com", [path("/x")])], ns=older[1], created=older[2]),
             ingress(newer[0], [("c.com", [path("/x")])], ns=newer[1], created=newer[2])]
    r = run_build(*objs)
    assert {loc.ingress for loc in r.model.server("c.com").locations if loc.path == "/x"} == {f"{older[1]}/{older[0]}"}
    lost = [p for p in r.problems if p.reason == "PathConflict"]
    assert [(p.namespace, p.name) for p in lost] == [(newer[1], newer[0])]
    assert f"{older[1]}/{older[0]}" in lost[0].message


def test_ingresses_sharing_a_host_merge():
    r = run_build(*BASE, ingress("a", [("m.com", [path("/a")])]), ingress("b", [("m.com", [path("/b")])]))
    assert {loc.path for loc in r.model.server("m.com").locations} == {"/a", "/a/", "/b", "/b/", "/"}
    assert not r.problems


# -- backends and endpoints -------------------------------------------------------------------
@pytest.mark.parametrize("port, objects, upstream, status, reason", [
    ("http", [service(), endpoint_slice()], UP, 0, None),
    (80, [service(), endpoint_slice()], UP, 0, None),
    ("nope", [service(), endpoint_slice()], "", 503, "PortNotFound"),
    (81, [service(), endpoint_slice()], "", 503, "PortNotFound"),
    (80, [], "", 503, "ServiceNotFound"),
    (80, [service()], "", 503, "NoEndpoints"),
    (80, [service(), endpoint_slice(conditions={"ready": False})], "", 503, "NoEndpoints"),
    (80, [service(), endpoint_slice(port_name="other")], "", 503, "NoEndpoints"),
])
def test_backend_resolution(port, objects, upstream, status, reason):
    r = run_build(ingress_class(), *objects, ingress("a", [("b.com", [path("/", port=port)])]))
    assert routes(r, "b.com") == [("", "/", upstream, status)]
    assert reasons(r) == ([reason] if reason else [])


def test_endpoint_selection_ready_then_terminating():
    ready = endpoint_slice(addresses=["10.0.0.1"], name="s1")
    term = endpoint_slice(addresses=["10.0.0.2"], name="s2",
                          conditions={"ready": False, "serving": True, "terminating": True})
    r = run_build(ingress_class(), service(), ready, term, ingress("a", [("b.com", [path("/")])]))
    assert [e.address for e in r.model.upstreams[0].endpoints] == ["10.0.0.1"]
    r = run_build(ingress_class(), service(), term, ingress("a", [("b.com", [path("/")])]))
    assert [e.address for e in r.model.upstreams[0].endpoints] == ["10.0.0.2"]


def test_endpoints_from_several_slices_use_the_slice_port():
    r = run_build(ingress_class(), service(), endpoint_slice(addresses=["10.0.0.1", "10.0.0.2"], port=8080, name="a"),
                  endpoint_slice(addresses=["10.0.0.3"], port=9090, name="b"), ingress("a", [("b.com", [path("/")])]))
    assert [e.hostport for e in r.model.upstreams[0].endpoints] == ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:9090"]


def test_external_name_service_is_resolved_by_nginx():
    ext = service("ext", ports=[("https", 443)], type="ExternalName", externalName="api.example.org", clusterIP="")
    r = run_build(ingress_class(), ext, ingress("a", [("e.com", [path("/", svc="ext", port="https")])]))
    loc = r.model.server("e.com").locations[0]
    assert (loc.external_name, loc.external_port) == ("api.example.org", 443)


def test_headless_service_routes_to_endpoints():
    r = run_build(ingress_class(), service(clusterIP="None"), endpoint_slice(), ingress("a", [("h.com", [path("/")])]))
    assert routes(r, "h.com") == [("", "/", UP, 0)]


# -- default backend --------------------------------------------------------------------------
def test_no_match_is_404_by_default():
    r = run_build(*BASE)
    assert routes(r, "") == [("", "/", "", 404)]


def test_ingress_default_backend_without_rules_serves_unmatched_requests():
    r = run_build(*BASE, ingress("d", default_backend=("web", 80)))
    assert routes(r, "") == [("", "/", UP, 0)]


def test_ingress_default_backend_serves_its_hosts_unmatched_paths():
    r = run_build(*BASE, ingress("d", [("d.com", [path("/only")])], default_backend=("web", 80)))
    assert ("", "/", UP, 0) in routes(r, "d.com")


def test_global_default_backend_flag():
    r = run_build(*BASE, default_backend="default/web:80")
    assert routes(r, "") == [("", "/", UP, 0)]


# -- classes ----------------------------------------------------------------------------------
THEIRS = ingress_class("other", controller="example.com/other")


@pytest.mark.parametrize("objects, ing_kwargs, watch_without, ours", [
    ([ingress_class()], {"cls": "nginx"}, False, True),
    ([THEIRS], {"cls": "other"}, False, False),
    ([], {"cls": "nginx"}, False, False),  # the IngressClass must exist
    ([], {"cls": None, "annotations": {"kubernetes.io/ingress.class": "nginx"}}, False, True),
    ([], {"cls": None, "annotations": {"kubernetes.io/ingress.class": "other"}}, False, False),
    ([ingress_class(default=True)], {"cls": None}, False, True),
    ([ingress_class("other", "example.com/other", default=True)], {"cls": None}, False, False),
    ([], {"cls": None}, False, False),
    ([], {"cls": None}, True, True),
])
def test_ingress_class_selection(objects, ing_kwargs, watch_without, ours):
    r = run_build(*objects, service(), endpoint_slice(), ingress("a", [("c.com", [path("/")])], **ing_kwargs),
                  classes=ClassFilter(watch_without_class=watch_without))
    assert (r.model.server("c.com") is not None) is ours
    assert [(s.namespace, s.name) for s in r.statuses] == ([("default", "a")] if ours else [])


# -- TLS --------------------------------------------------------------------------------------
def _tls_build(secret, **settings):
    tls = [{"hosts": ["s.com"], "secretName": "s-tls"}]
    objs = [*BASE, ingress("a", [("s.com", [path("/")])], tls=tls)]
    if secret is not None:
        objs.append(secret)
    return run_build(*objs, settings=Settings(**settings))


def test_tls_secret_becomes_certificate_and_redirect():
    r = _tls_build(tls_secret("s-tls", "s.com"))
    server = r.model.server("s.com")
    assert server.tls and server.certificate.startswith("default-s-tls-") and server.ssl_redirect
    assert not r.problems


def test_ssl_redirect_can_be_disabled():
    assert not _tls_build(tls_secret("s-tls", "s.com"), ssl_redirect=False).model.server("s.com").ssl_redirect


@pytest.mark.parametrize("secret, reason", [
    (None, "SecretNotFound"),
    (tls_secret("s-tls", "s.com", not_after=NOW - dt.timedelta(days=1)), "InvalidCertificate"),
    (tls_secret("s-tls", "s.com", mismatched_key=True), "InvalidCertificate"),
    (parse_object({"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "s-tls"},
                   "stringData": {"tls.crt": "not a certificate", "tls.key": "nor a key"}}), "InvalidCertificate"),
    (parse_object({"kind": "Secret", "metadata": {"name": "s-tls"}, "stringData": {"other": "x"}}),
     "InvalidCertificate"),
])
def test_broken_tls_secret_falls_back_to_default_certificate(secret, reason):
    r = _tls_build(secret)
    server = r.model.server("s.com")
    assert server.tls and server.certificate == ""
    assert reasons(r) == [reason] and r.problems[0].warning


def test_rotated_secret_gets_a_new_file_name():
    a = _tls_build(tls_secret("s-tls", "s.com")).model.server("s.com").certificate
    b = _tls_build(tls_secret("s-tls", "s.com")).model.server("s.com").certificate
    assert a != b


def test_build_is_independent_of_object_order():
    objs = [*BASE, ingress("a", [("o.com", [path("/x")])]), ingress("b", [("o.com", [path("/x")])],
                                                                      created="2026-03-01T00:00:00Z")]
    assert run_build(*objs) == run_build(*reversed(objs))


def test_ingress_needing_lua_is_skipped_without_it_and_others_served():
    ann = {"nginx.ingress.kubernetes.io/auth-url": "http://auth.example.com/check",
           "nginx.ingress.kubernetes.io/auth-signin": "https://login.example.com/start"}
    objs = [*BASE, ingress("needs", [("lua.com", [path("/")])], annotations=ann),
            ingress("plain", [("plain.com", [path("/")])])]
    r = run_build(*objs, lua=False)
    assert r.model.server("lua.com") is None and routes(r, "plain.com") == [("", "/", UP, 0)]
    assert "LuaRequired" in reasons(r)
    assert run_build(*objs).model.server("lua.com") is not None


# -- Issue 12 §4: routing details ----------------------------------------------------------------

def test_an_exact_path_with_a_trailing_slash_does_not_serve_the_path_without_it() -> None:
    # nginx answers 301 to /foo/ for a request of /foo when `location = /foo/` proxies; the
    # Ingress spec says /foo does not match Exact /foo/: it goes where the host sends /foo.
    result = run_build(ingress_class(), service("web"), service("other"), endpoint_slice("web"),
                       endpoint_slice("other", ["10.0.0.2"]),
                       ingress("x", [("a.test", [path("/foo/", "web", 80, "Exact"), path("/", "other", 80)])]))
    got = {(m, p): up for m, p, up, _ in routes(result, "a.test")}
    assert got[("=", "/foo/")] == "default-web-80"
    assert got[("=", "/foo")] == "default-other-80"  # what / serves


def test_the_extra_exact_location_keeps_the_auth_of_the_one_it_copies() -> None:
    ann = {"nginx.ingress.kubernetes.io/auth-url": "http://auth.example.com/check"}
    result = run_build(ingress_class(), service("web"), endpoint_slice("web"),
                       ingress("x", [("a.test", [path("/foo/", "web", 80, "Exact"), path("/", "web", 80)])],
                               annotations=ann))
    server = result.model.server("a.test")
    assert server is not None
    copy = next(loc for loc in server.locations if (loc.modifier, loc.path) == ("=", "/foo"))
    assert copy.auth_location and len({loc.auth_location for loc in server.auth_subrequests}) == len(
        server.auth_subrequests)


def test_rewrite_target_makes_every_prefix_path_of_the_host_a_caseless_regex() -> None:
    ann = {"nginx.ingress.kubernetes.io/rewrite-target": "/"}
    result = run_build(ingress_class(), service("web"), endpoint_slice("web"),
                       ingress("x", [("a.test", [path("/something", "web", 80), path("/v1.0+x", "web", 80),
                                                 path("/exact", "web", 80, "Exact")])], annotations=ann),
                       ingress("plain", [("b.test", [path("/something", "web", 80)])]))
    got = {(m, p) for m, p, _, _ in routes(result, "a.test")}
    assert ("~*", "/something(/|$)") in got and ("~*", "/v1\\.0\\+x(/|$)") in got
    assert ("=", "/exact") in got  # Exact stays exact (the Ingress spec), and beats regexes in nginx
    assert ("=", "/something") in {(m, p) for m, p, _, _ in routes(result, "b.test")}  # other hosts keep theirs


# -- issue 14 §5: --default-ssl-certificate ------------------------------------------------------

def test_the_default_ssl_certificate_serves_hosts_without_their_own_and_the_default_server() -> None:
    from .factory import tls_secret

    objs = (ingress_class(), service("web"), endpoint_slice("web"), tls_secret("fallback", "fallback.test", ns="infra"),
            tls_secret("own", "own.test"),
            ingress("own", [("own.test", [path("/")])], tls=[{"hosts": ["own.test"], "secretName": "own"}]),
            ingress("none", [("none.test", [path("/")])], tls=[{"hosts": ["none.test"], "secretName": "missing"}]))
    result = run_build(*objs, default_certificate="infra/fallback")
    default = result.model.default_certificate
    assert default and default in {c.file_name for c in result.model.certificates}
    assert result.model.server("own.test").certificate != default  # type: ignore[union-attr]
    assert result.model.server("none.test").certificate == ""  # served by the http-level default: ours
    bad = run_build(*objs, default_certificate="infra/nope")
    assert bad.model.default_certificate == "" and "DefaultCertificateNotFound" in reasons(bad)
