"""`ingressctl explain`: a table of (objects, request) -> explanation, over the pure build."""

from __future__ import annotations

from typing import Any

import pytest

from ingressctl.explain import explain, parse_request
from ingressctl.explain.request import normalise_path
from ingressctl.ingress.classes import ClassFilter
from ingressctl.objects import KubeObject
from ingressctl.store import Snapshot
from tests.factory import endpoint_slice, ingress, ingress_class, path, run_build, service, tls_secret

A = "nginx.ingress.kubernetes.io/"
OLD, NEW = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"


def world() -> list[KubeObject]:
    out: list[KubeObject] = [ingress_class(), ingress_class("theirs", "k8s.io/ingress-nginx")]
    for i, name in enumerate(("web", "api", "canary", "old", "new")):
        out += [service(name), endpoint_slice(name, [f"10.0.0.{i + 1}"])]
    out.append(service("empty"))
    return out


def ask(objects: list[KubeObject], url: str, headers: tuple[str, ...] = (), method: str = "GET",
        client_ip: str = "127.0.0.1") -> Any:
    from ingressctl.gateway.build import GatewayOptions
    from ingressctl.gateway.merge import with_gateway
    everything = [*world(), *objects]
    result = with_gateway(run_build(*everything), Snapshot.of(everything), GatewayOptions())
    return explain(Snapshot.of(everything), result, parse_request(url, headers, method, client_ip),
                   ClassFilter(), 80, 443)


