"""Gateway API build: attachment, hostname intersection and status conditions as data
(tables after the upstream conformance scenarios: HTTPRouteHostnameIntersection,
GatewayInvalidRouteKind, HTTPRouteInvalidCrossNamespaceParentRef, HTTPRouteMatchingAcrossRoutes,
HTTPRouteInvalidCrossNamespaceBackendRef, HTTPRouteInvalidNonExistentBackendRef)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from ingressctl.gateway.attach import intersect
from ingressctl.gateway.build import build_gateway, literal
from ingressctl.objects import parse_object
from ingressctl.store import Snapshot

BASE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ours, generation: 3}
spec: {controllerName: ingressctl.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: theirs}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 2}
spec:
  gatewayClassName: ours
  listeners:
  - {name: same, protocol: HTTP, port: 80, hostname: "*.same.test"}
  - {name: all, protocol: HTTP, port: 80, hostname: "all.test", allowedRoutes: {namespaces: {from: All}}}
  - name: sel
    protocol: HTTP
    port: 80
    hostname: sel.test
    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: blue}}}}
  - {name: tcp, protocol: TCP, port: 9000}
  - {name: grpc-only, protocol: HTTP, port: 81, allowedRoutes: {kinds: [{kind: GRPCRoute}]}}
  - {name: tcp-kind, protocol: HTTP, port: 83, allowedRoutes: {kinds: [{kind: TCPRoute}]}}
  - {name: dup1, protocol: HTTP, port: 82, hostname: dup.test}
  - {name: dup2, protocol: HTTP, port: 82, hostname: dup.test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: foreign, namespace: infra}
spec:
  gatewayClassName: theirs
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: v1
kind: Namespace
metadata: {name: blue, labels: {team: blue}}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: app}
spec: {ports: [{name: http, port: 80}]}
"""


def _route(ns: str, parent: str, hostnames: str = "[]", backend: str = "{name: svc, port: 80}") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: {ns}, generation: 5}}
spec:
  parentRefs: [{parent}]
  hostnames: {hostnames}
  rules: [{{backendRefs: [{backend}]}}]
"""


def _build(extra: str):
    objs = [parse_object(d) for d in yaml.safe_load_all(BASE + "---" + extra) if d]
    return build_gateway(Snapshot.of(objs))


@pytest.mark.parametrize("ns, parent, hostnames, reason", [
    ("infra", "{name: gw, sectionName: same}", "[a.same.test]", "Accepted"),
    ("app", "{name: gw, namespace: infra, sectionName: same}", "[]", "NotAllowedByListeners"),
    ("app", "{name: gw, namespace: infra, sectionName: all}", "[]", "Accepted"),
    ("app", "{name: gw, namespace: infra, sectionName: sel}", "[]", "NotAllowedByListeners"),
    ("blue", "{name: gw, namespace: infra, sectionName: sel}", "[]", "Accepted"),
    ("infra", "{name: gw, sectionName: same}", "[other.test]", "NoMatchingListenerHostname"),
    ("infra", "{name: gw, sectionName: nosuch}", "[]", "NoMatchingParent"),
    ("infra", "{name: gw, sectionName: grpc-only}", "[]", "NotAllowedByListeners"),
    ("infra", "{name: gw, sectionName: tcp}", "[]", "NotAllowedByListeners"),
    ("infra", "{name: gw, port: 80}", "[x.same.test]", "Accepted"),
    ("infra", "{name: gw, port: 82}", "[]", "NotAllowedByListeners"),  # conflicted listeners serve nothing
])
def test_route_parent_accepted(ns, parent, hostnames, reason):
    result = _build(_route(ns, parent, hostnames))
    (p,) = result.parents
    acc = p.condition("Accepted")
    assert acc is not None and (acc.reason, acc.status, acc.observed_generation) == (reason, reason == "Accepted", 5)


def test_route_of_a_foreign_gateway_gets_no_status_from_us():
    assert _build(_route("infra", "{name: foreign}")).parents == ()


@pytest.mark.parametrize("ns, backend, resolved", [
    ("app", "{name: svc, port: 80}", "ResolvedRefs"),
    ("app", "{name: nosuch, port: 80}", "BackendNotFound"),
    ("app", "{name: svc, port: 80, kind: ConfigMap}", "InvalidKind"),
    ("blue", "{name: svc, namespace: app, port: 80}", "RefNotPermitted"),
])
def test_route_resolved_refs(ns, backend, resolved):
    result = _build(_route(ns, "{name: gw, namespace: infra, sectionName: all}", "[]", backend))
    cond = result.parents[0].condition("ResolvedRefs")
    assert cond is not None and (cond.reason, cond.status) == (resolved, resolved == "ResolvedRefs")


def test_reference_grant_permits_cross_namespace_backend():
    grant = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: app}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: blue}]
  to: [{group: "", kind: Service}]
---"""
    result = _build(grant + _route("blue", "{name: gw, namespace: infra, sectionName: all}", "[]",
                                   "{name: svc, namespace: app, port: 80}"))
    cond = result.parents[0].condition("ResolvedRefs")
    assert cond is not None and cond.status


