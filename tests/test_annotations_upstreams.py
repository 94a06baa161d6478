"""Upstream variants chosen by annotations: one nginx upstream block per way of talking to a Service."""

from __future__ import annotations

import pytest

from .factory import endpoint_slice, ingress, ingress_class, path, run_build, service


@pytest.mark.parametrize(("annotations", "upstream"), [
    ({}, "default-web-80"),
    ({"backend-protocol": "HTTP"}, "default-web-80"),
    ({"backend-protocol": "HTTPS"}, "default-web-80-https"),
    ({"backend-protocol": "GRPC"}, "default-web-80-grpc"),
    ({"backend-protocol": "grpcs"}, "default-web-80-grpcs"),
    ({"backend-protocol": "HTTPS", "load-balance": "least_conn"}, "default-web-80-https-least-conn"),
])
def test_backend_protocol_never_shares_keepalive_connections(annotations, upstream):
    """Two Ingresses, one Service: kept-alive TLS/h2 connections must not serve a plain-HTTP location."""
    prefixed = {f"nginx.ingress.kubernetes.io/{k}": v for k, v in annotations.items()}
    result = run_build(ingress_class(), service(), endpoint_slice(),
                       ingress("plain", [("plain.test", [path("/")])]),
                       ingress("other", [("other.test", [path("/")])], annotations=prefixed))
    names = {u.name for u in result.model.upstreams}
    assert {"default-web-80", upstream} <= names
    other = result.model.server("other.test").locations[0].upstream
    assert other == upstream
    assert result.model.server("plain.test").locations[0].upstream == "default-web-80"
