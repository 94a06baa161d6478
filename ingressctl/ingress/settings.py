"""Global settings from the controller ConfigMap, typed and validated.

Keys follow ingress-nginx's names where the concept is the same, so an existing ConfigMap
mostly carries over. `parse_settings` never raises: a bad value keeps the default and is
returned as a problem, and an unknown key is reported rather than ignored silently.

Design choice: one table (`KEYS`) maps each key to its field and validator, so the list of
supported keys, their parsing and the documentation cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import values as v


@dataclass(frozen=True)
class Settings:
    proxy_body_size: v.Size = v.Size(1 << 20)
    proxy_connect_timeout: v.Duration = v.Duration(5_000)
    proxy_read_timeout: v.Duration = v.Duration(60_000)
    proxy_send_timeout: v.Duration = v.Duration(60_000)
    ssl_redirect: bool = True
    hsts: bool = True
    hsts_max_age: int = 31_536_000
    hsts_include_subdomains: bool = True
    worker_processes: str = "auto"
    worker_shutdown_timeout: v.Duration = v.Duration(240_000)
    max_draining_generations: int = 1
    allow_snippet_annotations: bool = False
    log_format_upstream: str = (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent" $request_length $request_time '
        "[$proxy_upstream_name] $upstream_addr $upstream_response_length "
        "$upstream_response_time $upstream_status"
    )
    use_forwarded_headers: bool = False
    forwarded_for_header: str = "X-Forwarded-For"
    proxy_real_ip_cidr: tuple[str, ...] = ("0.0.0.0/0",)
    enable_real_ip: bool = False
    compute_full_forwarded_for: bool = False
    use_proxy_protocol: bool = False
    use_port_in_redirects: bool = False
    http_redirect_code: int = 308
    no_tls_redirect_locations: tuple[str, ...] = ("/.well-known/acme-challenge",)
    hsts_preload: bool = False
    log_format_escape_json: bool = False
    server_tokens: bool = False
    upstream_keepalive_connections: int = 32
    keep_alive: v.Duration = v.Duration(75_000)
    use_http2: bool = True
    enable_access_log: bool = True


    @property
    def forwarded_for_header_variable(self) -> str:
        """The header as an nginx variable name part: X-Forwarded-For -> x_forwarded_for."""
        return self.forwarded_for_header.lower().replace("-", "_")


@dataclass(frozen=True)
class SettingProblem:
    key: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"ConfigMap key {self.key}={self.value!r}: {self.reason}"


_LOG_FORMAT_RE = re.compile(r"^[^'\\\x00-\x1f\x7f]{1,2048}$")
_LOG_VAR_RE = re.compile(r"\$(\{?)([A-Za-z_][A-Za-z0-9_]*)(\}?)")


def _log_format(value: str) -> str:
    if not _LOG_FORMAT_RE.match(value):
        raise v.InvalidValue("must be printable text without single quotes, backslashes or control characters")
    stripped = _LOG_VAR_RE.sub("", value)
    if "$" in stripped:
        raise v.InvalidValue("'$' must start a variable name")
    return value


def _workers(value: str) -> str:
    return "auto" if value.strip() == "auto" else str(v.integer(value, 1, 1024))


_Parser = Callable[[str], Any]

KEYS: dict[str, tuple[str, _Parser, str]] = {
    "proxy-body-size": ("proxy_body_size", v.size, "maximum request body size (client_max_body_size)"),
    "proxy-connect-timeout": ("proxy_connect_timeout", v.duration, "upstream connect timeout"),
    "proxy-read-timeout": ("proxy_read_timeout", v.duration, "upstream read timeout"),
    "proxy-send-timeout": ("proxy_send_timeout", v.duration, "upstream send timeout"),
    "ssl-redirect": ("ssl_redirect", v.boolean, "redirect HTTP to HTTPS for TLS hosts (308)"),
    "hsts": ("hsts", v.boolean, "send Strict-Transport-Security on HTTPS"),
    "hsts-max-age": ("hsts_max_age", lambda s: v.integer(s, 0, 1 << 31), "HSTS max-age in seconds"),
    "hsts-include-subdomains": ("hsts_include_subdomains", v.boolean, "HSTS includeSubDomains"),
    "worker-processes": ("worker_processes", _workers, "nginx worker_processes"),
    "worker-shutdown-timeout": ("worker_shutdown_timeout", v.duration, "grace period for old workers on reload"),
    "max-draining-generations": (
        "max_draining_generations", lambda s: v.integer(s, 0, 1000),
        "replaced configurations whose workers may drain at once; the oldest is closed beyond (0: no bound)"),
    "allow-snippet-annotations": ("allow_snippet_annotations", v.boolean, "allow *-snippet annotations (off by default)"),
    "log-format-upstream": ("log_format_upstream", _log_format, "access log format"),
    "use-forwarded-headers": ("use_forwarded_headers", v.boolean,
                              "trust incoming X-Forwarded-* headers: client address (real_ip), scheme, host, port"),
    "forwarded-for-header": ("forwarded_for_header", v.header_name,
                             "header with the client address when use-forwarded-headers is on"),
    "proxy-real-ip-cidr": ("proxy_real_ip_cidr", v.cidr_list,
                           "addresses whose forwarded client address is trusted (set_real_ip_from)"),
    "enable-real-ip": ("enable_real_ip", v.boolean, "trust proxy-real-ip-cidr without the other forwarded headers"),
    "compute-full-forwarded-for": ("compute_full_forwarded_for", v.boolean,
                                   "append the client address to X-Forwarded-For instead of replacing it"),
    "use-proxy-protocol": ("use_proxy_protocol", v.boolean, "expect the PROXY protocol on the HTTP and HTTPS ports"),
    "use-port-in-redirects": ("use_port_in_redirects", v.boolean,
                              "name nginx's listen port in redirects (port_in_redirect on)"),
    "http-redirect-code": ("http_redirect_code", lambda s: int(v.enum(s.strip(), ("301", "302", "307", "308"))),
                           "status of the HTTP to HTTPS redirect"),
    "no-tls-redirect-locations": ("no_tls_redirect_locations", lambda s: tuple(
        v.path(p.strip()) for p in s.split(",") if p.strip()), "path prefixes never redirected to HTTPS"),
    "hsts-preload": ("hsts_preload", v.boolean, "add preload to Strict-Transport-Security"),
    "log-format-escape-json": ("log_format_escape_json", v.boolean,
                               "escape variables in the access log for JSON (log_format escape=json)"),
    "server-tokens": ("server_tokens", v.boolean, "send the nginx version in Server headers"),
    "upstream-keepalive-connections": (
        "upstream_keepalive_connections", lambda s: v.integer(s, 0, 10_000), "idle keepalive connections per upstream"),
    "keep-alive": ("keep_alive", v.duration, "client keepalive_timeout"),
    "use-http2": ("use_http2", v.boolean, "enable HTTP/2 on the HTTPS listener"),
    "enable-access-log": ("enable_access_log", v.boolean, "write the access log"),
}


def parse_settings(data: Mapping[str, str]) -> tuple[Settings, list[SettingProblem]]:
    """ConfigMap data -> Settings; bad values keep defaults and come back as problems."""
    changes: dict[str, Any] = {}
    problems: list[SettingProblem] = []
    for key in sorted(data):
        value = data[key]
        entry = KEYS.get(key)
        if entry is None:
            problems.append(SettingProblem(key, value, "unknown key, ignored"))
            continue
        field_name, parser, _ = entry
        try:
            changes[field_name] = parser(value)
        except v.InvalidValue as e:
            problems.append(SettingProblem(key, value, f"{e}; default kept"))
    return dataclasses.replace(Settings(), **changes), problems
