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
from .annotations.shapes import ciphers as _ciphers
from .annotations.shapes import next_upstream, on_off, status_codes


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
    log_format_stream: str = "[$remote_addr] [$time_local] $protocol $status $bytes_sent $bytes_received $session_time"
    log_format_escape_json: bool = False
    # TLS
    ssl_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ssl_ciphers: str = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")
    ssl_prefer_server_ciphers: bool = True
    ssl_session_cache: bool = True
    ssl_session_cache_size: v.Size = v.Size(10 << 20)
    ssl_session_timeout: v.Duration = v.Duration(600_000)
    ssl_session_tickets: bool = False
    ssl_ecdh_curve: str = "auto"
    # compression
    use_gzip: bool = False
    gzip_level: int = 1
    gzip_min_length: int = 256
    gzip_types: tuple[str, ...] = (
        "application/atom+xml", "application/javascript", "application/x-javascript", "application/json",
        "application/rss+xml", "application/vnd.ms-fontobject", "application/x-font-ttf",
        "application/x-web-app-manifest+json", "application/xhtml+xml", "application/xml", "font/opentype",
        "image/svg+xml", "image/x-icon", "text/css", "text/javascript", "text/plain", "text/x-component")
    # clients
    error_log_level: str = "warn"
    large_client_header_buffers: str = "4 8k"
    client_header_buffer_size: v.Size = v.Size(1 << 10)
    client_body_timeout: v.Duration = v.Duration(60_000)
    client_header_timeout: v.Duration = v.Duration(60_000)
    keep_alive_requests: int = 1000
    max_worker_connections: int = 16384
    ignore_invalid_headers: bool = True
    enable_underscores_in_headers: bool = False
    limit_req_status_code: int = 503
    limit_conn_status_code: int = 503
    # upstreams
    upstream_keepalive_timeout: v.Duration = v.Duration(60_000)
    upstream_keepalive_requests: int = 10000
    proxy_buffering: str = "off"
    proxy_buffer_size: v.Size = v.Size(4 << 10)
    proxy_buffers_number: int = 4
    proxy_next_upstream: tuple[str, ...] = ("error", "timeout")
    proxy_next_upstream_tries: int = 3
    proxy_next_upstream_timeout: v.Duration = v.Duration(0)
    server_tokens: bool = False
    upstream_keepalive_connections: int = 320  # as ingress-nginx: the shared Lua-balanced block's idle connections
    keep_alive: v.Duration = v.Duration(75_000)
    use_http2: bool = True
    enable_access_log: bool = True
    # headers
    hide_headers: tuple[str, ...] = ()
    allow_backend_server_header: bool = False
    add_headers: tuple[tuple[str, str], ...] = ()  # from the ConfigMap named by add-headers
    proxy_set_headers: tuple[tuple[str, str], ...] = ()  # from the ConfigMap named by proxy-set-headers
    # refusing clients
    block_cidrs: tuple[str, ...] = ()
    block_user_agents: tuple[str, ...] = ()
    block_referers: tuple[str, ...] = ()
    custom_http_errors: tuple[int, ...] = ()  # every location without its own annotation
    bind_address: tuple[str, ...] = ()  # listen on these addresses instead of --listen-address
    global_allowed_response_headers: tuple[str, ...] = ()  # what custom-headers annotations may set
    # nginx hash tables: the defaults are the least the names ingressctl accepts need
    server_name_hash_bucket_size: int = 512
    variables_hash_bucket_size: int = 256
    map_hash_bucket_size: int = 512

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
        return f"key {self.key}={self.value[:200]!r}: {self.reason}"

    @property
    def event_reason(self) -> str:
        return "UnknownConfigMapKey" if self.key not in KEYS else "InvalidConfigMapValue"


_LOG_FORMAT_RE = re.compile(r"^[^'\\\x00-\x1f\x7f]{1,2048}$")
_LOG_VAR_RE = re.compile(r"\$(\{?)([A-Za-z_][A-Za-z0-9_]*)(\}?)")


def _log_format(value: str) -> str:
    if not _LOG_FORMAT_RE.match(value):
        raise v.InvalidValue("must be printable text without single quotes, backslashes or control characters")
    stripped = _LOG_VAR_RE.sub("", value)
    if "$" in stripped:
        raise v.InvalidValue("'$' must start a variable name")
    return value


# The variables nginx's stream module has (an unknown one fails `nginx -t` for everyone).
STREAM_LOG_VARIABLES = frozenset({
    "remote_addr", "remote_port", "server_addr", "server_port", "time_local", "time_iso8601", "msec",
    "protocol", "status", "bytes_sent", "bytes_received", "session_time", "upstream_addr",
    "upstream_bytes_sent", "upstream_bytes_received", "upstream_connect_time", "upstream_first_byte_time",
    "upstream_session_time", "connection", "hostname", "pid", "proxy_protocol_addr", "proxy_protocol_port",
    "ssl_preread_server_name", "nginx_version"})


