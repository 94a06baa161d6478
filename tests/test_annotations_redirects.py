"""ssl-redirect / force-ssl-redirect are decided per Ingress (per location), as in ingress-nginx."""

from __future__ import annotations

import pytest

from .factory import endpoint_slice, ingress, ingress_class, path, run_build, service, tls_secret

A = "nginx.ingress.kubernetes.io/"


def _redirects(old: dict[str, str], new: dict[str, str], tls: bool) -> dict[str, bool]:
    """path -> ssl_redirect of host h.com served by an older Ingress (/) and a newer one (/new)."""
    t = [{"hosts": ["h.com"], "secretName": "h-tls"}] if tls else None
    result = run_build(ingress_class(), service(), endpoint_slice(), tls_secret("h-tls", "h.com"),
                       ingress("old", [("h.com", [path("/")])], annotations=old, tls=t),
                       ingress("new", [("h.com", [path("/new")])], annotations=new, tls=t,
                               created="2026-01-02T00:00:00Z"))
    server = result.model.server("h.com")
    return {loc.modifier + loc.path: loc.ssl_redirect for loc in server.locations}


@pytest.mark.parametrize(("old", "new", "tls", "expected"), [
    ({}, {}, True, {"/": True, "=/new": True, "/new/": True}),
    ({}, {A + "ssl-redirect": "false"}, True, {"/": True, "=/new": False, "/new/": False}),
    ({A + "ssl-redirect": "false"}, {}, True, {"/": False, "=/new": True, "/new/": True}),
    ({}, {}, False, {"/": False, "=/new": False, "/new/": False}),
    ({}, {A + "force-ssl-redirect": "true"}, False, {"/": False, "=/new": True, "/new/": True}),
    ({A + "force-ssl-redirect": "true"}, {A + "ssl-redirect": "false"}, False,
     {"/": True, "=/new": False, "/new/": False}),
])
def test_ssl_redirect_per_ingress(old, new, tls, expected):
    assert _redirects(old, new, tls) == expected