CASES: list[tuple[str, list[KubeObject], dict[str, Any], dict[str, Any], str]] = [
    ("exact beats prefix",
     [ingress("a", [("x.io", [path("/", "web"), path("/foo", "api", ptype="Exact")])])],
     {"url": "http://x.io/foo"},
     {"status": None, "ingress": "default/a", "backend": {"service": "default/api", "port": 80},
      "location": "= /foo"}, "exact match: wins at once"),
    ("longest prefix, whole path elements",
     [ingress("a", [("x.io", [path("/", "web"), path("/api", "api")])])],
     {"url": "http://x.io/apix"},
     {"status": None, "backend": {"service": "default/web", "port": 80}, "location": "/"},
     "longest matching prefix"),
    ("longest prefix wins",
     [ingress("a", [("x.io", [path("/", "web"), path("/api", "api")])])],
     {"url": "http://x.io/api/users"},
     {"backend": {"service": "default/api", "port": 80}, "location": "/api/"}, "longest matching prefix"),
    ("regex beats a longer prefix, first regex in order",
     [ingress("r", [("x.io", [path("/v[0-9]+/", "api", ptype="ImplementationSpecific"),
                              path("/v1/long/prefix", "web", ptype="ImplementationSpecific")])],
              annotations={A + "use-regex": "true"})],
     {"url": "http://x.io/v1/long/prefix/x"},
     {"location": "~* ^/v1/long/prefix", "backend": {"service": "default/web", "port": 80}},
     "first regex that matches"),
    ("conflict lost to an older Ingress",
     [ingress("new", [("x.io", [path("/", "new")])], created=NEW),
      ingress("old", [("x.io", [path("/", "old")])], created=OLD)],
     {"url": "http://x.io/"},
     {"ingress": "default/old", "backend": {"service": "default/old", "port": 80}},
     "Ingress default/new also claims this path but lost the conflict to the older Ingress default/old"),
    ("another namespace's path on an owned host is not served",
     [ingress("owner", [("x.io", [path("/", "web")])], created=OLD),
      ingress("intruder", [("x.io", [path("/admin", "api")])], ns="other", created=NEW),
      service("api", ns="other"), endpoint_slice("api", ["10.0.1.1"], ns="other")],
     {"url": "http://x.io/admin/panel"},
     {"ingress": "default/owner", "backend": {"service": "default/web", "port": 80}},
     "Ingress other/intruder also matches but does not serve it: HostOwned: host x.io belongs to namespace default"),
    ("use-regex on the host makes its Prefix paths caseless, by whole path elements",
     [ingress("r", [("x.io", [path("/v[0-9]+/", "api", ptype="ImplementationSpecific"), path("/cart", "web")])],
              annotations={A + "use-regex": "true"})],
     {"url": "http://x.io/CART/items"},
     {"location": "~* ^/cart(/|$)", "ingress": "default/r", "backend": {"service": "default/web", "port": 80}},
     "from Ingress default/r rules[0].http.paths[1]"),
    ("use-regex on the host: /cartoon is not /cart",
     [ingress("r", [("x.io", [path("/v[0-9]+/", "api", ptype="ImplementationSpecific"), path("/cart", "web")])],
              annotations={A + "use-regex": "true"})],
     {"url": "http://x.io/cartoon"},
     {"status": 404, "ingress": None, "location": "/"}, "no backend: nginx answers 404"),
    ("canary by cookie matches its value exactly",
     [ingress("main", [("x.io", [path("/", "web")])]),
      ingress("can", [("x.io", [path("/", "canary")])], created=NEW,
              annotations={A + "canary": "true", A + "canary-by-cookie": "beta-user"})],
     {"url": "http://x.io/", "headers": ("Cookie: a=b; beta-user=always",)},
     {"backend": {"service": "default/canary", "port": 80}}, "canary-by-cookie beta-user=always: canary backend"),
    ("canary by cookie: another case decides nothing",
     [ingress("main", [("x.io", [path("/", "web")])]),
      ingress("can", [("x.io", [path("/", "canary")])], created=NEW,
              annotations={A + "canary": "true", A + "canary-by-cookie": "beta-user"})],
     {"url": "http://x.io/", "headers": ("Cookie: beta-user=Always",)},
     {"backend": {"service": "default/web", "port": 80}}, "canary-by-cookie beta-user: 'Always' decides nothing"),
    ("canary by header: always",
     [ingress("main", [("x.io", [path("/", "web")])]),
      ingress("can", [("x.io", [path("/", "canary")])], created=NEW,
              annotations={A + "canary": "true", A + "canary-by-header": "X-Canary"})],
     {"url": "http://x.io/", "headers": ("X-Canary: always",)},
     {"ingress": "default/main", "backend": {"service": "default/canary", "port": 80}},
     "canary-by-header X-Canary: 'always': canary backend"),
    ("canary by header: never",
     [ingress("main", [("x.io", [path("/", "web")])]),
      ingress("can", [("x.io", [path("/", "canary")])], created=NEW,
              annotations={A + "canary": "true", A + "canary-by-header": "X-Canary"})],
     {"url": "http://x.io/", "headers": ("X-Canary: never",)},
     {"backend": {"service": "default/web", "port": 80}}, "main backend"),
    ("canary by header value, not sent",
     [ingress("main", [("x.io", [path("/", "web")])]),
      ingress("can", [("x.io", [path("/", "canary")])], created=NEW,
              annotations={A + "canary": "true", A + "canary-by-header": "X-Canary",
                           A + "canary-by-header-value": "yes"})],
     {"url": "http://x.io/"},
     {"backend": {"service": "default/web", "port": 80}}, "canary-by-header X-Canary: not sent"),
    ("refused Ingress",
     [ingress("bad", [("x.io", [path("/", "web")])], annotations={A + "proxy-body-size": "lots"})],
     {"url": "http://x.io/"},
     {"status": 404, "ingress": None, "backend": None},
     "no route: Ingress default/bad was refused: InvalidAnnotation"),
    ("unknown host",
     [ingress("a", [("x.io", [path("/", "web")])])],
     {"url": "http://nowhere.io/"},
     {"status": 404, "ingress": None, "backend": None, "location": "/"},
     "no server_name matches nowhere.io: the default server"),
    ("wildcard host, one label",
     [ingress("w", [("*.x.io", [path("/", "web")])])],
     {"url": "http://a.x.io/"},
     {"ingress": "default/w", "backend": {"service": "default/web", "port": 80}}, "wildcard *.x.io"),
    ("wildcard host does not take two labels",
     [ingress("w", [("*.x.io", [path("/", "web")])])],
     {"url": "http://a.b.x.io/"},
     {"status": 404, "ingress": None}, "the default server"),
    ("Ingress of another controller",
     [ingress("theirs", [("x.io", [path("/", "web")])], cls="theirs")],
     {"url": "http://x.io/"},
     {"status": 404}, "Ingress default/theirs also matches but is not served by this controller"),
    ("no endpoints: 503",
     [ingress("e", [("x.io", [path("/", "empty")])])],
     {"url": "http://x.io/"},
     {"status": 503, "ingress": "default/e", "backend": None}, "no usable endpoints"),
    ("TLS host: plain HTTP redirected",
     [ingress("t", [("x.io", [path("/", "web")])], tls=[{"hosts": ["x.io"], "secretName": "x"}]),
      tls_secret("x", "x.io")],
     {"url": "http://x.io/a?b=1"},
     {"status": 308, "ingress": "default/t"}, "redirected to HTTPS"),
    ("TLS host over https: proxied",
     [ingress("t", [("x.io", [path("/", "web")])], tls=[{"hosts": ["x.io"], "secretName": "x"}]),
      tls_secret("x", "x.io")],
     {"url": "https://x.io/a"},
     {"status": None, "backend": {"service": "default/web", "port": 80}}, "exact server_name x.io"),
    ("denylist",
     [ingress("d", [("x.io", [path("/", "web")])], annotations={A + "denylist-source-range": "10.1.0.0/16"})],
     {"url": "http://x.io/", "client_ip": "10.1.2.3"},
     {"status": 403, "backend": None}, "denylist-source-range 10.1.0.0/16 matches"),
    ("permanent redirect",
     [ingress("p", [("x.io", [path("/", "web")])], annotations={A + "permanent-redirect": "https://y.io/"})],
     {"url": "http://x.io/"},
     {"status": 301, "redirect": "https://y.io/"}, "redirect annotation"),
    ("URI normalised before matching",
     [ingress("a", [("x.io", [path("/", "web"), path("/api", "api")])])],
     {"url": "http://x.io/static/../api//v1"},
     {"backend": {"service": "default/api", "port": 80}, "location": "/api/"}, "longest matching prefix"),
    ("named port kept as written; Host header beats the URL",
     [ingress("n", [("x.io", [path("/", "web", port="http")])])],
     {"url": "http://127.0.0.1:8080/", "headers": ("Host: X.io:8080",)},
     {"backend": {"service": "default/web", "port": "http"}}, "exact server_name x.io"),
]


