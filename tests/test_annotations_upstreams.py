"""Build-level annotation resolution: upstream variants per backend protocol, error-page backends."""

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


@pytest.mark.parametrize(("default_backend", "error_upstream", "ignored"), [
    ("default/errors:80", "default-errors-80", False),  # --default-backend-service
    ("", "", True),
])
def test_custom_http_errors_without_annotation_use_the_global_default_backend(default_backend, error_upstream,
                                                                              ignored):
    errors = [service("errors"), endpoint_slice("errors", ["10.0.0.9"], name="errors-1")]
    result = run_build(ingress_class(), service(), endpoint_slice(), *errors,
                       ingress("e", [("e.test", [path("/")])],
                               annotations={"nginx.ingress.kubernetes.io/custom-http-errors": "503"}),
                       default_backend=default_backend)
    loc = result.model.server("e.test").locations[0]
    assert loc.error_upstream == error_upstream
    assert ("CustomErrorsIgnored" in {p.reason for p in result.problems}) == ignored