def test_gateway_and_listener_conditions():
    result = _build(_route("infra", "{name: gw, sectionName: same}", "[a.same.test]"))
    by = {(s.kind, s.name): s for s in result.statuses}
    assert ("GatewayClass", "theirs") not in by and ("Gateway", "foreign") not in by
    cls = by[("GatewayClass", "ours")].condition("Accepted")
    assert cls is not None and cls.status and cls.observed_generation == 3
    gw = by[("Gateway", "gw")]
    prog = gw.condition("Programmed")
    assert prog is not None and prog.status and prog.observed_generation == 2

    def cond(listener: str, type_: str) -> tuple[bool, str]:
        ls = gw.listener(listener)
        assert ls is not None
        c = next(c for c in ls.conditions if c.type == type_)
        return c.status, c.reason
    assert gw.listener("same").attached_routes == 1 and gw.listener("all").attached_routes == 0
    assert cond("tcp", "Accepted") == (False, "UnsupportedProtocol")
    assert cond("grpc-only", "ResolvedRefs") == (True, "ResolvedRefs")  # GRPCRoute: served on HTTP listeners
    assert cond("tcp-kind", "ResolvedRefs") == (False, "InvalidRouteKinds")
    assert cond("dup1", "Conflicted") == (True, "HostnameConflict")
    assert cond("dup1", "Programmed") == (False, "Invalid")
    assert cond("same", "Conflicted") == (False, "NoConflicts")


@pytest.mark.parametrize("listener, route, expected", [
    ("", (), ("",)),
    ("", ("a.test",), ("a.test",)),
    ("*.example.com", (), ("*.example.com",)),
    ("*.example.com", ("foo.example.com", "bar.other.com"), ("foo.example.com",)),
    ("*.example.com", ("a.b.example.com",), ("a.b.example.com",)),
    ("foo.example.com", ("*.example.com",), ("foo.example.com",)),
    ("*.example.com", ("*.foo.example.com",), ("*.foo.example.com",)),
    ("*.foo.example.com", ("*.example.com",), ("*.foo.example.com",)),
    ("foo.example.com", ("bar.example.com",), ()),
    ("*.example.com", ("example.com",), ()),
])
def test_hostname_intersection(listener, route, expected):
    assert intersect(listener, route) == expected


def test_literal_escapes_everything_but_plain_characters():
    assert literal('a/B_-"$;{ é') == "a/B_-\\x22\\x24\\x3b\\x7b\\x20\\xc3\\xa9"


@pytest.mark.parametrize("match", [
    "{path: {type: RegularExpression, value: '/(a+)+'}}",
    "{headers: [{name: 'x y', value: v}]}",
    "{headers: [{type: RegularExpression, name: x, value: 'a\"b'}]}",
    "{queryParams: [{name: 'a-b', value: v}]}",
    "{method: BREW}",
    "{path: {type: PathPrefix, value: 'no-slash'}}",
])
def test_route_with_a_value_we_cannot_serve_is_not_accepted(match):
    route = _route("infra", "{name: gw, sectionName: same}").replace(
        "rules: [{backendRefs", "rules: [{matches: [" + match + "], backendRefs")
    result = _build(route)
    acc = result.parents[0].condition("Accepted")
    assert acc is not None and (acc.status, acc.reason) == (False, "UnsupportedValue")
    assert [s for s in result.servers if s.ports != (81,)] == []  # 81: the grpc-only listener's default server


