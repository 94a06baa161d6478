"""The endpoint fast path: which changes skip the build, and the Lua-balanced rendering."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.ingress.backends import refresh_upstreams
from ingressctl.ingress.model import IngressConfig
from ingressctl.nginx.defaultcert import ensure_default_certificate
from ingressctl.nginx.dynamic import EndpointPusher, endpoint_table, lua_available
from ingressctl.store import Snapshot, Store

from .factory import endpoint_slice, ingress, ingress_class, path, run_build, service

BASE = [ingress_class(), service(), endpoint_slice(addresses=["10.0.0.1"]), ingress("a", [("a.com", [path("/")])])]


def _model():
    return run_build(*BASE).model


@pytest.mark.parametrize("objects, services, result", [
    pytest.param([endpoint_slice(addresses=["10.0.0.1", "10.0.0.2"])], {"default/web"}, ["10.0.0.1", "10.0.0.2"],
                 id="more-endpoints-fast"),
    pytest.param([endpoint_slice(addresses=["10.0.0.9"])], {"default/web"}, ["10.0.0.9"], id="replaced-fast"),
    pytest.param([endpoint_slice(addresses=["10.0.0.1"], conditions={"ready": False})], {"default/web"}, None,
                 id="last-endpoint-gone-needs-full-build"),
    pytest.param([endpoint_slice("other", addresses=["10.0.0.5"])], {"default/other"}, None,
                 id="service-without-upstream-needs-full-build"),
])
def test_refresh_upstreams(objects, services, result):
    snap = Snapshot.of([o for o in BASE if o.meta.kind != "EndpointSlice"] + objects)
    model = refresh_upstreams(_model(), snap, services)
    if result is None:
        assert model is None
    else:
        assert model is not None
        assert [e.address for e in model.upstreams[0].endpoints] == result
        assert model.servers == _model().servers, "servers are never rebuilt on the fast path"


def test_non_round_robin_upstreams_stay_static():
    ann = {"nginx.ingress.kubernetes.io/load-balance": "least_conn"}
    model = run_build(ingress_class(), service(), endpoint_slice(),
                      ingress("a", [("a.com", [path("/")])], annotations=ann)).model
    variant = next(u for u in model.upstreams if u.load_balance == "least_conn")
    assert not variant.lua_balanced and variant.name not in endpoint_table(model)
    snap = Snapshot.of([service(), endpoint_slice(addresses=["10.0.0.7"])])
    assert refresh_upstreams(model, snap, {"default/web"}) is None, "a static variant needs a full sync"


def test_store_change_names_the_services_of_changed_slices():
    store = Store()
    changes = []
    store.subscribe(changes.append)
    store.apply(endpoint_slice("web", name="s1"))
    store.delete("EndpointSlice", "default", "s1")
    store.replace(["EndpointSlice"], [endpoint_slice("api", name="s2")])
    assert [c.services for c in changes] == [{"default/web"}, {"default/web"}, {"default/api"}]
    assert all(c.kinds == {"EndpointSlice"} for c in changes)


def test_pusher_writes_the_table_file(tmp_path: Path):
    pusher = EndpointPusher(tmp_path)
    table = endpoint_table(_model())
    pusher.write_file(table)
    assert (tmp_path / "endpoints.txt").read_text() == "default-web-80 10.0.0.1|8080\n"
    pusher.loaded(table)
    assert pusher.push(table) == 0, "nothing differs: nothing is sent"


def test_lua_balanced_config_passes_nginx_t(tmp_path: Path):
    assert lua_available(), "nginx-extras (Lua module) is required: run scripts/setup.sh"
    store = Store()
    store.replace(None, BASE)
    opts = ControllerOptions(state_dir=tmp_path, dynamic_endpoints=True)
    rendered = Controller(store, opts).render_snapshot(store.snapshot())
    prefix = opts.prefix
    EndpointPusher(prefix).install_lua()
    for d in ("tmp", "logs"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    ensure_default_certificate(prefix / "certs" / "default.pem")
    (prefix / "nginx.conf").write_text(rendered.text)
    # one shared block: the plain location names its upstream in $proxy_upstream_name
    assert "balance(ngx.var.ingressctl_upstream)" in rendered.text and "upstream default-web-80" not in rendered.text
    assert 'set $ingressctl_upstream "default-web-80";' in rendered.text
    assert "proxy_pass http://ingressctl_balancer;" in rendered.text and "10.0.0.1:8080" not in rendered.text
    r = subprocess.run(["nginx", "-t", "-q", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_push_lines_sends_only_the_touched_upstreams_and_keeps_the_file_whole(tmp_path: Path):
    """The fast path: one Service changed among many; nginx is sent that line only, and the
    file a reload reads still holds every upstream."""
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler

    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

        def address_string(self) -> str:
            return "unix"

    server = socketserver.UnixStreamServer(str(tmp_path / "status.sock"), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pusher = EndpointPusher(tmp_path)
        pusher.loaded({"a": "10.0.0.1|80", "b": "10.0.0.2|80", "c": "10.0.0.3|80"})
        assert pusher.push_lines({"b": "10.0.0.2|80"}) == 0 and bodies == []  # unchanged: nothing sent
        assert pusher.push_lines({"b": "10.0.0.9|80"}) == 1
        assert bodies == [b"b 10.0.0.9|80\n"]
        assert (tmp_path / "endpoints.txt").read_text() == "a 10.0.0.1|80\nb 10.0.0.9|80\nc 10.0.0.3|80\n"
    finally:
        server.shutdown()
        server.server_close()


def test_only_directly_named_plain_upstreams_share_the_balancer_block():
    """A canary, a TLS backend or a static (hashing) variant keeps its own upstream block."""
    from ingressctl.ingress.build import BuildOptions, build
    from tests.factory import endpoint_slice as slice_
    from tests.factory import ingress, ingress_class, path, service

    a = "nginx.ingress.kubernetes.io/"
    objs = [ingress_class(), *(o for n in ("web", "tls", "hash", "main", "can")
                               for o in (service(n), slice_(n, ["10.0.0.1"]))),
            ingress("plain", [("plain.test", [path("/", "web")])]),
            ingress("tls", [("tls.test", [path("/", "tls")])], annotations={a + "backend-protocol": "HTTPS"}),
            ingress("hash", [("hash.test", [path("/", "hash")])], annotations={a + "upstream-hash-by": "$request_uri"}),
            ingress("main", [("c.test", [path("/", "main")])]),
            ingress("can", [("c.test", [path("/", "can")])], annotations={a + "canary": "true",
                                                                          a + "canary-weight": "10"})]
    model = build(Snapshot.of(objs), BuildOptions()).model
    assert model.balanced_directly == {"default-web-80"}


def test_an_upstream_a_gateway_route_names_keeps_its_block():
    """A Service an Ingress and an HTTPRoute both send to: the route's dispatch names the
    upstream through a variable, so its block must stay."""
    import yaml

    from ingressctl.gateway.build import GatewayOptions
    from ingressctl.gateway.merge import with_gateway
    from ingressctl.ingress.build import BuildOptions, build
    from ingressctl.objects import parse_object
    from tests.factory import endpoint_slice as slice_
    from tests.factory import ingress, ingress_class, path, service

    gw = yaml.safe_load_all("""
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
spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: web, port: 80}]}]}
""")
    objs = [ingress_class(), service("web"), slice_("web", ["10.0.0.1"]), service("only"), slice_("only", ["10.0.0.2"]),
            ingress("a", [("a.test", [path("/", "web"), path("/only", "only")])]), *(parse_object(d) for d in gw)]
    snap = Snapshot.of(objs)
    model = with_gateway(build(snap, BuildOptions()), snap, GatewayOptions()).model
    assert model.balanced_directly == {"default-only-80"}


def _server(host: str, cert: str = "c.pem", **kw):
    from ingressctl.ingress.model import Server
    return Server(host=host, locations=(), certificate=cert, **{"tls": bool(cert), **kw})


@pytest.mark.parametrize("servers, table", [
    pytest.param([_server("a.com")], {"@cert|-|a.com": "c.pem"}, id="exact"),
    pytest.param([_server("*.a.com")], {"@cert|-|*.a.com": "c.pem"}, id="ingress-wildcard-one-label"),
    pytest.param([_server("*.a.com", ports=(8443,), any_depth_wildcard=True)], {"@cert|8443|**.a.com": "c.pem"},
                 id="gateway-wildcard-any-depth-on-its-listener"),
    pytest.param([_server("a.com", aliases=("b.com", "*.c.com"))],
                 {"@cert|-|a.com": "c.pem", "@cert|-|b.com": "c.pem", "@cert|-|*.c.com": "c.pem"}, id="aliases"),
    pytest.param([_server("a.com", "")], {}, id="default-certificate-no-entry"),
    pytest.param([_server("")], {}, id="default-server-own-context"),
    pytest.param([_server("a.com", client_ca="ca.pem")], {}, id="client-certificates-own-context"),
    pytest.param([_server("a.com", config=IngressConfig(ssl_ciphers="HIGH"))], {}, id="ssl-ciphers-own-context"),
    pytest.param([_server("a.com", ports=(8080,), tls=False)], {}, id="plain-http-listener"),
    pytest.param([_server("a.com", "1.pem"), _server("a.com", "2.pem")], {"@cert|-|a.com": "1.pem"},
                 id="same-name-first-wins-as-nginx"),
])
def test_certificate_table(servers, table):
    import dataclasses

    from ingressctl.nginx.dynamic import certificate_table
    model = dataclasses.replace(_model(), servers=tuple(servers))
    assert certificate_table(model) == table
    assert set(table) <= set(endpoint_table(model, certificates=True))
    assert not set(table) & set(endpoint_table(model)), "only with certificates by Lua"


def test_lua_certificates_leave_servers_without_ssl_context():
    from ingressctl.nginx.render import RenderContext, Renderer

    from .factory import tls_secret
    ann = {"nginx.ingress.kubernetes.io/ssl-ciphers": "HIGH"}
    objs = [ingress_class(), service(), endpoint_slice(), tls_secret("s", "a.com"), tls_secret("t", "b.com"),
            ingress("a", [("a.com", [path("/")])], tls=[{"hosts": ["a.com"], "secretName": "s"}]),
            ingress("b", [("b.com", [path("/")])], tls=[{"hosts": ["b.com"], "secretName": "t"}], annotations=ann)]
    model = run_build(*objs).model
    lua = Renderer().render(model, RenderContext(prefix="/p", dynamic=True))
    static = Renderer().render(model, RenderContext(prefix="/p", dynamic=False))
    assert lua.count("ssl_client_hello_by_lua_block") == 1
    assert "certs/default-s-" not in lua and lua.count("certs/default-t-") == 2, "only b.com (ssl-ciphers) names its own"
    assert "ssl_certificate $ingressctl_default_certificate" in static and "client_hello" not in static
    assert static.count("certs/default-s-") == 2


@pytest.mark.parametrize("dynamic", [True, False])
def test_rotating_a_lua_served_certificate_keeps_the_config_id(tmp_path: Path, dynamic: bool):
    from .factory import tls_secret
    tls = [{"hosts": ["a.com"], "secretName": "s"}]
    base = [ingress_class(), service(), endpoint_slice(), ingress("a", [("a.com", [path("/")])], tls=tls)]
    ids, lua = [], []
    for _ in range(2):
        store = Store()
        store.replace(None, [*base, tls_secret("s", "a.com")])  # a new key and certificate each time
        rendered = Controller(store, ControllerOptions(state_dir=tmp_path, dynamic_endpoints=dynamic)) \
            .render_snapshot(store.snapshot())
        ids.append(rendered.config_id)
        lua.append(rendered.lua_files)
    assert (ids[0] == ids[1]) is dynamic, "only a certificate the Lua table names is left out of the id"
    if dynamic:
        assert lua[0] and lua[0] != lua[1], "the rotated file is the one written on the push path"
    else:
        assert not lua[0]


def _with_ca(secret):
    import dataclasses
    return dataclasses.replace(secret, data={**secret.data, "ca.crt": secret.data["tls.crt"]})


def _tls_objects(annotations=None, ca=False):
    from .factory import tls_secret
    tls = [{"hosts": ["a.com"], "secretName": "s"}]
    secret = tls_secret("s", "a.com")
    return [ingress_class(), service(), endpoint_slice(), _with_ca(secret) if ca else secret,
            ingress("a", [("a.com", [path("/")])], tls=tls, annotations=annotations)]


def _rotated(objs, secret):
    return [secret if o.meta.kind == "Secret" and o.meta.name == secret.meta.name else o for o in objs]


@pytest.mark.parametrize("case", ["rotated", "unchanged", "unused", "deleted", "invalid", "own-context",
                                  "also-client-ca"])
def test_refresh_certificates(case):
    from ingressctl.ingress.tls import refresh_certificates

    from .factory import NOW, tls_secret
    ann = {"nginx.ingress.kubernetes.io/ssl-ciphers": "HIGH"} if case == "own-context" else None
    objs = _tls_objects(ann, ca=case == "also-client-ca")
    if case == "also-client-ca":  # another host's client CA (a.com stays served by Lua)
        objs.append(ingress("b", [("b.com", [path("/")])],
                            annotations={"nginx.ingress.kubernetes.io/auth-tls-secret": "default/s"}))
    model = run_build(*objs).model
    if case == "also-client-ca":
        assert model.auth_files, "the Secret's certificate doubles as the client CA"
    new = {"invalid": tls_secret("s", "a.com", mismatched_key=True), "unchanged": objs[3],
           "also-client-ca": _with_ca(tls_secret("s", "a.com"))}.get(case, tls_secret("s", "a.com"))
    after = [o for o in objs if o.meta.kind != "Secret"] if case == "deleted" else _rotated(objs, new)
    names = {"unused": {"default/other"}}.get(case, {"default/s"})
    refreshed = refresh_certificates(model, Snapshot.of(after), names, NOW)
    if case == "unchanged":
        assert refreshed is model
    elif case == "rotated":
        assert refreshed is not None
        full = run_build(*after).model
        assert refreshed.servers == full.servers and set(refreshed.certificates) == set(full.certificates), \
            "the fast path gives what a full build gives"
        assert refreshed.servers != model.servers
    else:
        assert refreshed is None, "needs a full build"


def test_a_parsed_certificate_is_still_checked_against_the_clock():
    """certificate_from_secret keeps what parsing a Secret gave; the validity window is checked
    on every call, so a kept certificate that expired meanwhile is refused."""
    import datetime as dt

    from ingressctl.ingress.tls import TLSError, certificate_from_secret

    from .factory import NOW, tls_secret
    secret = tls_secret("s", "a.com", not_after=NOW + dt.timedelta(days=1))
    assert certificate_from_secret(secret, NOW).secret == "s"
    with pytest.raises(TLSError, match="expired"):
        certificate_from_secret(secret, NOW + dt.timedelta(days=2))
    with pytest.raises(TLSError, match="not valid before"):
        certificate_from_secret(secret, NOW - dt.timedelta(days=60))
    bad = tls_secret("s", "a.com", mismatched_key=True)  # the same name, another object: parsed again
    for _ in range(2):
        with pytest.raises(TLSError, match="does not match"):
            certificate_from_secret(bad, NOW)


def test_certificate_metrics_follow_a_rotation_and_skip_unchanged_models():
    from prometheus_client import CollectorRegistry, generate_latest

    from ingressctl.metrics_compat import IngressNginxMetrics

    from .factory import tls_secret
    registry = CollectorRegistry()
    compat = IngressNginxMetrics(registry, "ingressctl", "test")
    objs = _tls_objects()

    def serials() -> set[str]:
        return set(re.findall(r'ssl_certificate_info\{[^}]*serial_number="(\d+)"', generate_latest(registry).decode()))

    model = run_build(*objs).model
    compat.certificates(model)
    first = serials()
    compat.certificates(run_build(*objs).model)  # an equal model: nothing recomputed, nothing lost
    assert serials() == first and len(first) == 1
    compat.certificates(run_build(*_rotated(objs, tls_secret("s", "a.com"))).model)
    assert serials() != first and len(serials()) == 1


def test_selected_endpoints_follow_new_slices_and_keep_unchanged_ones():
    from ingressctl.ingress.backends import select_endpoints
    svc = service()
    first = Snapshot.of([svc, endpoint_slice(addresses=["10.0.0.1"])])
    a = select_endpoints(first, svc, svc.ports[0])
    assert select_endpoints(first, svc, svc.ports[0]) is a, "the same slices: the same answer, not recomputed"
    changed = Snapshot.of([svc, endpoint_slice(addresses=["10.0.0.2"])])
    assert [e.address for e in select_endpoints(changed, svc, svc.ports[0])] == ["10.0.0.2"]
    more = Snapshot.of([svc, endpoint_slice(addresses=["10.0.0.2"]), endpoint_slice(name="b", addresses=["10.0.0.3"])])
    assert [e.address for e in select_endpoints(more, svc, svc.ports[0])] == ["10.0.0.2", "10.0.0.3"]
    assert select_endpoints(Snapshot.of([svc]), svc, svc.ports[0]) == ()


def test_added_files_skip_names_the_live_configuration_holds(tmp_path: Path):
    """Names are content-addressed: an unchanged sync reads no certificate file again."""
    from ingressctl.nginx.process import Nginx
    nginx = Nginx(tmp_path)
    nginx.live_files = frozenset({"held.pem"})
    nginx.add_files({"held.pem": b"old", "new.pem": b"new"})
    assert not (tmp_path / "certs" / "held.pem").exists(), "a held name is neither read nor written"
    assert (tmp_path / "certs" / "new.pem").read_bytes() == b"new"
    assert nginx.live_files == {"held.pem", "new.pem"}
