"""Routing annotations: regex paths and HTTPS redirects."""

from __future__ import annotations

from .. import values as v
from . import Annotation, register

register(
    Annotation("use-regex", "use_regex", v.boolean, "bool", "false",
               "Treat ImplementationSpecific paths of this Ingress as case-sensitive regular expressions."),
    Annotation("ssl-redirect", "ssl_redirect", v.boolean, "bool", "true (ConfigMap ssl-redirect)",
               "Redirect HTTP to HTTPS (308) when the host has TLS."),
    Annotation("force-ssl-redirect", "force_ssl_redirect", v.boolean, "bool", "false",
               "Redirect HTTP to HTTPS (308) even when the host has no TLS section."),
)