@pytest.mark.parametrize("redirect, listener_port, expected", [
    (dict(), 80, "http://$host"),
    (dict(), 8080, "http://$host:8080"),  # no scheme: the listener's port
    (dict(scheme="https"), 8080, "https://$host"),  # a scheme: its well-known port
    (dict(scheme="http", port=443), 80, "http://$host:443"),
    (dict(hostname="a.test", path_type="ReplaceFullPath", path="/x"), 80, "http://a.test"),
])
def test_redirect_base(redirect, listener_port, expected):
    from ingressctl.gateway.build import redirect_base
    from ingressctl.objects.gateway import Redirect
    assert redirect_base(Redirect(**redirect), listener_port) == expected


@pytest.mark.parametrize("redirect, matches", [
    (dict(status_code=304), ""), (dict(scheme="ftp"), ""), (dict(hostname="a;b"), ""), (dict(port=70000), ""),
    (dict(path_type="ReplaceFullPath", path="/a b"), ""), (dict(path_type="Other", path="/x"), ""),
    (dict(path_type="ReplacePrefixMatch", path="/x"), "[{path: {type: Exact, value: /a}}]"),
    (dict(path_type="ReplacePrefixMatch", path="/x"), "[{path: {type: PathPrefix, value: /a}}, {method: GET, "
                                                      "path: {type: RegularExpression, value: /b.*}}]"),
])
def test_redirect_values_we_cannot_serve(redirect, matches):
    from ingressctl.gateway.build import route_invalid
    from ingressctl.objects import parse_object
    route = parse_object(yaml.safe_load(_route("app", "{name: gw}")))
    rule = route.rules[0]
    if matches:
        rule = dataclasses.replace(rule, matches=parse_object(yaml.safe_load(_route("app", "{name: gw}").replace(
            "rules: [{backendRefs", f"rules: [{{matches: {matches}, backendRefs"))).rules[0].matches)
    from ingressctl.objects.gateway import Redirect
    route = dataclasses.replace(route, rules=(dataclasses.replace(rule, redirect=Redirect(**redirect)),))
    assert route_invalid(route)


def test_listeners_get_servers_on_their_own_ports():
    """Port 80 = the Ingress HTTP port here: shared servers (ports=()); 8081 gets servers of its
    own (a 404 default server, no route yet); 443 (the Ingress HTTPS port) is refused."""
    from ingressctl.gateway.build import GatewayOptions
    objs = [parse_object(d) for d in yaml.safe_load_all(BASE + "---" + _route("infra", "{name: gw, sectionName: same}",
                                                                                   "[a.same.test]")) if d]
    gw443 = yaml.safe_load("""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: infra}
spec: {gatewayClassName: ours, listeners: [{name: h, protocol: HTTP, port: 443}, {name: p, protocol: HTTP, port: 8081}]}""")
    result = build_gateway(Snapshot.of([*objs, parse_object(gw443)]), GatewayOptions(ingress_http_port=80))
    assert {(s.host, s.ports) for s in result.servers} == {("a.same.test", ()), ("", (8081,)), ("", (81,))}
    tls = next(s for s in result.statuses if s.name == "tls").listener("h")
    assert tls is not None and any(c.reason == "PortUnavailable" for c in tls.conditions)


def test_an_ingress_keeps_a_host_both_claim_on_the_same_port():
    from ingressctl.gateway.build import GatewayOptions
    from ingressctl.gateway.merge import with_gateway
    from ingressctl.ingress.build import build
    docs = [d for d in yaml.safe_load_all(BASE + "---" + _route("infra", "{name: gw, sectionName: same}", "[a.same.test]")
                                          + "---\n" + INGRESS) if d]
    snap = Snapshot.of([parse_object(d) for d in docs])
    result = with_gateway(build(snap), snap, GatewayOptions(ingress_http_port=80))
    server = result.model.server("a.same.test")
    assert server is not None and not any(loc.dispatch for loc in server.locations)
    assert [(p.kind, p.namespace, p.name) for p in result.problems if p.reason == "HostConflict"] == [
        ("HTTPRoute", "infra", "r")]