@pytest.mark.parametrize("objects,request_,expected,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_explain(objects: list[KubeObject], request_: dict[str, Any], expected: dict[str, Any], reason: str) -> None:
    e = ask(objects, **request_)
    got = e.to_json()
    for k, v in expected.items():
        assert got[k] == v, (k, got)
    assert any(reason in r for r in got["reasons"]), got["reasons"]


def test_candidates_are_listed_in_nginx_order_with_the_winner_marked() -> None:
    e = ask([ingress("a", [("x.io", [path("/", "web"), path("/api", "api"), path("/api/x", "web", ptype="Exact")])])],
            "http://x.io/api/y")
    assert [(c.match, c.matched, c.chosen) for c in e.candidates] == [
        ("= /api/x", False, False), ("= /api", False, False), ("/api/", True, True), ("/", True, False)]


def test_server_level_annotations_come_from_the_hosts_oldest_ingress() -> None:
    e = ask([ingress("owner", [("x.io", [path("/", "web")])], created=OLD,
                     annotations={A + "server-alias": "alias.x.io", A + "proxy-body-size": "2m"}),
             ingress("later", [("x.io", [path("/api", "api")])], created=NEW,
                     annotations={A + "server-alias": "ignored.x.io", A + "proxy-body-size": "9m"})],
            "http://x.io/api")
    assert e.ingress == "default/later"
    assert set(e.annotations) == {(A + "proxy-body-size", "9m", "default/later"),
                                  (A + "server-alias", "alias.x.io", "default/owner")}
    assert "server-level settings of x.io come from its oldest Ingress default/owner" in e.reasons


def test_endpoints_show_ready_and_terminating() -> None:
    e = ask([ingress("a", [("x.io", [path("/", "old")])]),
             endpoint_slice("old", ["10.9.9.9"], name="old-term",
                            conditions={"ready": False, "serving": True, "terminating": True})],
            "http://x.io/")
    assert [(x.address, x.ready, x.terminating, x.used) for x in e.endpoints] == [
        ("10.0.0.4", True, False, True), ("10.9.9.9", False, True, False)]


@pytest.mark.parametrize("raw,uri", [("/a/./b", "/a/b"), ("/a/../b", "/b"), ("//a///b/", "/a/b/"),
                                     ("/%61pi", "/api"), ("/..", None), ("/a/..", "/")])
def test_uri_normalisation(raw: str, uri: str | None) -> None:
    assert normalise_path(raw) == uri


GATEWAY_WORLD = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ours}
spec: {controllerName: ingressctl.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec: {gatewayClassName: ours, listeners: [{name: h, protocol: HTTP, port: 9000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [x.io]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: X-Env, value: beta}]}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
    backendRefs: [{name: web, port: 80}]
  - backendRefs: [{name: web, port: 80}]
"""


@pytest.mark.parametrize("url, headers, status, backend, route, reason", [
    ("http://x.io:9000/api/x", ("X-Env: beta",), None, "default/api", "HTTPRoute default/r rules[0].matches[0]",
     "first match in the spec's precedence order"),
    ("http://x.io:9000/api/x", (), None, "default/web", "HTTPRoute default/r rules[3].matches[0]", ""),
    ("http://x.io:9000/old/a?q=1", (), 302, None, "HTTPRoute default/r rules[1].matches[0]",
     "RequestRedirect: 302 to http://x.io:9000/new/a?q=1"),
    ("http://x.io:9000/v1/users", (), None, "default/web", "HTTPRoute default/r rules[2].matches[0]",
     "URLRewrite: the backend is sent the path /v2/users"),
    ("http://x.io/api/x", ("X-Env: beta",), 404, None, "None", "the default server"),  # the Ingress port
    ("http://y.io:9000/", (), 404, None, "None", "the default server"),  # the listener port's default server
])
def test_explain_gateway_routes(url, headers, status, backend, route, reason):
    import yaml

    from ingressctl.objects import parse_object
    objects = [parse_object(d) for d in yaml.safe_load_all(GATEWAY_WORLD)]
    e = ask(objects, url, headers)
    assert e.status == status and (e.backend and e.backend["service"]) == backend, e.reasons
    assert str(e.route) == route
    assert any(reason in r for r in e.reasons), e.reasons
