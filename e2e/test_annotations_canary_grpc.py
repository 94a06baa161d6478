"""e2e: canary routing (header > cookie > weight) and a gRPC backend behind backend-protocol GRPC.

One `ingressctl run` (real nginx) serves both. The gRPC backend is a grpcio server with a
generic handler (raw bytes, no protoc); the client speaks gRPC over TLS + HTTP/2 to the
HTTPS listener, trusting a CA made here that signed the host's certificate.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent import futures

import grpc
import pytest

from .annotation_kit import KeyPair, ingress, make_cert, service, started_controller, tls_secret
from .harness import Backends

CANARY = {"canary": "true", "canary-by-header": "X-Canary", "canary-by-cookie": "use_canary",
          "canary-weight": "30"}


def _wait(request: bytes, context: grpc.ServicerContext) -> bytes:
    time.sleep(2.5)
    return b"late"


def _say(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    meta = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
    return json.dumps({"echo": request.decode(), "metadata": meta}).encode()


@pytest.fixture(scope="module")
def grpc_backend():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler("test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(_say)})
    slow = grpc.method_handlers_generic_handler("test.Slow", {"Wait": grpc.unary_unary_rpc_method_handler(_wait)})
    server.add_generic_rpc_handlers((handler, slow))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


@pytest.fixture(scope="module")
def server_ca() -> KeyPair:
    return make_cert("Test Server CA", ca=True)


@pytest.fixture(scope="module")
def ctl(grpc_backend, server_ca):
    b = Backends()
    main = [("/", "Prefix", "stable")]
    canary = [("/", "Prefix", "canary")]
    m = {
        "svc.yaml": service("stable", [b.start("stable")]) + "\n---\n" + service("canary", [b.start("canary")]),
        "main.yaml": ingress("main", "canary.test", main),
        "main-canary.yaml": ingress("main-canary", "canary.test", canary, CANARY, created="2026-01-02T00:00:00Z"),
        "value.yaml": ingress("value", "value.test", main),
        "value-canary.yaml": ingress("value-canary", "value.test", canary, {
            "canary": "true", "canary-by-header": "X-Region", "canary-by-header-value": "eu-west"},
            created="2026-01-02T00:00:00Z"),
        "all.yaml": ingress("all", "all.test", main),
        "all-canary.yaml": ingress("all-canary", "all.test", canary, {
            "canary": "true", "canary-weight": "5", "canary-weight-total": "5"}, created="2026-01-02T00:00:00Z"),
        "svc-grpc.yaml": service("grpc", [grpc_backend]),
        "grpc-tls.yaml": tls_secret("grpc-tls", make_cert("grpc.test", issuer=server_ca, dns="grpc.test")),
        "grpc.yaml": ingress("grpc", "grpc.test", [("/", "Prefix", "grpc")], {"backend-protocol": "GRPC"},
                             tls_secret="grpc-tls"),
        "grpc-slow.yaml": ingress("grpc-slow", "grpc.test", [("/test.Slow", "Prefix", "grpc")], {
            "backend-protocol": "GRPC", "proxy-read-timeout": "1"}),
    }
    try:
        yield from started_controller(m, lambda c: c.get("value.test").status == 200)
    finally:
        b.stop()


def _backends(ctl, host: str, n: int, headers: dict[str, str] | None = None) -> Counter[str]:
    return Counter(ctl.get(host, "/", headers=headers or {}).backend for _ in range(n))


def test_canary_shares_host_and_path_without_a_conflict(ctl):
    log = ctl.log_path.read_text()
    assert "PathConflict" not in log and "CanaryConflict" not in log
    assert set(_backends(ctl, "canary.test", 40)) == {"stable", "canary"}


def test_canary_by_header(ctl):
    assert _backends(ctl, "canary.test", 20, {"X-Canary": "always"}) == Counter(canary=20)
    assert _backends(ctl, "canary.test", 20, {"X-Canary": "never"}) == Counter(stable=20)


def test_canary_by_cookie(ctl):
    assert _backends(ctl, "canary.test", 20, {"Cookie": "a=b; use_canary=always"}) == Counter(canary=20)
    assert _backends(ctl, "canary.test", 30, {"Cookie": "use_canary=never"}) == Counter(stable=30)


def test_header_beats_cookie_beats_weight(ctl):
    both = {"X-Canary": "never", "Cookie": "use_canary=always"}
    assert _backends(ctl, "canary.test", 20, both) == Counter(stable=20)
    both = {"X-Canary": "always", "Cookie": "use_canary=never"}
    assert _backends(ctl, "canary.test", 20, both) == Counter(canary=20)
    # a header value other than always/never defers to the cookie, then to the weight
    assert _backends(ctl, "canary.test", 20, {"X-Canary": "maybe", "Cookie": "use_canary=always"}) == \
        Counter(canary=20)


def test_canary_weight_over_400_requests(ctl):
    seen = _backends(ctl, "canary.test", 400)
    share = seen["canary"] / 400
    assert 0.22 <= share <= 0.38, seen  # canary-weight 30 of 100; ±8 points is ~3.5 standard deviations


def test_canary_by_header_value(ctl):
    assert _backends(ctl, "value.test", 10, {"X-Region": "eu-west"}) == Counter(canary=10)
    assert _backends(ctl, "value.test", 10, {"X-Region": "us-east"}) == Counter(stable=10)
    assert _backends(ctl, "value.test", 10, {"X-Region": "always"}) == Counter(stable=10)  # only the value counts
    assert _backends(ctl, "value.test", 10) == Counter(stable=10)  # no weight: nothing else goes to the canary


def test_canary_weight_equal_to_weight_total_takes_everything(ctl):
    assert _backends(ctl, "all.test", 20) == Counter(canary=20)
    assert _backends(ctl, "all.test", 5, {"Cookie": "use_canary=always"}) == Counter(canary=5)


@pytest.fixture
def grpc_channel(ctl, server_ca):
    creds = grpc.ssl_channel_credentials(root_certificates=server_ca.cert_pem)
    channel = grpc.secure_channel(f"127.0.0.1:{ctl.https_port}", creds, options=[
        ("grpc.ssl_target_name_override", "grpc.test"), ("grpc.default_authority", "grpc.test")])
    yield channel
    channel.close()


def test_grpc_backend_through_the_tls_listener(grpc_channel):
    say = grpc_channel.unary_unary("/test.Echo/Say")
    answer = json.loads(say(b"hello", timeout=5, metadata=(("x-trace", "t-1"),)))
    assert answer["echo"] == "hello", answer
    meta = answer["metadata"]
    assert meta["x-trace"] == "t-1", answer  # client metadata passes through nginx
    # the standard proxy headers reach gRPC backends too (grpc_set_header, not proxy_set_header)
    assert (meta["x-real-ip"], meta["x-forwarded-for"], meta["x-forwarded-proto"]) == ("127.0.0.1", "127.0.0.1", "https")
    assert meta["x-forwarded-host"] == "grpc.test" and len(meta["x-request-id"]) == 32
    with pytest.raises(grpc.RpcError) as err:
        say(b"missing", timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == "no such thing"


def test_grpc_read_timeout_from_proxy_read_timeout(grpc_channel):
    wait = grpc_channel.unary_unary("/test.Slow/Wait")
    with pytest.raises(grpc.RpcError) as err:  # the backend would answer after 2.5 s (grpc default: 60 s)
        wait(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "504" in err.value.details(), err.value