INGRESS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: ingressctl.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i, namespace: app}
spec:
  ingressClassName: nginx
  rules: [{host: a.same.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}]}}]
"""


@pytest.mark.parametrize("cert_ref, with_grant, reason", [
    ("{name: cert}", False, "ResolvedRefs"),
    ("{name: nosuch}", False, "InvalidCertificateRef"),
    ("{name: cert, kind: ConfigMap}", False, "InvalidCertificateRef"),
    ("{name: cert, namespace: app}", False, "RefNotPermitted"),
    ("{name: cert, namespace: app}", True, "ResolvedRefs"),
])
def test_https_listener_certificate_refs(cert_ref, with_grant, reason):
    from tests.factory import tls_secret
    gw = yaml.safe_load(f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: tls, namespace: infra}}
spec:
  gatewayClassName: ours
  listeners: [{{name: h, protocol: HTTPS, port: 8443, tls: {{certificateRefs: [{cert_ref}]}}}}]""")
    grant = yaml.safe_load("""
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: app}
spec: {from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}], to: [{group: "", kind: Secret}]}""")
    objs = [parse_object(d) for d in yaml.safe_load_all(BASE) if d]
    objs += [parse_object(gw), tls_secret("cert", "a.test", ns="infra"), tls_secret("cert", "a.test", ns="app")]
    if with_grant:
        objs.append(parse_object(grant))
    from ingressctl.gateway.build import GatewayOptions
    from tests.factory import NOW
    result = build_gateway(Snapshot.of(objs), GatewayOptions(now=NOW))
    status = next(s for s in result.statuses if s.name == "tls").listener("h")
    assert status is not None
    conds = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conds["ResolvedRefs"] == (reason == "ResolvedRefs", reason)
    assert conds["Programmed"][0] == (reason == "ResolvedRefs")
    served = [s for s in result.servers if s.ports == (8443,)]
    assert bool(served) == (reason == "ResolvedRefs") and all(s.tls and s.certificate for s in served)


@pytest.mark.parametrize("modifier, expected", [
    (dict(set=(("X-A", "1"),), remove=("X-B",)), (("x-a", "1", False), ("x-b", "", False))),
    (dict(add=(("X-A", "1"),)), (("x-a", "1", True),)),
    (dict(set=(("X-A", "1"),), add=(("X-A", "2"),)), (("x-a", "1", False),)),  # set wins over add
    (dict(set=(("Host", "evil"),)), None),  # ingressctl's own headers
    (dict(set=(("X-Forwarded-For", "1.2.3.4"),)), None),
    (dict(set=(("X-A", "$remote_addr"),)), None),  # no nginx variables from a route
    (dict(set=(("X-A", 'a"; b'),)), None),
    (dict(set=(("X-A", "a\nb"),)), None),
    (dict(set=(("X A", "1"),)), None),
])
def test_request_header_modifier_values(modifier, expected):
    from ingressctl.gateway.build import header_changes
    from ingressctl.ingress.values import InvalidValue
    from ingressctl.objects.gateway import HeaderModifier, HTTPMatch, HTTPRule
    rule = HTTPRule((HTTPMatch(),), (), ("RequestHeaderModifier",), None, HeaderModifier(**modifier))
    if expected is None:
        with pytest.raises(InvalidValue):
            header_changes(rule)
    else:
        assert header_changes(rule) == expected


def _accepted(rules: str, balancer: bool = True):
    from ingressctl.gateway.build import GatewayOptions
    route = _route("infra", "{name: gw, sectionName: same}").replace("rules: [{backendRefs: [{name: svc, port: 80}]}]",
                                                                      f"rules: {rules}")
    objs = [parse_object(d) for d in yaml.safe_load_all(BASE + "---" + route) if d]
    result = build_gateway(Snapshot.of(objs), GatewayOptions(balancer=balancer))
    acc = result.parents[0].condition("Accepted")
    assert acc is not None
    return acc, result


