"""e2e: Gateway API HTTPRoutes in local mode, real nginx and echo backends (the spec's
matching precedence, hostname intersection and allowedRoutes scenarios)."""

from __future__ import annotations

import pytest

from tests.factory import tls_secret

from .harness import (
    INGRESS_CLASS,
    Backends,
    LocalController,
    Response,
    free_port,
    manifests_for_backends,
    request,
    wait_until,
)

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ours}
spec: {controllerName: ingressctl.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: ours
  listeners:
  - {name: wild, protocol: HTTP, port: PORT, hostname: "*.gw.test"}
  - {name: other, protocol: HTTP, port: PORT, hostname: "other.test"}
"""

ROUTES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: older, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: wild}]
  hostnames: ["a.gw.test", "b.elsewhere.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /p}}]
    backendRefs: [{name: b, port: 80}]
  - matches: [{path: {type: Exact, value: /p/exact}}]
    backendRefs: [{name: c, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /h}, headers: [{name: x-env, value: Canary}]}]
    backendRefs: [{name: c, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /h}, method: POST}]
    backendRefs: [{name: b, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /q}, queryParams: [{name: v, value: "2"}]}]
    backendRefs: [{name: c, port: 80}]
  - matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
    backendRefs: [{name: c, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: nosuch, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: newer, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /p}}]
    backendRefs: [{name: c, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /new}}]
    backendRefs: [{name: c, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["w.gw.test"]
  rules:
  - backendRefs: [{name: a, port: 80, weight: 3}, {name: b, port: 80, weight: 1}, {name: c, port: 80, weight: 0}]
  - matches: [{path: {type: PathPrefix, value: /half}}]
    backendRefs: [{name: a, port: 80}, {name: nosuch, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirects, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["r.gw.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: new.test, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /new}}
  - matches: [{path: {type: PathPrefix, value: /original-prefix}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}
  - matches: [{path: {type: PathPrefix, value: /tls}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: PathPrefix, value: /port}}]
    filters: [{type: RequestRedirect, requestRedirect: {port: 8443}}]
  - backendRefs: [{name: b, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: headers, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["hm.gw.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /hm}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Set, value: "set by route"}], remove: [X-Drop],
                              add: [{name: X-Add, value: added-by-route}]}
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /resp}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: Content-Type, value: text/plain}], remove: [X-Backend],
                               add: [{name: X-Resp-Add, value: added}]}
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /appended}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: X-Backend, value: extra}]}
    backendRefs: [{name: a, port: 80}]
  - backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rewrites, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["rw.gw.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}]
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.test, path: {type: ReplaceFullPath, replaceFullPath: /one}}
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /mirrored}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}}}]
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 500ms}
    backendRefs: [{name: a, port: 80}]
  - backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tenant, namespace: other, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, namespace: default}]
  hostnames: ["a.gw.test"]
  rules:
  - backendRefs: [{name: a, port: 80}]
"""


TLS_GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: default}
spec:
  gatewayClassName: ours
  listeners:
  - name: https
    protocol: HTTPS
    port: TLSPORT
    hostname: secure.gw.test
    tls: {certificateRefs: [{name: cert, namespace: certs}]}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: gateways-read-certs, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]
  to: [{group: "", kind: Secret}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{name: tls}]
  rules: [{backendRefs: [{name: c, port: 80}]}]
"""


def _secret_yaml(secret) -> str:  # type: ignore[no-untyped-def]
    import base64

    import yaml
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                           "metadata": {"name": secret.meta.name, "namespace": secret.meta.namespace},
                           "data": {k: base64.b64encode(v).decode() for k, v in secret.data.items()}})


class Listener:
    """Requests to the Gateway listener's own port (not the Ingress --http-port)."""

    def __init__(self, port: int, controller: LocalController) -> None:
        self.port, self.controller = port, controller

    def get(self, host: str, path: str = "/", **kw: object) -> Response:
        return request(self.port, host, path, **kw)  # type: ignore[arg-type]


