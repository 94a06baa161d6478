"""Proxy and upstream annotations: timeouts, buffers, protocol, balancing, retries."""

from __future__ import annotations

from .. import values as v
from . import Annotation, register
from .shapes import hash_key, next_upstream, on_off


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
    Annotation("proxy-buffering", "proxy_buffering", on_off, "on|off", "on (ConfigMap)",
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
)
register(*ANNOTATIONS)