def _stream_log_format(value: str) -> str:
    _log_format(value)
    unknown = sorted({m.group(2) for m in _LOG_VAR_RE.finditer(value)} - STREAM_LOG_VARIABLES)
    if unknown:
        raise v.InvalidValue(f"${unknown[0]} is not a variable of nginx's stream module")
    return value


_LOG_LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")
_CURVES_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_-]{1,64}){0,31}\Z")
_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9*][a-z0-9.+*-]{0,126}\Z")
_BUFFERS_RE = re.compile(r"^([1-9][0-9]{0,2}) +([1-9][0-9]{0,4}[km]?)\Z")


def _ssl_protocols(value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(value.split()))
    if not items:
        raise v.InvalidValue("no TLS version")
    return tuple(v.enum(p, ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")) for p in items)


def _curves(value: str) -> str:
    if not _CURVES_RE.match(value.strip()):
        raise v.InvalidValue("must be curve names separated by ':', or auto")
    return value.strip()


def _mime_types(value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(value.split()))
    if not items or len(items) > 100 or not all(_MIME_RE.match(t) for t in items):
        raise v.InvalidValue("must be 1-100 MIME types like text/css, space-separated")
    return items


def _buffers(value: str) -> str:
    m = _BUFFERS_RE.match(value.strip())
    if not m:
        raise v.InvalidValue("must be 'NUMBER SIZE', e.g. '4 8k'")
    v.size(m.group(2), 1024, 1 << 20)
    return f"{m.group(1)} {m.group(2)}"


def _status_4xx_5xx(value: str) -> int:
    return v.integer(value, 400, 599)


_Parser = Callable[[str], Any]

# Header values may name these nginx variables (as `$name` or `${name}`), nothing else: an
# unknown variable would fail `nginx -t` for every tenant.
HEADER_VARIABLES = ("host", "scheme", "request_id", "req_id", "remote_addr", "remote_port", "server_name",
                    "server_port", "request_uri", "uri", "msec", "time_iso8601", "ssl_protocol", "ssl_cipher",
                    "ssl_client_escaped_cert", "ssl_client_s_dn", "ssl_client_verify", "namespace",
                    "ingress_name", "service_name", "service_port", "proxy_upstream_name")
_HEADER_VALUE_RE = re.compile(r'^[^"\\\x00-\x1f\x7f]{0,1024}\Z')
_HEADER_VAR_RE = re.compile(r"\$(\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")
MAX_HEADERS = 100


def header_value(value: str) -> str:
    """A header value for proxy_set_header / more_set_headers: printable, no quotes or
    backslashes, `$` only before a variable of HEADER_VARIABLES."""
    if not _HEADER_VALUE_RE.match(value):
        raise v.InvalidValue("must be at most 1,024 printable characters without '\"' or '\\\\'")
    for m in _HEADER_VAR_RE.finditer(value):
        name = m.group(2) if m.group(2) is not None else m.group(3)
        if name not in HEADER_VARIABLES:
            raise v.InvalidValue(f"${name} is not one of the variables a header may use: "
                                 + ", ".join(HEADER_VARIABLES))
    return value


def headers_from(data: Mapping[str, str]) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """A headers ConfigMap (name -> value) -> the valid pairs, sorted, and a reason per refused one."""
    pairs, reasons = [], []
    for name in sorted(data)[:MAX_HEADERS]:
        try:
            pairs.append((v.header_name(name), header_value(data[name])))
        except v.InvalidValue as e:
            reasons.append(f"header {name[:64]!r}: {e}")
    if len(data) > MAX_HEADERS:
        reasons.append(f"{len(data)} headers: only the first {MAX_HEADERS} by name are used")
    return tuple(pairs), reasons


def _reference(value: str) -> tuple[str, str] | None:
    if not value.strip():
        return None
    ns, slash, name = value.strip().partition("/")
    if not slash:
        raise v.InvalidValue("must be NAMESPACE/NAME of a ConfigMap")
    return v.k8s_name(ns), v.k8s_name(name)


_UA_RE = re.compile(r"^[^\x00-\x1f\x7f\"\\\\]{1,256}\Z")


def _match_list(value: str) -> tuple[str, ...]:
    """block-user-agents / block-referers: comma-separated; `~` starts a regex, `~*` a
    caseless one (nginx's map), anything else matches exactly."""
    items = tuple(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))
    if len(items) > 200:
        raise v.InvalidValue(f"{len(items)} entries: at most 200")
    for item in items:
        if item.startswith("~"):
            v.regex_value(item[2:] if item.startswith("~*") else item[1:], "regex", 256)
        elif not _UA_RE.match(item) or "$" in item:
            raise v.InvalidValue(f"{item[:64]!r}: printable text without quotes, backslashes or '$'")
    return items


def _header_names(value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))
    if len(items) > MAX_HEADERS:
        raise v.InvalidValue(f"{len(items)} headers: at most {MAX_HEADERS}")
    return tuple(v.header_name(h) for h in items)


