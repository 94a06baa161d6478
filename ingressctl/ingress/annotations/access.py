"""Access annotations: source ranges, basic auth, external auth, client certificates."""

from __future__ import annotations

from .. import values as v
from . import Annotation, register, register_check
from .config import IngressConfig
from .shapes import (
    URL_VARIABLES,
    cache_durations,
    cache_key,
    cn_regex,
    header_list,
    method,
    secret_ref,
    text,
    url_with_variables,
)

_VARS = ", ".join("$" + n for n in URL_VARIABLES)

ANNOTATIONS = (
    Annotation("whitelist-source-range", "allowlist_source_range", v.cidr_list, "CIDR list", "",
               "Only these client networks may connect (comma-separated); others get 403. "
               "Old name of allowlist-source-range."),
    Annotation("allowlist-source-range", "allowlist_source_range", v.cidr_list, "CIDR list", "",
               "Only these client networks may connect (comma-separated); others get 403."),
    Annotation("denylist-source-range", "denylist_source_range", v.cidr_list, "CIDR list", "",
               "These client networks get 403 (checked before the allowlist)."),
    Annotation("auth-type", "auth_type", lambda s: v.enum(s.lower(), ("basic",)), "enum", "",
               "basic: HTTP basic authentication from auth-secret (digest is not supported).", risk="Medium"),
    Annotation("auth-secret", "auth_secret", secret_ref, "Secret name", "",
               "Secret with the users: htpasswd lines in key 'auth', or one key per user (auth-map).",
               risk="Medium"),
    Annotation("auth-secret-type", "auth_secret_type", lambda s: v.enum(s, ("auth-file", "auth-map")), "enum",
               "auth-file", "auth-file: htpasswd in key 'auth'; auth-map: key = user, value = password hash."),
    Annotation("auth-realm", "auth_realm", text, "text", "Authentication Required",
               "Realm shown by the browser's basic-auth prompt."),
    Annotation("auth-url", "auth_url", url_with_variables, "URL with variables", "",
               "External authentication: every request is first sent to this URL (auth_request); "
               "2xx allows, 401/403 deny. May use " + _VARS + " (e.g. https://$host/oauth2/auth; "
               "$host only on rules with a host); other variables are refused. A host name is "
               "resolved with the controller's resolver.", risk="High"),
    Annotation("auth-signin", "auth_signin", url_with_variables, "URL with variables", "",
               "Where to redirect (302) when auth-url answers 401. May use " + _VARS + "; "
               "unless it sets rd= itself, rd=$scheme://$http_host$escaped_request_uri is appended "
               "(the original URI percent-encoded by Lua, so '&' and spaces survive)."),
    Annotation("auth-method", "auth_method", method, "HTTP method", "GET",
               "Method used for the auth-url request."),
    Annotation("auth-response-headers", "auth_response_headers", header_list, "header list", "",
               "Headers copied from the auth-url response to the backend request."),
    Annotation("auth-tls-secret", "auth_tls_secret", secret_ref, "Secret name", "",
               "Secret with the CA (key ca.crt) that client certificates must chain to (mTLS).",
               risk="Medium"),
    Annotation("auth-tls-verify-client", "auth_tls_verify_client",
               lambda s: v.enum(s, ("on", "off", "optional", "optional_no_ca")), "enum", "on",
               "Client certificate verification: on, off, optional or optional_no_ca."),
    Annotation("auth-tls-verify-depth", "auth_tls_verify_depth", lambda s: v.integer(s, 1, 10), "int 1-10", "1",
               "Maximum client certificate chain depth."),
    Annotation("auth-tls-pass-certificate-to-upstream", "auth_tls_pass_certificate_to_upstream", v.boolean,
               "bool", "false", "Send the client certificate (URL-encoded PEM) in the ssl-client-cert header."),
    Annotation("auth-tls-match-cn", "auth_tls_match_cn", cn_regex, "regex", "",
               "Regex the client certificate's subject DN must match (e.g. CN=(alice|bob)); others get 403."),
    Annotation("auth-cache-key", "auth_cache_key", cache_key, "text with variables", "",
               "Cache auth-url's answers under this key (e.g. $remote_user$http_authorization); variables: "
               "$http_*, $cookie_*, $arg_*, $remote_user, $remote_addr, $host, $request_uri, $uri."),
    Annotation("auth-cache-duration", "auth_cache_duration", cache_durations, "codes + duration", "200 202 401 5m",
               "With auth-cache-key: how long answers with these statuses are kept (proxy_cache_valid), e.g. "
               "'200 202 10m, 401 30s'."),
    Annotation("auth-proxy-set-headers", "auth_proxy_set_headers", secret_ref, "ConfigMap name", "",
               "ConfigMap of the Ingress's namespace whose entries (header: value) are sent to auth-url."),
    Annotation("satisfy", "satisfy", lambda s: v.enum(s.strip(), ("all", "any")), "enum", "all",
               "any: a request passes when the source ranges OR the authentication (basic or auth-url) allow "
               "it; all: both must.", risk="Medium"),
)
register(*ANNOTATIONS)


@register_check
def _auth_complete(cfg: IngressConfig) -> list[tuple[str, str]]:
    out = []
    if cfg.auth_type == "basic" and cfg.auth_secret is None:
        out.append(("auth-type", "auth-type basic needs auth-secret"))
    if cfg.auth_signin and not cfg.auth_url:
        out.append(("auth-signin", "auth-signin needs auth-url"))
    if cfg.auth_response_headers and not cfg.auth_url:
        out.append(("auth-response-headers", "auth-response-headers needs auth-url"))
    return out
