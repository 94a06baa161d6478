"""Routing annotations: regex paths, rewrites, redirects and host aliases."""

from __future__ import annotations

from .. import values as v
from . import Annotation, register
from .shapes import ciphers, host_list, rewrite_target, secret_ref, url


def _redirect_code(value: str) -> int:
    return v.integer(value, 300, 308)


ANNOTATIONS: tuple[Annotation, ...] = (
    Annotation("use-regex", "use_regex", v.boolean, "bool", "false",
               "Treat ImplementationSpecific paths of this Ingress as case-insensitive regular expressions."),
    Annotation("ssl-redirect", "ssl_redirect", v.boolean, "bool", "true (ConfigMap ssl-redirect)",
               "Redirect HTTP to HTTPS (308) when the host has TLS."),
    Annotation("force-ssl-redirect", "force_ssl_redirect", v.boolean, "bool", "false",
               "Redirect HTTP to HTTPS (308) even when the host has no TLS section."),
    Annotation("preserve-trailing-slash", "preserve_trailing_slash", v.boolean, "bool", "false",
               "Keep a trailing '/' in the HTTPS redirect (by default one is dropped, as ingress-nginx does)."),
    Annotation("rewrite-target", "rewrite_target", rewrite_target, "URI with $1..$9", "",
               "Rewrite the request URI before proxying; $1..$9 are the path regex's capture groups. "
               "Implies use-regex.", risk="Medium"),
    Annotation("app-root", "app_root", v.path, "path", "",
               "Redirect requests for '/' to this path (302)."),
    Annotation("x-forwarded-prefix", "x_forwarded_prefix", v.path, "path", "",
               "Send this value to the backend in an X-Forwarded-Prefix header."),
    Annotation("permanent-redirect", "permanent_redirect", url, "URL", "",
               "Answer every request with a redirect to this URL (code from permanent-redirect-code)."),
    Annotation("permanent-redirect-code", "permanent_redirect_code", _redirect_code, "int 300-308", "301",
               "Status code of permanent-redirect."),
    Annotation("temporal-redirect", "temporal_redirect", url, "URL", "",
               "Answer every request with a 302 redirect to this URL (wins over permanent-redirect)."),
    Annotation("from-to-www-redirect", "from_to_www_redirect", v.boolean, "bool", "false",
               "Redirect www.<host> to <host> (or the reverse when the rule's host starts with www.) with 308."),
    Annotation("use-port-in-redirects", "use_port_in_redirects", v.boolean, "bool", "false",
               "Name nginx's listen port in redirects nginx itself makes (port_in_redirect on)."),
    Annotation("custom-headers", "custom_headers", secret_ref, "ConfigMap name", "",
               "ConfigMap of the Ingress's namespace whose entries (header: value) are added to responses; "
               "only the names the ConfigMap key global-allowed-response-headers lists (as ingress-nginx).",
               risk="Medium"),
    Annotation("server-alias", "server_alias", host_list, "host list", "",
               "Extra host names (comma-separated) served by the same server block; a name another "
               "Ingress already serves is dropped and reported.", risk="High"),
)
TLS = (
    Annotation("ssl-passthrough", "ssl_passthrough", v.boolean, "bool", "false",
               "TLS of this Ingress's hosts is not ended by nginx: the connection goes to the backend of the "
               "host's '/' path as it is, chosen by SNI (needs --enable-ssl-passthrough; refused without). Like "
               "ingress-nginx, the host's other annotations do not apply to HTTPS then.", risk="High"),
    Annotation("ssl-ciphers", "ssl_ciphers", ciphers, "OpenSSL cipher list", "(ConfigMap ssl-ciphers)",
               "Ciphers offered on this host's server (the oldest Ingress of the host decides)."),
    Annotation("ssl-prefer-server-ciphers", "ssl_prefer_server_ciphers", v.boolean, "bool",
               "(ConfigMap ssl-prefer-server-ciphers)",
               "The server's cipher order wins on this host's server (the oldest Ingress of the host decides)."),
)
ANNOTATIONS += TLS
register(*ANNOTATIONS)

