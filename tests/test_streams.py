"""TCP/UDP services from ConfigMaps: entries parsed as ingress-nginx reads them, bad ones
reported on the ConfigMap and left out, and every accepted one passes the real `nginx -t`."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.ingress.streams import StreamError, parse_entry, stream_services
from ingressctl.nginx.defaultcert import ensure_default_certificate
from ingressctl.nginx.render import RenderContext, Renderer
from ingressctl.objects import ServiceBackend, parse_object
from ingressctl.store import Store

from .factory import endpoint_slice, ingress, ingress_class, path, run_build, service
from .test_golden import nginx_binary


def _objects(tcp: dict[str, str], udp: dict[str, str] | None = None) -> list[dict]:  # type: ignore[type-arg]
    return [{"kind": "ConfigMap", "metadata": {"name": "tcp", "namespace": "ingress"}, "data": tcp},
            {"kind": "ConfigMap", "metadata": {"name": "udp", "namespace": "ingress"}, "data": udp or {}},
            {"kind": "Service", "metadata": {"name": "db", "namespace": "data"},
             "spec": {"ports": [{"name": "pg", "port": 5432}, {"name": "dns", "port": 53, "protocol": "UDP"}]}},
            {"kind": "EndpointSlice", "addressType": "IPv4",
             "metadata": {"name": "db-1", "namespace": "data", "labels": {"kubernetes.io/service-name": "db"}},
             "ports": [{"name": "pg", "port": 15432}, {"name": "dns", "port": 1053, "protocol": "UDP"}],
             "endpoints": [{"addresses": ["10.0.0.7"]}]}]


def _snap(tcp: dict[str, str], udp: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    store = Store()
    store.replace(None, [parse_object(o) for o in _objects(tcp, udp)])
    return store.snapshot()


@pytest.mark.parametrize(("port", "value", "expected"), [
    ("9000", "data/db:5432", (9000, "data", ServiceBackend("db", 5432), False, False)),
    ("9000", "data/db:pg:PROXY", (9000, "data", ServiceBackend("db", "pg"), True, False)),
    ("5", "data/db:5432:PROXY:PROXY", (5, "data", ServiceBackend("db", 5432), True, True)),
])
def test_entries_parse_as_ingress_nginx_reads_them(port: str, value: str, expected: tuple) -> None:  # type: ignore[type-arg]
    assert parse_entry(port, value) == expected


@pytest.mark.parametrize(("port", "value"), [
    ("0", "data/db:5432"), ("70000", "data/db:5432"), ("x", "data/db:5432"), ("9000", "db:5432"),
    ("9000", "data/db"), ("9000", "data/db:5432:PROXY:PROXY:PROXY"), ("9000", "data/db:5432;evil"),
    ("9000", "data/db:0"), ("9000", "Data/db:5432"), ("9000", "data/db:5432:proxy"),
])
def test_bad_entries_are_refused(port: str, value: str) -> None:
    with pytest.raises(StreamError):
        parse_entry(port, value)


def test_services_are_built_and_bad_entries_reported_not_raised() -> None:
    snap = _snap({"9000": "data/db:pg", "80": "data/db:pg", "9001": "data/missing:1", "9002": "nonsense"},
                 {"5353": "data/db:dns"})
    services, problems = stream_services(snap, "ingress/tcp", "ingress/udp", frozenset({80, 443}))
    assert [(s.protocol, s.port, s.service, [e.hostport for e in s.endpoints]) for s in services] == [
        ("TCP", 9000, "data/db", ["10.0.0.7:15432"]), ("UDP", 5353, "data/db", ["10.0.0.7:1053"])]
    reasons = sorted(p.reason for p in problems)
    assert reasons == ["InvalidStreamService", "ServiceNotFound", "StreamPortInUse"]
    assert all(p.kind == "ConfigMap" and p.name == "tcp" for p in problems)


def test_a_missing_configmap_is_reported() -> None:
    services, problems = stream_services(_snap({}), "ingress/nope", "", frozenset())
    assert services == () and [p.reason for p in problems] == ["ConfigMapNotFound"]


def test_the_stream_block_passes_the_real_nginx_t(tmp_path: Path) -> None:
    snap = _snap({"9000": "data/db:pg:PROXY:PROXY"}, {"5353": "data/db:dns"})
    services, _ = stream_services(snap, "ingress/tcp", "ingress/udp", frozenset())
    prefix = tmp_path / "nginx"
    for d in ("tmp", "logs", "certs"):
        (prefix / d).mkdir(parents=True)
    ensure_default_certificate(prefix / "certs" / "default.pem")
    built = run_build(ingress_class(), service(), endpoint_slice(), ingress("a", [("a.test", [path("/")])])).model
    model = dataclasses.replace(built, streams=services)
    ctx = RenderContext(prefix=str(prefix), listen=("127.0.0.1:",)).for_model(model)
    conf = prefix / "nginx.conf"
    conf.write_text(Renderer().render(model, ctx))
    assert "proxy_protocol on;" in conf.read_text() and "listen 127.0.0.1:5353 udp;" in conf.read_text()
    r = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(prefix), "-c", str(conf)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr



GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ours}
spec: {controllerName: ingressctl.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: data}
spec:
  gatewayClassName: ours
  listeners: [{name: web, protocol: HTTP, port: 9100}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: data}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: db, port: 5432}]}]
"""


def test_a_gateway_listener_port_is_not_given_to_a_tcp_service(tmp_path: Path) -> None:
    store = Store()
    store.replace(None, [parse_object(o) for o in [*_objects({"9100": "data/db:pg", "9101": "data/db:pg"}),
                                                   *yaml.safe_load_all(GATEWAY)]])
    ctl = Controller(store, ControllerOptions(state_dir=tmp_path, tcp_services="ingress/tcp"))
    result = ctl.build(store.snapshot())
    assert 9100 in {p for s in result.model.servers for p in s.ports}  # the Gateway listener is served
    assert [s.port for s in result.model.streams] == [9101]
    assert any(p.reason == "StreamPortInUse" and "9100" in p.message for p in result.problems)