def _bucket(least: int) -> _Parser:
    def parse(value: str) -> int:
        n = v.integer(value, 1, 1 << 16)
        if n < least:
            raise v.InvalidValue(f"must be at least {least}: ingressctl accepts names that need that much")
        return n
    return parse


def _workers(value: str) -> str:
    return "auto" if value.strip() == "auto" else str(v.integer(value, 1, 1024))


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
    "log-format-stream": ("log_format_stream", _stream_log_format, "access log format of TCP/UDP services"),
    "log-format-escape-json": ("log_format_escape_json", v.boolean,
                               "escape variables in the access log for JSON (log_format escape=json)"),
    "ssl-protocols": ("ssl_protocols", _ssl_protocols, "TLS versions offered (space-separated)"),
    "ssl-ciphers": ("ssl_ciphers", _ciphers, "OpenSSL cipher list for TLS up to 1.2"),
    "ssl-prefer-server-ciphers": ("ssl_prefer_server_ciphers", v.boolean, "the server's cipher order wins"),
    "ssl-session-cache": ("ssl_session_cache", v.boolean, "a shared TLS session cache"),
    "ssl-session-cache-size": ("ssl_session_cache_size", lambda s: v.size(s, 64 << 10, 1 << 30),
                               "its size (nginx needs at least 64k)"),
    "ssl-session-timeout": ("ssl_session_timeout", v.duration, "how long a TLS session may be resumed"),
    "ssl-session-tickets": ("ssl_session_tickets", v.boolean, "TLS session tickets"),
    "ssl-ecdh-curve": ("ssl_ecdh_curve", _curves, "ECDH curves, ':'-separated, or auto"),
    "use-gzip": ("use_gzip", v.boolean, "gzip responses of gzip-types"),
    "gzip-level": ("gzip_level", lambda s: v.integer(s, 1, 9), "gzip compression level 1-9"),
    "gzip-min-length": ("gzip_min_length", lambda s: v.integer(s, 0, 1 << 30), "smallest response gzipped, bytes"),
    "gzip-types": ("gzip_types", _mime_types, "MIME types gzipped (space-separated)"),
    "error-log-level": ("error_log_level", lambda s: v.enum(s.strip(), _LOG_LEVELS), "nginx error_log level"),
    "large-client-header-buffers": ("large_client_header_buffers", _buffers,
                                    "number and size of buffers for large request headers"),
    "client-header-buffer-size": ("client_header_buffer_size", lambda s: v.size(s, 1, 1 << 20),
                                  "buffer for the request header"),
    "client-body-timeout": ("client_body_timeout", v.duration, "timeout reading the request body"),
    "client-header-timeout": ("client_header_timeout", v.duration, "timeout reading the request header"),
    "keep-alive-requests": ("keep_alive_requests", lambda s: v.integer(s, 1, 1 << 30),
                            "requests per client keepalive connection"),
    "max-worker-connections": ("max_worker_connections", lambda s: v.integer(s, 64, 1 << 20),
                               "nginx worker_connections"),
    "ignore-invalid-headers": ("ignore_invalid_headers", v.boolean, "drop request headers with invalid names"),
    "enable-underscores-in-headers": ("enable_underscores_in_headers", v.boolean,
                                      "accept request header names with '_'"),
    "limit-req-status-code": ("limit_req_status_code", _status_4xx_5xx, "status for requests over a rate limit"),
    "limit-conn-status-code": ("limit_conn_status_code", _status_4xx_5xx, "status for connections over a limit"),
    "upstream-keepalive-timeout": ("upstream_keepalive_timeout", v.duration, "idle upstream keepalive time"),
    "upstream-keepalive-requests": ("upstream_keepalive_requests", lambda s: v.integer(s, 1, 1 << 30),
                                    "requests per upstream keepalive connection"),
    "proxy-buffering": ("proxy_buffering", on_off, "buffer upstream responses (ingress-nginx: off)"),
    "proxy-buffer-size": ("proxy_buffer_size", lambda s: v.size(s, 1, 1 << 20),
                          "buffer for the upstream response header"),
    "proxy-buffers-number": ("proxy_buffers_number", lambda s: v.integer(s, 4, 512),
                             "number of proxy_buffer_size buffers per request (nginx's busy-buffers rule: 4 "
                             "at least)"),
    "proxy-next-upstream": ("proxy_next_upstream", next_upstream, "when to try the next endpoint"),
    "proxy-next-upstream-tries": ("proxy_next_upstream_tries", lambda s: v.integer(s, 0, 100),
                                  "at most this many tries (0: no limit)"),
    "proxy-next-upstream-timeout": ("proxy_next_upstream_timeout", v.duration, "time limit of the tries (0: none)"),
    "server-tokens": ("server_tokens", v.boolean, "send the nginx version in Server headers"),
    "upstream-keepalive-connections": (
        "upstream_keepalive_connections", lambda s: v.integer(s, 0, 10_000),
        "idle keepalive connections per worker of the shared Lua-balanced upstream (other upstream blocks keep 32 each)"),
    "keep-alive": ("keep_alive", v.duration, "client keepalive_timeout"),
    "use-http2": ("use_http2", v.boolean, "enable HTTP/2 on the HTTPS listener"),
    "enable-access-log": ("enable_access_log", v.boolean, "write the access log"),
    "disable-access-log": ("enable_access_log", lambda s: not v.boolean(s), "do not write the access log"),
    "hide-headers": ("hide_headers", _header_names, "upstream response headers not passed to clients "
                     "(comma-separated)"),
    "allow-backend-server-header": ("allow_backend_server_header", v.boolean,
                                    "pass the backend's Server header instead of nginx's"),
    "add-headers": ("add_headers", _reference, "NAMESPACE/NAME of a ConfigMap of headers added to every response"),
    "proxy-set-headers": ("proxy_set_headers", _reference,
                          "NAMESPACE/NAME of a ConfigMap of headers sent to every backend"),
    "block-cidrs": ("block_cidrs", lambda s: v.cidr_list(s) if s.strip() else (), "client addresses refused with 403 (comma-separated)"),
    "block-user-agents": ("block_user_agents", _match_list,
                          "User-Agents refused with 403: exact, or ~regex / ~*caseless regex (comma-separated)"),
    "block-referers": ("block_referers", _match_list,
                       "Referers refused with 403: exact, or ~regex / ~*caseless regex (comma-separated)"),
    "global-allowed-response-headers": ("global_allowed_response_headers", _header_names,
                                        "response headers custom-headers annotations may set (comma-separated; "
                                        "none by default, as in ingress-nginx)"),
    "bind-address": ("bind_address", lambda s: tuple(dict.fromkeys(v.ip_address(a) for a in s.split(",") if a.strip()))
                     if s.strip() else (), "addresses the HTTP, HTTPS and TCP/UDP servers listen on instead of "
                     "--listen-address (comma-separated IPv4/IPv6)"),
    "custom-http-errors": ("custom_http_errors", lambda s: status_codes(s) if s.strip() else (),
                           "status codes answered by --default-backend-service for every location without its own "
                           "custom-http-errors annotation (comma-separated)"),
    "server-name-hash-bucket-size": ("server_name_hash_bucket_size", _bucket(512),
                                     "server_names_hash_bucket_size (at least 512: host names up to 253 characters)"),
    "variables-hash-bucket-size": ("variables_hash_bucket_size", _bucket(256), "variables_hash_bucket_size"),
    "map-hash-bucket-size": ("map_hash_bucket_size", _bucket(512),
                             "map_hash_bucket_size (at least 512: canary header values are map keys)"),
}
# Keys whose value names another ConfigMap; `parse_settings` reads it through `lookup`.
REFERENCES = frozenset({"add-headers", "proxy-set-headers"})


Lookup = Callable[[str, str], Mapping[str, str] | None]


def parse_settings(data: Mapping[str, str], lookup: Lookup = lambda ns, name: None
                   ) -> tuple[Settings, list[SettingProblem]]:
    """ConfigMap data -> Settings; bad values keep defaults and come back as problems.
    `lookup(namespace, name)` gives the data of a ConfigMap another key refers to."""
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
            parsed = parser(value)
        except v.InvalidValue as e:
            problems.append(SettingProblem(key, value, f"{e}; default kept"))
            continue
        if key in REFERENCES and parsed is not None:
            referred = lookup(*parsed)
            if referred is None:
                problems.append(SettingProblem(key, value, "ConfigMap not found; no headers"))
                continue
            parsed, reasons = headers_from(referred)
            problems += [SettingProblem(key, value, f"{r}; left out") for r in reasons]
        changes[field_name] = () if parsed is None else parsed
    return dataclasses.replace(Settings(), **changes), problems
