"""e2e: GRPCRoute in local mode: real nginx, grpcio backends, h2c on an HTTP listener and
HTTP/2 by ALPN on an HTTPS listener (service/method and header matches, precedence,
RequestHeaderModifier, weights)."""

from __future__ import annotations

import json
from collections import Counter
from concurrent import futures

import grpc
import pytest

from .annotation_kit import make_cert, tls_secret
from .harness import INGRESS_CLASS, LocalController, free_port, manifests_for_backends, wait_until

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
  - {name: h2c, protocol: HTTP, port: H2C}
  - {name: tls, protocol: HTTPS, port: TLS, hostname: grpc.gw.test, tls: {certificateRefs: [{name: grpc-tls}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["grpc.gw.test"]
  rules:
  - matches: [{method: {service: test.Echo, method: Say}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: echo-say}]}
    backendRefs: [{name: a, port: 80}]
  - matches: [{method: {service: test.Echo}, headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{name: b, port: 80}]
  - matches: [{method: {type: RegularExpression, method: "Sp.*"}}]
    backendRefs: [{name: b, port: 80}]
  - matches: [{method: {service: test.Split}}]
    backendRefs: [{name: a, port: 80, weight: 1}, {name: b, port: 80, weight: 1}]
  - backendRefs: [{name: b, port: 80}]
"""

METHODS = ("/test.Echo/Say", "/test.Echo/Other", "/test.Other/Speak", "/test.Other/Do", "/test.Split/Any")


def _server(name: str) -> tuple[grpc.Server, int]:
    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        meta = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        return json.dumps({"backend": name, "metadata": meta}).encode()

    def handler(call: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(answer)

    class Any(grpc.GenericRpcHandler):
        def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            return handler(handler_call_details)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Any(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    servers = {name: _server(name) for name in ("a", "b")}
    h2c, tls = free_port(), free_port()
    pair = make_cert("grpc.gw.test", dns="grpc.gw.test")
    controller = LocalController(tmp_path_factory.mktemp("gateway-grpc"))
    controller.write("00-class.yaml", INGRESS_CLASS)
    for name, (_, port) in servers.items():
        controller.write(f"svc-{name}.yaml", manifests_for_backends("default", name, [port]))
    controller.write("tls.yaml", tls_secret("grpc-tls", pair))
    controller.write("gw.yaml", GATEWAY.replace("H2C", str(h2c)).replace("TLS", str(tls)))
    controller.start()
    plain = grpc.insecure_channel(f"127.0.0.1:{h2c}", options=[("grpc.default_authority", "grpc.gw.test")])
    secure = grpc.secure_channel(f"127.0.0.1:{tls}", grpc.ssl_channel_credentials(root_certificates=pair.cert_pem),
                                 options=[("grpc.ssl_target_name_override", "grpc.gw.test"),
                                          ("grpc.default_authority", "grpc.gw.test")])
    try:
        for ch in (plain, secure):
            wait_until(lambda ch=ch: _call(ch, "/test.Echo/Say")["backend"] == "a", 20, "GRPCRoute live")
        yield {"h2c": plain, "tls": secure, "controller": controller}
    finally:
        plain.close()
        secure.close()
        controller.stop()
        for server, _ in servers.values():
            server.stop(grace=None)


def _call(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> dict[str, object]:
    try:
        reply = channel.unary_unary(method)(b"ping", metadata=metadata, timeout=5)
    except grpc.RpcError as e:  # not live yet (wait_until retries on AssertionError-free falsy results)
        return {"backend": f"error {e.code()}"}
    return json.loads(reply)


@pytest.mark.parametrize("listener", ["h2c", "tls"])
@pytest.mark.parametrize("method, metadata, backend", [
    ("/test.Echo/Say", (), "a"),  # service and method: the most specific match
    ("/test.Echo/Say", (("x-canary", "yes"),), "a"),  # a longer method match outranks more headers
    ("/test.Echo/Other", (("x-canary", "yes"),), "b"),  # the service with the header
    ("/test.Echo/Other", (), "b"),  # falls to the catch-all rule
    ("/test.Other/Speak", (), "b"),  # a method regex
    ("/test.Other/Do", (), "b"),
])
def test_grpc_route_matching(gw, listener, method, metadata, backend):
    assert _call(gw[listener], method, metadata)["backend"] == backend


def test_grpc_request_header_modifier(gw):
    said = _call(gw["h2c"], "/test.Echo/Say")
    assert said["metadata"].get("x-route") == "echo-say"  # type: ignore[union-attr]
    other = _call(gw["h2c"], "/test.Other/Do")
    assert "x-route" not in other["metadata"]  # type: ignore[operator]


def test_grpc_weighted_backends(gw):
    counts = Counter(_call(gw["h2c"], "/test.Split/Any")["backend"] for _ in range(200))
    assert set(counts) == {"a", "b"} and 60 <= counts["a"] <= 140, counts
