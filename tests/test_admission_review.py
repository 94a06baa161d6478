"""AdmissionReview protocol without sockets: status codes, uid echo, verdict shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingressctl.admission.server import StoreCheck, review
from ingressctl.admission.validate import ValidateOptions
from ingressctl.ingress.build import BuildOptions
from ingressctl.objects import parse_object
from ingressctl.store import Store

from .admission_fixtures import PREFIX, endpoint_slice, ingress, ingress_class, service


def admission_review(obj: Any = None, operation: str = "CREATE", uid: str = "uid-1", **over: Any) -> bytes:
    req: dict[str, Any] = {
        "uid": uid, "operation": operation, "namespace": "default", "name": "x",
        "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
        "object": obj if obj is not None else ingress("x", host="x.example.com"),
    }
    doc: dict[str, Any] = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}
    for k, v in over.items():
        if k.startswith("req_"):
            req[k[4:]] = v
        else:
            doc[k] = v
    return json.dumps(doc).encode()


@pytest.fixture
def check() -> StoreCheck:
    store = Store()
    store.replace(None, [parse_object(o) for o in (ingress_class(), service(), endpoint_slice(),
                                                   ingress("taken", host="a.example.com", path="/a"))])
    return StoreCheck(store, lambda snap: ValidateOptions(build=BuildOptions()))


def test_allowed_review_echoes_the_uid(check: StoreCheck) -> None:
    status, doc = review(admission_review(uid="abc-123"), check)
    assert status == 200
    assert doc == {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "abc-123", "allowed": True}}


def test_denied_review_has_403_status_and_message(check: StoreCheck) -> None:
    bad = ingress("x", host="x.example.com", annotations={PREFIX + "proxy-body-size": "1m;\nroot /etc;"})
    status, doc = review(admission_review(bad), check)
    resp = doc["response"]
    assert status == 200 and resp["allowed"] is False and resp["uid"] == "uid-1"
    assert resp["status"]["code"] == 403
    assert "ingressctl denied Ingress default/x" in resp["status"]["message"]
    assert "proxy-body-size" in resp["status"]["message"]


def test_conflict_is_denied_naming_the_other_ingress(check: StoreCheck) -> None:
    _, doc = review(admission_review(ingress("x", host="a.example.com", path="/a", created=None)), check)
    assert "already defined in Ingress default/taken" in doc["response"]["status"]["message"]


def test_warnings_are_passed_on(check: StoreCheck) -> None:
    tls = [{"hosts": ["x.example.com"], "secretName": "x-tls"}]
    _, doc = review(admission_review(ingress("x", host="x.example.com", tls=tls)), check)
    assert doc["response"]["allowed"] is True
    assert any("x-tls" in w and "not found" in w for w in doc["response"]["warnings"])


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_other_operations_are_allowed(check: StoreCheck, operation: str) -> None:
    _, doc = review(admission_review({"garbage": True}, operation=operation), check)
    assert doc["response"] == {"uid": "uid-1", "allowed": True}


@pytest.mark.parametrize("body,reason", [
    (b"{not json", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (admission_review(kind="AdmissionResponse"), "is not AdmissionReview"),
    (admission_review(apiVersion="admission.k8s.io/v1beta1"), "is not admission.k8s.io/v1"),
    (admission_review(req_uid=""), "request.uid is missing"),
    (admission_review(req_kind={"group": "", "version": "v1", "kind": "Service"}), "is not networking.k8s.io/v1"),
    (admission_review(req_kind={"group": "networking.k8s.io", "version": "v1beta1", "kind": "Ingress"}),
     "is not networking.k8s.io/v1"),
    (admission_review(req_object="a string"), "request.object is missing"),
])
def test_malformed_reviews_are_400_with_a_reason(check: StoreCheck, body: bytes, reason: str) -> None:
    status, doc = review(body, check)
    assert status == 400
    assert reason in doc["error"]


def test_store_changes_are_seen_by_the_next_review(check: StoreCheck) -> None:
    candidate = admission_review(ingress("x", host="b.example.com", path="/b", created=None))
    assert review(candidate, check)[1]["response"]["allowed"] is True
    check.store.apply(parse_object(ingress("other", host="b.example.com", path="/b")))
    assert review(candidate, check)[1]["response"]["allowed"] is False


def test_an_endpoint_write_keeps_the_ingress_view_so_the_host_index_is_not_refreshed(check: StoreCheck) -> None:
    store = check.store
    before = store.snapshot()
    store.apply(parse_object(endpoint_slice(addresses=("10.0.0.9",))))
    after = store.snapshot()
    assert after.version > before.version and after.ingresses is before.ingresses
    assert after.slices_by_service is not before.slices_by_service
    store.apply(parse_object(ingress("new", host="n.example.com")))
    newer = store.snapshot()
    assert newer.ingresses is not after.ingresses and "default/new" in newer.ingresses
    assert "default/new" not in after.ingresses  # an older snapshot never changes
    store.delete("Ingress", "default", "new")
    assert "default/new" not in store.snapshot().ingresses and "default/new" in newer.ingresses


def test_new_options_keep_the_host_index_unless_the_snippet_policy_changes() -> None:
    from ingressctl.ingress.settings import Settings

    store = Store()
    store.replace(None, [parse_object(o) for o in (ingress_class(), service(), ingress("taken", path="/a"))])
    options = {"now": ValidateOptions(build=BuildOptions())}
    check = StoreCheck(store, lambda snap: options["now"])
    check.warm()
    index = check._current(store.snapshot()).index
    options["now"] = ValidateOptions(build=BuildOptions(settings=Settings(hsts=False)))  # e.g. a ConfigMap edit
    assert check._current(store.snapshot()).index is index
    denied = review(admission_review(ingress("copy", path="/a", created=None)), check)[1]["response"]
    assert "already defined in Ingress default/taken" in denied["status"]["message"]
    options["now"] = ValidateOptions(build=BuildOptions(settings=Settings(allow_snippet_annotations=True)))
    assert check._current(store.snapshot()).index is not index


def test_the_request_namespace_fills_an_object_without_one(check: StoreCheck) -> None:
    check.store.apply(parse_object(ingress("taken", namespace="team-a", host="t.example.com", path="/t")))
    obj = ingress("copy", host="t.example.com", path="/t", created=None)
    del obj["metadata"]["namespace"]
    _, doc = review(admission_review(obj, req_namespace="team-a"), check)
    assert doc["response"]["status"]["message"] == (
        "ingressctl denied Ingress team-a/copy: host t.example.com path /t (prefix) is already defined in "
        "Ingress team-a/taken")


GATEWAY_OBJECTS = [
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "ours"},
     "spec": {"controllerName": "ingressctl.io/gateway-controller"}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "theirs"},
     "spec": {"controllerName": "example.com/other"}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
     "spec": {"gatewayClassName": "ours", "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080}]}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
     "metadata": {"name": "foreign", "namespace": "default"},
     "spec": {"gatewayClassName": "theirs", "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080}]}},
]


def http_route(parent: str = "gw", **rule: Any) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"parentRefs": [{"name": parent}], "hostnames": ["r.example.com"],
                     "rules": [{"backendRefs": [{"name": "svc", "port": 80}], **rule}]}}


ROUTE_KIND = {"req_kind": {"group": "gateway.networking.k8s.io", "version": "v1", "kind": "HTTPRoute"}}
BREAKOUT = 'x"; } location /evil { return 200 "pwned'


@pytest.fixture
def route_check() -> StoreCheck:
    store = Store()
    store.replace(None, [parse_object(o) for o in (ingress_class(), service(), endpoint_slice(), *GATEWAY_OBJECTS)])
    return StoreCheck(store, lambda snap: ValidateOptions(build=BuildOptions()))


@pytest.mark.parametrize("route, allowed, says", [
    (http_route(), True, ""),
    (http_route(filters=[{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                                                         "replacePrefixMatch": "/x"}}}]), True, ""),
    (http_route(matches=[{"path": {"type": "RegularExpression", "value": "/(a"}}]), False, "regex"),
    (http_route(matches=[{"headers": [{"name": "X-A", "value": BREAKOUT}]}]), True, ""),  # matched byte by byte
    (http_route(matches=[{"headers": [{"name": "X-A", "value": "a\nb"}]}]), False, "control"),
    (http_route(matches=[{"headers": [{"name": "X-A", "type": "RegularExpression", "value": BREAKOUT}]}]),
     False, "regex"),
    (http_route(filters=[{"type": "RequestHeaderModifier",
                          "requestHeaderModifier": {"set": [{"name": "X-A", "value": BREAKOUT}]}}]), False, "X-A"),
    (http_route(filters=[{"type": "RequestRedirect", "requestRedirect": {"hostname": "a.test; return 200"}}]),
     False, "host"),
    (http_route(filters=[{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                                         "replaceFullPath": "/a;b"}}}]), False, "path"),
    (http_route(timeouts={"request": "soon"}), False, "duration"),
    (http_route("foreign", matches=[{"path": {"type": "RegularExpression", "value": "/(a"}}]), True, ""),
    (http_route("nosuch"), True, ""),
])
def test_http_route_reviews(route_check: StoreCheck, route: dict[str, Any], allowed: bool, says: str) -> None:
    """Routes of our Gateways get the same injection tables; other controllers' routes pass untouched."""
    status, doc = review(admission_review(route, **ROUTE_KIND), route_check)
    resp = doc["response"]
    assert status == 200 and resp["allowed"] is allowed, resp
    if not allowed:
        assert "ingressctl denied HTTPRoute default/r" in resp["status"]["message"]
        assert says in resp["status"]["message"], resp["status"]["message"]
    elif route["spec"]["parentRefs"][0]["name"] != "gw":
        assert any("not validated" in w for w in resp["warnings"])


