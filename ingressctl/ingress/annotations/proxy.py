"""Proxy and upstream annotations: timeouts, buffers, protocol, balancing, retries."""

from __future__ import annotations

import re

from .. import values as v
from . import Annotation, register
from .shapes import hash_key, next_upstream, on_off, url

_COOKIE_PATH = re.compile(r"^/[A-Za-z0-9._~%!+,:@=/-]{0,255}\Z")


def _cookie_path(value: str) -> tuple[str, ...]:
    parts = value.split()
    if parts == ["off"]:
        return ("off",)
    if len(parts) != 2 or not all(_COOKIE_PATH.match(p) for p in parts):
        raise v.InvalidValue("must be 'off' or two paths: FROM TO")
    return (parts[0], parts[1])


def _cookie_domain(value: str) -> tuple[str, ...]:
    parts = value.split()
    if parts == ["off"]:
        return ("off",)
    if len(parts) != 2:
        raise v.InvalidValue("must be 'off' or two domains: FROM TO")
    return tuple(v.host(p.lower().lstrip(".")) for p in parts)


def _redirect_part(value: str) -> str:
    value = value.strip()
    if value == "off":
        return value
    if value.startswith("/"):
        return v.path(value)
    return url(value)


def _vhost(value: str) -> str:
    """upstream-vhost: a host name, optionally with a port."""
    h, sep, port = value.strip().lower().rpartition(":")
    if sep and port.isdigit():
        v.integer(port, 1, 65535)
        return f"{v.host(h)}:{port}"
    return v.host(value.strip().lower())


ANNOTATIONS = (
    Annotation("proxy-connect-timeout", "proxy_connect_timeout", v.duration, "duration", "5s",
               "Timeout for establishing a connection to the upstream (bare number: seconds)."),
    Annotation("proxy-read-timeout", "proxy_read_timeout", v.duration, "duration", "60s",
               "Timeout between two reads from the upstream."),
    Annotation("proxy-send-timeout", "proxy_send_timeout", v.duration, "duration", "60s",
               "Timeout between two writes to the upstream."),
    Annotation("proxy-body-size", "proxy_body_size", v.size, "size", "1m",
               "Maximum request body; larger requests get 413."),
    Annotation("backend-protocol", "backend_protocol",
               lambda s: v.enum(s.upper(), ("HTTP", "HTTPS", "GRPC", "GRPCS")), "enum", "HTTP",
               "Protocol nginx speaks to the backend: HTTP, HTTPS, GRPC or GRPCS."),
    Annotation("upstream-vhost", "upstream_vhost", _vhost, "host[:port]", "",
               "Host header sent to the backend instead of the request's host."),
    Annotation("service-upstream", "service_upstream", v.boolean, "bool", "false",
               "Proxy to the Service's cluster IP instead of its individual endpoints."),
    Annotation("upstream-hash-by", "upstream_hash_by", hash_key, "nginx variables", "",
               "Consistent hashing on these variables ($request_uri, $remote_addr, $host, $http_*, "
               "$cookie_*, $arg_* ...); a separate upstream is generated for this Ingress."),
    Annotation("load-balance", "load_balance",
               lambda s: v.enum(s, ("round_robin", "least_conn", "ip_hash", "random")), "enum", "round_robin",
               "Balancing algorithm: round_robin, least_conn, ip_hash or random."),
    Annotation("proxy-next-upstream", "proxy_next_upstream", next_upstream, "list", "error timeout",
               "When to try the next endpoint (nginx proxy_next_upstream conditions, space-separated)."),
    Annotation("proxy-next-upstream-tries", "proxy_next_upstream_tries", lambda s: v.integer(s, 0, 100),
               "int 0-100", "3", "How many endpoints to try at most (0 = no limit)."),
    Annotation("proxy-next-upstream-timeout", "proxy_next_upstream_timeout", v.duration, "duration", "0",
               "Time limit for trying further endpoints (0 = no limit)."),
    Annotation("proxy-buffering", "proxy_buffering", on_off, "on|off", "off (ConfigMap)",
               "Buffer responses from the backend."),
    # Bounded: nginx -t refuses 0 and huge buffers, and each request allocates them.
    Annotation("proxy-buffer-size", "proxy_buffer_size", lambda s: v.size(s, 1, 1 << 20), "size 1-1m", "4k",
               "Buffer for the first part of the response (headers)."),
    Annotation("proxy-request-buffering", "proxy_request_buffering", on_off, "on|off", "on",
               "Read the whole request body before proxying."),
    Annotation("client-body-buffer-size", "client_body_buffer_size", lambda s: v.size(s, 1, 16 << 20),
               "size 0-16m", "8k", "Buffer for request bodies; larger bodies go to a temporary file."),
    Annotation("proxy-http-version", "proxy_http_version", lambda s: v.enum(s, ("1.0", "1.1")), "enum", "1.1",
               "HTTP version nginx uses towards the backend: 1.0 or 1.1."),
    Annotation("proxy-buffers-number", "proxy_buffers_number", lambda s: v.integer(s, 4, 512), "int 4-512",
               "4 (ConfigMap)", "Number of proxy_buffer_size buffers per request (nginx needs 4 at least with "
               "its default busy buffers)."),
    Annotation("proxy-cookie-path", "proxy_cookie_path", _cookie_path, "off | FROM TO", "",
               "Rewrite the path attribute of the backend's Set-Cookie headers (nginx proxy_cookie_path)."),
    Annotation("proxy-cookie-domain", "proxy_cookie_domain", _cookie_domain, "off | FROM TO", "",
               "Rewrite the domain attribute of the backend's Set-Cookie headers (nginx proxy_cookie_domain)."),
    Annotation("proxy-redirect-from", "proxy_redirect_from", _redirect_part, "off | URL | path", "",
               "With proxy-redirect-to: rewrite this prefix of the backend's Location and Refresh headers "
               "('default' is not supported: name the prefix)."),
    Annotation("proxy-redirect-to", "proxy_redirect_to", _redirect_part, "URL", "",
               "What proxy-redirect-from becomes."),
    Annotation("connection-proxy-header", "connection_proxy_header", lambda s: v.enum(s.strip().lower(), (
        "keep-alive", "close", "upgrade")), "enum", "", "Connection header sent to the backend."),
    Annotation("limit-rate", "limit_rate", lambda s: v.integer(s, 0, 10_000_000), "int KB/s", "",
               "Limit the response rate to each client connection, in KB/s (0: no limit)."),
    Annotation("limit-rate-after", "limit_rate_after", lambda s: v.integer(s, 0, 10_000_000), "int KB", "",
               "Send this much of a response before limit-rate applies, in KB."),
    Annotation("enable-access-log", "enable_access_log", v.boolean, "bool", "true (ConfigMap)",
               "Log requests of this Ingress in the access log."),
)
register(*ANNOTATIONS)