@pytest.mark.parametrize("rules, balancer, problem", [
    ("[{timeouts: {request: 10s}, backendRefs: [{name: svc, port: 80}]}]", True, ""),
    ("[{timeouts: {request: 1m30s, backendRequest: 500ms}}]", True, ""),
    ("[{timeouts: {request: 10s}}]", False, "Lua balancer"),  # --dynamic-endpoints off: nothing applies them
    ("[{timeouts: {request: '10'}}]", True, "duration"),
    ("[{timeouts: {request: 1s, backendRequest: 2s}}]", True, "longer"),
    ("[{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]}]",
     True, ""),
    ("[{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: "
     "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]}]", True, "PathPrefix"),
    ("[{filters: [{type: URLRewrite, urlRewrite: {hostname: 'bad host'}}]}]", True, "host"),
    ("[{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: '/a$b'}}}]}]",
     True, "path"),
    ("[{filters: [{type: URLRewrite, urlRewrite: {hostname: a.test}}, {type: RequestRedirect, "
     "requestRedirect: {port: 8080}}]}]", True, "both"),
    ("[{filters: [{type: URLRewrite, urlRewrite: {hostname: a.test}}, {type: URLRewrite, "
     "urlRewrite: {hostname: b.test}}]}]", True, "more than once"),
    ("[{filters: [{type: ExtensionRef}]}]", True, "not supported"),
])
def test_rule_values_accepted_or_reported(rules, balancer, problem):
    acc, _ = _accepted(rules, balancer)
    if problem:
        assert (acc.status, acc.reason) == (False, "UnsupportedValue") and problem in acc.message, acc
    else:
        assert acc.status, acc


@pytest.mark.parametrize("timeouts, seconds", [
    ("{request: 10s}", "10.000"), ("{request: 1m30s, backendRequest: 500ms}", "0.500"),
    ("{request: 0s}", ""),  # 0s: no timeout of ours
    ("{backendRequest: 1h}", "3600.000"),
])
def test_rule_timeout_seconds(timeouts, seconds):
    _, result = _accepted(f"[{{timeouts: {timeouts}, backendRefs: [{{name: svc, port: 80}}]}}]")
    (d,) = result.dispatches
    assert d.timeouts is None if not seconds else [e.value for e in d.timeouts.entries] == [seconds]


@pytest.mark.parametrize("prefix, replacement, uri, expected", [
    # the spec's ReplacePrefixMatch table
    ("/foo", "/xyz", "/foo/bar", "/xyz/bar"), ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
    ("/foo/", "/xyz", "/foo/bar", "/xyz/bar"), ("/foo/", "/xyz/", "/foo/bar", "/xyz/bar"),
    ("/foo", "/xyz", "/foo", "/xyz"), ("/foo", "/xyz", "/foo/", "/xyz/"),
    ("/foo", "", "/foo/bar", "/bar"), ("/foo", "", "/foo/", "/"), ("/foo", "", "/foo", "/"),
    ("/foo", "/", "/foo/", "/"), ("/foo", "/", "/foo", "/"),
    ("/", "/xyz", "/bar", "/xyz/bar"),
])
def test_replace_prefix_match_follows_the_spec_table(prefix, replacement, uri, expected):
    """The map entries, run the way nginx runs them: the first regex that matches wins, $1 filled in."""
    import re
    _, result = _accepted(f"[{{matches: [{{path: {{type: PathPrefix, value: '{prefix}'}}}}], filters: "
                          f"[{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, "
                          f"replacePrefixMatch: '{replacement}'}}}}}}], backendRefs: [{{name: svc, port: 80}}]}}]")
    (d,) = result.dispatches
    flags = "1" * len(d.conditions) or "x"
    key = f"{flags}|{uri}"
    for e in d.rewrites.entries:
        m = re.search(e.pattern.replace("(?s)", ""), key, re.S)
        if m:
            assert e.value.replace("$1", m.group(1) if m.groups() else "") == expected
            return
    raise AssertionError(f"no entry matched {key!r}")


