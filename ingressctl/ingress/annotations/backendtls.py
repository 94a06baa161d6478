"""TLS towards the backend: client certificate, verification, SNI, protocols and ciphers.

With backend-protocol HTTPS or GRPCS, nginx speaks TLS to the endpoints; these annotations
say how. The Secret of proxy-ssl-secret must be in the Ingress's own namespace: tls.crt and
tls.key are the client certificate nginx presents (mTLS), ca.crt the CAs it verifies the
backend against.

Design choice: verification fails closed. ingress-nginx ignores every proxy-ssl-* annotation
when proxy-ssl-secret is missing, so `proxy-ssl-verify: "on"` alone silently verifies nothing;
here that Ingress is refused with the reason, and a Secret that is missing or unreadable
makes the location answer 503 instead of proxying unverified.
"""

from __future__ import annotations

from .. import values as v
from . import Annotation, register, register_check
from .config import IngressConfig
from .shapes import ciphers, on_off, secret_ref


def tls_protocols(value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(value.split()))
    if not items:
        raise v.InvalidValue("no TLS version")
    return tuple(v.enum(p, ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")) for p in items)


ANNOTATIONS = (
    Annotation("proxy-ssl-secret", "proxy_ssl_secret", secret_ref, "Secret name", "",
               "Secret of the Ingress's namespace: tls.crt + tls.key, the client certificate presented to the "
               "backend; ca.crt, the CAs the backend's certificate must chain to (proxy-ssl-verify).",
               risk="Medium"),
    Annotation("proxy-ssl-verify", "proxy_ssl_verify", on_off, "on/off", "off",
               "Verify the backend's certificate against ca.crt of proxy-ssl-secret (needs it)."),
    Annotation("proxy-ssl-verify-depth", "proxy_ssl_verify_depth", lambda s: v.integer(s, 1, 100), "int", "1",
               "Maximum depth of the backend's certificate chain."),
    Annotation("proxy-ssl-name", "proxy_ssl_name", v.host, "host name", "(the upstream name)",
               "Name the backend's certificate is verified against, and sent as SNI with proxy-ssl-server-name."),
    Annotation("proxy-ssl-server-name", "proxy_ssl_server_name", on_off, "on/off", "off",
               "Send the name (proxy-ssl-name) as SNI to the backend."),
    Annotation("proxy-ssl-protocols", "proxy_ssl_protocols", tls_protocols, "TLS versions", "TLSv1.2 TLSv1.3",
               "TLS versions offered to the backend (space-separated)."),
    Annotation("proxy-ssl-ciphers", "proxy_ssl_ciphers", ciphers, "OpenSSL cipher list", "DEFAULT",
               "Ciphers offered to the backend."),
    Annotation("proxy-ssl-location-only", "proxy_ssl_location_only", v.boolean, "bool", "true",
               "Accepted for compatibility; ingressctl always applies proxy-ssl-* to this Ingress's locations "
               "only (ingress-nginx's default, false, also applies them to every location of the host, "
               "other Ingresses' included)."),
)
register(*ANNOTATIONS)


@register_check
def _verify_needs_a_ca(cfg: IngressConfig) -> list[tuple[str, str]]:
    if cfg.proxy_ssl_verify == "on" and cfg.proxy_ssl_secret is None:
        return [("proxy-ssl-verify", "proxy-ssl-verify needs proxy-ssl-secret (its ca.crt); ingress-nginx would "
                 "ignore it and not verify")]
    return []