def test_an_http_route_review_runs_the_configuration_scan(route_check: StoreCheck, monkeypatch: Any) -> None:
    """The second line of defence: a value that slipped past route_invalid is caught by the scan."""
    import re

    from ingressctl.gateway import build
    monkeypatch.setattr(build, "_HEADER_VALUE_UNSAFE", re.compile(r"(?!x)x"))  # the value check forgets quotes
    sneaky = http_route(filters=[{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "X-A", "value": 'v";\n        root /etc;\n        set $x "'}]}}])
    _, doc = review(admission_review(sneaky, **ROUTE_KIND), route_check)
    assert doc["response"]["allowed"] is False
    assert "rendering refused" in doc["response"]["status"]["message"] or \
        "configuration scan" in doc["response"]["status"]["message"]


def test_grpc_route_reviews(route_check: StoreCheck) -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
             "metadata": {"name": "g", "namespace": "default"},
             "spec": {"parentRefs": [{"name": "gw"}], "rules": [{
                 "matches": [{"method": {"service": "pkg.Svc"}}], "backendRefs": [{"name": "svc", "port": 80}]}]}}
    kind = {"req_kind": {"group": "gateway.networking.k8s.io", "version": "v1", "kind": "GRPCRoute"}}
    _, doc = review(admission_review(route, **kind), route_check)
    assert doc["response"]["allowed"] is True, doc
    route["spec"]["rules"][0]["filters"] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "x-a", "value": BREAKOUT}]}}]
    _, doc = review(admission_review(route, **kind), route_check)
    assert doc["response"]["allowed"] is False
    assert "ingressctl denied GRPCRoute default/g" in doc["response"]["status"]["message"]