@pytest.mark.parametrize(("modifier", "expected"), [
    (dict(set=(("Content-Type", "text/plain"),), add=(("X-A", "1"),), remove=("X-B",)),
     (("content-type", "text/plain", False), ("x-a", "1", True), ("x-b", "", False))),
    (dict(set=(("Content-Length", "0"),)), None),  # nginx frames the answer
    (dict(add=(("Set-Cookie", "a=b"),)), None),  # several lines: never merged into one
    (dict(set=(("X-A", "$upstream_addr"),)), None),
])
def test_response_header_modifier_values(modifier, expected):
    from ingressctl.gateway.build import response_header_changes
    from ingressctl.ingress.values import InvalidValue
    from ingressctl.objects.gateway import HeaderModifier, HTTPMatch, HTTPRule
    rule = HTTPRule((HTTPMatch(),), (), ("ResponseHeaderModifier",), response_headers=HeaderModifier(**modifier))
    if expected is None:
        with pytest.raises(InvalidValue):
            response_header_changes(rule)
    else:
        assert response_header_changes(rule) == expected


@pytest.mark.parametrize("kind, service, method, expected", [
    ("Exact", "pkg.Svc", "Do", ("Exact", "/pkg.Svc/Do")),
    ("Exact", "pkg.Svc", "", ("PathPrefix", "/pkg.Svc")),
    ("Exact", "", "Do", ("RegularExpression", "/[^/]+/Do")),
    ("Exact", "", "", ("PathPrefix", "/")),
    ("RegularExpression", "pkg\\..*", "", ("RegularExpression", "/pkg\\..*/[^/]+")),
    ("Exact", "pkg/Svc", "Do", None),  # not a gRPC service name: refused at parse, like the CRD would
    ("Exact", "pkg.Svc", "Do;", None),
    ("Prefix", "pkg.Svc", "", None),
])
def test_grpc_method_matches_are_path_matches(kind, service, method, expected):
    from ingressctl.objects.gateway import grpc_match
    if expected is None:
        with pytest.raises(ValueError):
            grpc_match(kind, service, method)
    else:
        assert grpc_match(kind, service, method) == expected


def _grpc_route(name: str, section: str, hostnames: str = '["g.test"]', filters: str = "[]") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: {name}, namespace: infra}}
spec:
  parentRefs: [{{name: gw, sectionName: {section}}}]
  hostnames: {hostnames}
  rules: [{{matches: [{{method: {{service: pkg.Svc}}}}], filters: {filters}, backendRefs: [{{name: svc, namespace: app, port: 80}}]}}]
"""


GRPC_GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: ours
  listeners:
  - {name: h80, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}
  - {name: h9000, protocol: HTTP, port: 9000, allowedRoutes: {namespaces: {from: All}}}
"""


@pytest.mark.parametrize("extra, served, problem", [
    (_grpc_route("g", "h9000"), True, ""),
    (_grpc_route("g", "h80"), False, "Ingress HTTP port speaks HTTP/1.1"),
    (_grpc_route("g", "h9000") + "---" + _route("infra", "{name: gw, sectionName: h9000}", '["g.test"]'),
     False, "also served by an HTTPRoute"),
    (_grpc_route("g", "h9000") + "---" + _route("infra", "{name: gw, sectionName: h9000}", '["*.test"]'),
     False, "also served by an HTTPRoute"),  # a wildcard HTTPRoute covers the host
    (_grpc_route("g", "h9000", filters="[{type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 80}}}]"),
     False, "not supported on a GRPCRoute"),
])
def test_grpc_routes_are_served_alone_on_h2_ports(extra, served, problem):
    base = [o for o in (parse_object(d) for d in yaml.safe_load_all(BASE) if d)
            if (o.meta.kind, o.meta.name) != ("Gateway", "gw")]  # gw: the listeners below instead
    objs = base + [parse_object(d) for d in yaml.safe_load_all(GRPC_GATEWAY + "---" + extra) if d]
    result = build_gateway(Snapshot.of(objs))
    grpc_servers = [s for s in result.servers if s.host == "g.test" and s.locations[0].config.grpc]
    assert bool(grpc_servers) is served, result.servers
    if served:
        (s,) = grpc_servers
        assert s.ports == (9000,) and s.http2 and not s.tls  # h2c
        defaults = [x for x in result.servers if x.ports == (9000,) and not x.host]
        assert all(x.http2 for x in defaults)  # every server of the port: one listen socket
    else:
        assert any(problem in p.message for p in result.problems if p.kind == "GRPCRoute") or \
            any(problem in (c.message or "") for p in result.parents for c in p.conditions), result.problems
    assert {p.kind for p in result.parents} >= {"GRPCRoute"}
