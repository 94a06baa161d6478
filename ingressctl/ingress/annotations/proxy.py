"""Proxy annotations: timeouts, body size, backend protocol."""

from __future__ import annotations

from .. import values as v
from . import Annotation, register

register(
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
)