SHARED_GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shared, namespace: default}
spec:
  gatewayClassName: ours
  listeners:
  - {name: http, protocol: HTTP, port: HTTPPORT}
  - name: https
    protocol: HTTPS
    port: HTTPSPORT
    hostname: secure.shared.test
    tls: {certificateRefs: [{name: shared-cert}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: both, namespace: default}
spec:
  parentRefs: [{name: shared}]
  hostnames: ["secure.shared.test"]
  rules: [{matches: [{path: {type: PathPrefix, value: /both}}], backendRefs: [{name: c, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tls-only, namespace: default}
spec:
  parentRefs: [{name: shared, sectionName: https}]
  rules: [{matches: [{path: {type: PathPrefix, value: /tls-only}}], backendRefs: [{name: a, port: 80}]}]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    port, tls_port = free_port(), free_port()
    backends = Backends()
    controller = LocalController(tmp_path_factory.mktemp("gateway"))
    controller.write("00-class.yaml", INGRESS_CLASS)
    controller.start()
    for name in ("a", "b", "c", "m"):
        controller.write(f"svc-{name}.yaml", manifests_for_backends("default", name, [backends.start(name)]))
    controller.write("gw.yaml", GATEWAY.replace("PORT", str(port)))
    controller.write("tls.yaml", _secret_yaml(tls_secret("cert", "secure.gw.test", ns="certs")) + "---\n"
                     + TLS_GATEWAY.replace("TLSPORT", str(tls_port)))
    controller.write("routes.yaml", ROUTES)
    controller.write("shared.yaml", _secret_yaml(tls_secret("shared-cert", "secure.shared.test")) + "---\n"
                     + SHARED_GATEWAY.replace("HTTPPORT", str(controller.http_port))
                     .replace("HTTPSPORT", str(controller.https_port)))
    listener = Listener(port, controller)
    listener.tls_port = tls_port
    listener.mirror = backends.servers[-1]  # m's echo server: its `seen` lists what it answered
    try:
        controller.wait_for(lambda: listener.get("z.gw.test", "/new").backend == "c", what="routes live")
        yield listener
    finally:
        controller.stop()
        backends.stop()


@pytest.mark.parametrize("host, path, kw, expected", [
    ("a.gw.test", "/", {}, "a"),  # the older catch-all of namespace other is not allowed (from: Same)
    ("a.gw.test", "/pp", {}, "a"),  # PathPrefix matches whole path elements
    ("a.gw.test", "/p", {}, "b"),  # equal match in two routes: the older route wins
    ("a.gw.test", "/p/x", {}, "b"),
    ("a.gw.test", "/p/exact", {}, "c"),  # Exact before any prefix
    ("a.gw.test", "/h", {"headers": {"X-Env": "Canary"}}, "c"),
    ("a.gw.test", "/h", {"headers": {"X-Env": "canary"}}, "a"),  # header values are case-sensitive
    ("a.gw.test", "/h", {"method": "POST"}, "b"),  # method ranks before headers
    ("a.gw.test", "/h", {"method": "POST", "headers": {"X-Env": "Canary"}}, "b"),
    ("a.gw.test", "/q?v=2", {}, "c"),
    ("a.gw.test", "/q?v=3", {}, "a"),
    ("a.gw.test", "/re/42", {}, "c"),
    ("a.gw.test", "/re/x", {}, "a"),
    ("a.gw.test", "/missing", {}, 500),  # backendRef to a missing Service answers 500
    ("a.gw.test", "/new", {}, "a"),  # a's own hostname ranks before the wildcard route's longer path
    ("z.gw.test", "/new", {}, "c"),  # route without hostnames takes the listener's wildcard
    ("deep.z.gw.test", "/new", {}, "c"),  # a Gateway wildcard matches any number of labels
    ("b.elsewhere.test", "/", {}, 404),  # outside the listener's hostname: not served
    ("other.test", "/new", {}, "c"),
    ("other.test", "/", {}, 404),
    ("unknown.test", "/new", {}, 404),  # the listener port's own default server
])
def test_gateway_routing(gw, host, path, kw, expected):
    r = gw.get(host, path, **kw)
    assert (r.backend if isinstance(expected, str) else r.status) == expected, (r.status, r.body[:200])



def _counts(gw, path: str, n: int = 400) -> dict[object, int]:
    out: dict[object, int] = {}
    for _ in range(n):
        r = gw.get("w.gw.test", path)
        key = r.backend or r.status
        out[key] = out.get(key, 0) + 1
    return out


def test_weighted_backend_refs_split_by_weight(gw):
    """weights 3:1:0 over 400 requests: ~300/~100/0 (bounds are > 5 standard deviations wide)."""
    counts = _counts(gw, "/")
    assert set(counts) == {"a", "b"}, counts
    assert 250 <= counts["a"] <= 350, counts


def test_a_missing_backend_keeps_its_share_and_answers_500(gw):
    counts = _counts(gw, "/half")
    assert set(counts) == {"a", 500}, counts
    assert 140 <= counts["a"] <= 260, counts


@pytest.mark.parametrize("path, status, location", [
    ("/old/x?q=1", 301, "http://new.test:PORT/new?q=1"),  # no scheme: the listener's port; the query is kept
    ("/original-prefix/lemon?q=1", 302, "http://r.gw.test:PORT/replacement-prefix/lemon?q=1"),
    ("/original-prefix", 302, "http://r.gw.test:PORT/replacement-prefix"),
    ("/original-prefixes", 200, None),  # a prefix matches whole path elements
    ("/tls/x?q=1", 302, "https://r.gw.test/tls/x?q=1"),  # the scheme's well-known port is left out
    ("/port", 302, "http://r.gw.test:8443/port"),
    ("/other", 200, None),
])
def test_request_redirect(gw, path, status, location):
    r = gw.get("r.gw.test", path)
    assert (r.status, r.headers.get("location")) == (status, location and location.replace("PORT", str(gw.port)))
    if location is None:
        assert r.backend == "b"


def test_gateway_routes_are_not_on_the_ingress_port(gw):
    """A listener is served on its declared port only: the Ingress --http-port does not serve it."""
    assert gw.controller.get("z.gw.test", "/new").status == 404
    assert gw.get("z.gw.test", "/new").backend == "c"


def test_https_listener_terminates_tls_with_a_certificate_granted_across_namespaces(gw):
    wait_until(lambda: request(gw.tls_port, "secure.gw.test", tls=True).backend == "c", 10, "HTTPS listener live")
    r = request(gw.tls_port, "secure.gw.test", tls=True)
    assert (r.backend, r.peer_cn) == ("c", "secure.gw.test")
    other = request(gw.tls_port, "other.gw.test", tls=True)  # the port's default server, default certificate
    assert other.status == 404 and other.peer_cn != "secure.gw.test"


@pytest.mark.parametrize("path, x_set, x_drop", [
    ("/hm", "set by route", None),  # set replaces the client's value; remove drops the header
    ("/other", "client", "client"),  # another rule of the same host leaves both alone
])
def test_request_header_modifier(gw, path, x_set, x_drop):
    r = gw.get("hm.gw.test", path, headers={"X-Set": "client", "X-Drop": "client"})
    sent = r.json()["headers"]
    assert (r.backend, sent.get("x-set"), sent.get("x-drop")) == ("a", x_set, x_drop)
    assert sent.get("x-forwarded-host") == "hm.gw.test"  # the standard proxy headers are still sent


@pytest.mark.parametrize(("client", "sent"), [
    (None, "added-by-route"), ("from-client", "from-client,added-by-route"),  # as the conformance tests expect
])
def test_request_header_modifier_add_appends(gw, client, sent):
    headers = {"X-Add": client} if client else {}
    assert gw.get("hm.gw.test", "/hm", headers=headers).json()["headers"].get("x-add") == sent
    other = gw.get("hm.gw.test", "/elsewhere", headers=headers).json()["headers"].get("x-add")
    assert other == client  # another rule of the route leaves it alone


def test_response_header_modifier(gw):
    r = gw.get("hm.gw.test", "/resp")
    assert r.status == 200 and r.headers["content-type"] == "text/plain" and r.headers["x-resp-add"] == "added"
    assert "x-backend" not in r.headers
    assert gw.get("hm.gw.test", "/appended").headers["x-backend"] == "a,extra"  # the backend's value, then ours
    other = gw.get("hm.gw.test", "/other")  # another rule of the route: the backend's headers as they were
    assert other.headers["content-type"] == "application/json" and other.backend == "a"
    assert "x-resp-add" not in other.headers


@pytest.mark.parametrize("path, sent, host", [
    ("/prefix/one/two?x=1", "/one/two?x=1", "rw.gw.test"),  # the matched prefix replaced, the query kept
    ("/prefix/one", "/one", "rw.gw.test"),
    ("/prefix/one/a%20b", "/one/a%20b", "rw.gw.test"),  # nginx escapes the new path again
    ("/strip/three", "/three", "rw.gw.test"),  # a "/" replacement strips the prefix
    ("/strip", "/", "rw.gw.test"),  # never an empty path
    ("/full/x/y?q=1", "/one?q=1", "rewritten.test"),  # ReplaceFullPath and the hostname
    ("/other/a%2Fb?y=2", "/other/a%2Fb?y=2", "rw.gw.test"),  # other rules: the path exactly as sent
])
def test_url_rewrite(gw, path, sent, host):
    r = gw.get("rw.gw.test", path)
    assert (r.status, r.json()["path"], r.json()["host"]) == (200, sent, host)
    assert r.json()["headers"].get("x-forwarded-host") == "rw.gw.test"


def test_request_mirror_copies_only_its_rule(gw):
    seen = gw.mirror.seen
    seen.clear()
    r = gw.get("rw.gw.test", "/mirrored/x?k=v")
    assert (r.status, r.backend) == (200, "a")
    wait_until(lambda: ("GET", "/mirrored/x?k=v", "rw.gw.test") in seen, 5, "the mirror got a copy")
    gw.get("rw.gw.test", "/other")
    gw.get("rw.gw.test", "/mirrored/y")  # the mirror answers in order: once y is seen, /other was not sent
    wait_until(lambda: ("GET", "/mirrored/y", "rw.gw.test") in seen, 5, "the mirror got the second copy")
    assert [p for _, p, _ in seen] == ["/mirrored/x?k=v", "/mirrored/y"]


@pytest.mark.parametrize("path, delay, status", [
    ("/slow", "1.5", 504),  # timeouts.request 500ms: the backend's late answer is not waited for
    ("/slow", "0.05", 200),
    ("/other", "1.5", 200),  # another rule of the route keeps nginx's own timeouts
])
def test_rule_timeouts(gw, path, delay, status):
    """nginx's own read timeout is 60 s: a 504 for a 1.5 s backend can only be the rule's."""
    assert gw.get("rw.gw.test", path, headers={"X-Echo-Delay": delay}).status == status


EXPLAIN_HOSTS = ("a.gw.test", "z.gw.test", "deep.z.gw.test", "b.elsewhere.test", "other.test", "unknown.test",
                 "r.gw.test", "rw.gw.test", "hm.gw.test", "w.gw.test")
EXPLAIN_PATHS = ("/", "/p", "/pp", "/p/x", "/p/exact", "/h", "/q?v=2", "/q?v=3", "/re/42", "/re/x", "/missing",
                 "/new", "/old/x?q=1", "/original-prefix/lemon", "/tls/x", "/port", "/prefix/one/two", "/full/x",
                 "/strip", "/hm", "/resp", "/half")
EXPLAIN_EXTRA = ({}, {"headers": {"X-Env": "Canary"}}, {"method": "POST"})


def test_explain_agrees_with_nginx_on_gateway_routes(gw):
    """Every request through the listener and through `ingressctl explain` (the listener port in
    the URL): the same backend, or the same status and Location nginx answers itself."""
    from ingressctl.cli import build_parser
    from ingressctl.commands.inputs import build_like_controller, class_filter, load_snapshot
    from ingressctl.explain import explain, parse_request

    args = build_parser().parse_args(["explain", "--manifests", str(gw.controller.manifests), "http://x/"])
    snap, _ = load_snapshot(args)
    result = build_like_controller(args, snap)
    mismatches = []
    for host in EXPLAIN_HOSTS:
        for path in EXPLAIN_PATHS:
            for kw in EXPLAIN_EXTRA:
                headers = [f"{k}: {v}" for k, v in kw.get("headers", {}).items()]
                req = parse_request(f"http://{host}:{gw.port}{path}", headers, kw.get("method", "GET"))
                e = explain(snap, result, req, class_filter(args), gw.controller.http_port,
                            gw.controller.https_port)
                if "half" in path or host == "w.gw.test":
                    continue  # weighted: explain names the first share; the split itself is measured above
                got = gw.get(host, path, **kw)
                if e.status is not None:
                    expected = (e.status, e.redirect or None)
                    answer = (got.status, got.headers.get("location"))
                else:
                    expected = (200, e.backend and e.backend["service"].partition("/")[2])
                    answer = (got.status, got.json()["backend"] if got.status == 200 else got.backend)  # X-Backend
                    # may be removed by a ResponseHeaderModifier: the echo's body names it too
                if expected != answer:
                    mismatches.append(f"{host}{path} {kw}: explain {expected}, nginx {answer}; {e.reasons}")
    assert not mismatches, "\n".join(mismatches[:10])
    e = explain(snap, result, parse_request(f"http://rw.gw.test:{gw.port}/prefix/one/two"), class_filter(args))
    assert str(e.route) == "HTTPRoute default/rewrites rules[0].matches[0]"
    assert any("URLRewrite: the backend is sent the path /one/two" in r for r in e.reasons), e.reasons


@pytest.mark.parametrize("path, tls, expected", [
    ("/both", True, "c"), ("/both", False, "c"),  # one route through both listeners
    ("/tls-only", True, "a"), ("/tls-only", False, 404),  # the HTTPS listener's route: not on plain HTTP
])
def test_listeners_on_the_ingress_ports_share_the_ingress_servers(gw, path, tls, expected):
    """An HTTP listener on --http-port and an HTTPS listener on --https-port: the Ingress
    servers' own ports, each route match tested against its listener's scheme."""
    port = gw.controller.https_port if tls else gw.controller.http_port
    wait_until(lambda: request(port, "secure.shared.test", "/both", tls=tls).backend == "c", 10, "shared listeners live")
    r = request(port, "secure.shared.test", path, tls=tls)
    assert (r.backend if isinstance(expected, str) else r.status) == expected, (r.status, r.body[:200])
    if tls:
        assert r.peer_cn == "secure.shared.test"  # the listener's certificate
