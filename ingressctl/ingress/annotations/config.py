"""The typed result of parsing one Ingress's annotations (see the registry in __init__).

Design choice: one flat frozen dataclass, one field per annotation, holding only typed
values (Duration, Size, validated names, tuples of enums); `None` means "not set, use the
global setting", so templates never see an unparsed string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import values as v
from .shapes import MirrorTarget, RewriteTarget, SecretRef, VariableURL, origin_regex

DEFAULT_CORS_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")
DEFAULT_CORS_HEADERS = ("DNT", "Keep-Alive", "User-Agent", "X-Requested-With", "If-Modified-Since",
                        "Cache-Control", "Content-Type", "Range", "Authorization")


@dataclass(frozen=True)
class IngressConfig:
    """One field per supported annotation; None means 'use the global setting'."""

    # routing and redirects
    use_regex: bool = False
    ssl_redirect: bool | None = None
    force_ssl_redirect: bool = False
    preserve_trailing_slash: bool = False
    rewrite_target: RewriteTarget | None = None
    app_root: str | None = None
    x_forwarded_prefix: str | None = None
    permanent_redirect: str | None = None
    permanent_redirect_code: int = 301
    temporal_redirect: str | None = None
    from_to_www_redirect: bool = False
    server_alias: tuple[str, ...] = ()
    # proxy and upstream
    proxy_connect_timeout: v.Duration | None = None
    proxy_read_timeout: v.Duration | None = None
    proxy_send_timeout: v.Duration | None = None
    proxy_body_size: v.Size | None = None
    backend_protocol: str = "HTTP"
    upstream_vhost: str | None = None
    service_upstream: bool = False
    upstream_hash_by: str | None = None
    load_balance: str | None = None
    proxy_next_upstream: tuple[str, ...] | None = None
    proxy_next_upstream_tries: int | None = None
    proxy_next_upstream_timeout: v.Duration | None = None
    proxy_buffering: str | None = None
    proxy_buffer_size: v.Size | None = None
    proxy_request_buffering: str | None = None
    client_body_buffer_size: v.Size | None = None
    proxy_http_version: str | None = None
    proxy_buffers_number: int | None = None
    proxy_cookie_path: tuple[str, ...] = ()  # ("off",) or (from, to)
    proxy_cookie_domain: tuple[str, ...] = ()
    proxy_redirect_from: str | None = None  # "off", "default" or a URL/path prefix
    proxy_redirect_to: str | None = None
    connection_proxy_header: str | None = None
    limit_rate: int | None = None  # KB/s
    limit_rate_after: int | None = None  # KB
    enable_access_log: bool | None = None
    # access
    allowlist_source_range: tuple[str, ...] = ()
    denylist_source_range: tuple[str, ...] = ()
    auth_type: str | None = None
    auth_secret: SecretRef | None = None
    auth_secret_type: str = "auth-file"
    auth_realm: str = "Authentication Required"
    auth_url: VariableURL | None = None
    auth_signin: VariableURL | None = None
    auth_method: str | None = None
    auth_response_headers: tuple[str, ...] = ()
    auth_tls_secret: SecretRef | None = None
    auth_tls_verify_client: str = "on"
    auth_tls_verify_depth: int = 1
    auth_tls_pass_certificate_to_upstream: bool = False
    auth_tls_match_cn: str | None = None
    # limits
    limit_rps: int | None = None
    limit_rpm: int | None = None
    limit_connections: int | None = None
    limit_burst_multiplier: int = 5
    limit_whitelist: tuple[str, ...] = ()
    # CORS
    enable_cors: bool = False
    cors_allow_origin: tuple[str, ...] = ("*",)
    cors_allow_methods: tuple[str, ...] = DEFAULT_CORS_METHODS
    cors_allow_headers: tuple[str, ...] = DEFAULT_CORS_HEADERS
    cors_allow_credentials: bool = True
    cors_expose_headers: tuple[str, ...] = ()
    cors_max_age: int = 1_728_000
    # canary
    canary: bool = False
    canary_by_header: str | None = None
    canary_by_header_value: str | None = None
    canary_by_header_pattern: str | None = None
    canary_by_cookie: str | None = None
    canary_weight: int | None = None
    canary_weight_total: int = 100
    # TLS to the backend (annotations/backendtls.py)
    proxy_ssl_secret: SecretRef | None = None
    proxy_ssl_verify: str = "off"
    proxy_ssl_verify_depth: int = 1
    proxy_ssl_name: str = ""  # "" = nginx's default ($proxy_host)
    proxy_ssl_server_name: str = "off"
    proxy_ssl_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    proxy_ssl_ciphers: str = "DEFAULT"
    proxy_ssl_location_only: bool = True
    # session affinity (annotations/affinity.py)
    affinity: str = ""  # "cookie" or "" (none)
    affinity_mode: str = "balanced"
    session_cookie_name: str = "INGRESSCOOKIE"
    session_cookie_path: str | None = None
    session_cookie_domain: str | None = None
    session_cookie_expires: int | None = None
    session_cookie_max_age: int | None = None
    session_cookie_samesite: str | None = None
    session_cookie_conditional_samesite_none: bool = False
    session_cookie_secure: bool | None = None
    session_cookie_change_on_failure: bool = False
    # access combination, redirects, TLS of the server
    satisfy: str = ""  # "" = nginx's default (all)
    use_port_in_redirects: bool = False
    ssl_ciphers: str = ""  # "" = the ConfigMap's
    ssl_prefer_server_ciphers: bool | None = None  # None = the ConfigMap's
    ssl_passthrough: bool = False
    custom_headers: SecretRef | None = None  # a ConfigMap of the Ingress's namespace (SecretRef: ns/name)
    auth_proxy_set_headers: SecretRef | None = None  # likewise
    auth_cache_key: str = ""
    auth_cache_duration: tuple[str, ...] = ("200 202 401 5m",)
    # errors, fallbacks, mirroring
    custom_http_errors: tuple[int, ...] = ()
    default_backend: str | None = None
    mirror_target: MirrorTarget | None = None
    mirror_request_body: bool = True
    mirror_host: str = ""
    # snippets (only with allow-snippet-annotations)
    configuration_snippet: tuple[Any, ...] = ()
    auth_snippet: tuple[Any, ...] = ()
    server_snippet: tuple[Any, ...] = ()

    @property
    def proxy_ssl_configured(self) -> bool:
        """Some proxy-ssl-* annotation asks for more than nginx's defaults."""
        return (self.proxy_ssl_secret is not None or self.proxy_ssl_verify == "on" or bool(self.proxy_ssl_name)
                or self.proxy_ssl_server_name == "on" or self.proxy_ssl_protocols != ("TLSv1.2", "TLSv1.3")
                or self.proxy_ssl_ciphers != "DEFAULT")

    @property
    def regex(self) -> bool:
        """rewrite-target implies use-regex, as in ingress-nginx."""
        return self.use_regex or self.rewrite_target is not None

    @property
    def grpc(self) -> bool:
        return self.backend_protocol in ("GRPC", "GRPCS")

    @property
    def scheme(self) -> str:
        return "https" if self.backend_protocol == "HTTPS" else "http"

    @property
    def grpc_scheme(self) -> str:
        return "grpcs" if self.backend_protocol == "GRPCS" else "grpc"

    @property
    def redirect(self) -> tuple[int, str] | None:
        """(code, URL) when this location answers with a redirect; temporal beats permanent."""
        if self.temporal_redirect:
            return 302, self.temporal_redirect
        if self.permanent_redirect:
            return self.permanent_redirect_code, self.permanent_redirect
        return None

    @property
    def redirect_code(self) -> int:
        return self.redirect[0] if self.redirect else 0

    @property
    def redirect_url(self) -> str:
        return self.redirect[1] if self.redirect else ""

    @property
    def signin_separator(self) -> str:
        return "&" if self.auth_signin and "?" in self.auth_signin else "?"

    @property
    def signin_adds_rd(self) -> bool:
        """auth-signin gets `rd=<original URL>` appended unless it sets `rd` itself."""
        return bool(self.auth_signin) and not re.search(r"[?&]rd=", self.auth_signin or "")

    @property
    def needs_escaped_request_uri(self) -> bool:
        """The location must compute `$escaped_request_uri` (with Lua) before auth_request."""
        return bool(self.auth_url) and (self.signin_adds_rd or any(
            u is not None and u.uses("escaped_request_uri") for u in (self.auth_url, self.auth_signin)))

    @property
    def requires_client_cert(self) -> bool:
        return self.auth_tls_secret is not None and self.auth_tls_verify_client == "on"

    @property
    def cors_origin_regex(self) -> str:
        return origin_regex(self.cors_allow_origin)

    @property
    def cors_methods_value(self) -> str:
        return ", ".join(self.cors_allow_methods)

    @property
    def cors_headers_value(self) -> str:
        return ", ".join(self.cors_allow_headers)

    @property
    def cors_expose_value(self) -> str:
        return ", ".join(self.cors_expose_headers)

    @property
    def basic_auth(self) -> bool:
        return self.auth_type == "basic"

    @property
    def cors_any_origin(self) -> bool:
        return self.cors_allow_origin == ("*",)

    @property
    def rate_limited(self) -> bool:
        return bool(self.limit_rps or self.limit_rpm or self.limit_connections)
