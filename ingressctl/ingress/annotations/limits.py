"""Rate-limit annotations: requests per second/minute and connections per client IP.

Limits are per replica and per client address, answer 503 when exceeded (as ingress-nginx
does), and allow a burst of `limit * limit-burst-multiplier` requests.
"""

from __future__ import annotations

from .. import values as v
from . import Annotation, register

ANNOTATIONS = (
    Annotation("limit-rps", "limit_rps", lambda s: v.integer(s, 1, 1_000_000), "int", "",
               "Requests per second per client IP; above it (and the burst) requests get 503."),
    Annotation("limit-rpm", "limit_rpm", lambda s: v.integer(s, 1, 60_000_000), "int", "",
               "Requests per minute per client IP; above it (and the burst) requests get 503."),
    Annotation("limit-connections", "limit_connections", lambda s: v.integer(s, 1, 65_535), "int 1-65535", "",
               "Concurrent connections per client IP; more get 503."),
    Annotation("limit-burst-multiplier", "limit_burst_multiplier", lambda s: v.integer(s, 1, 1000), "int", "5",
               "Burst size as a multiple of limit-rps / limit-rpm."),
    Annotation("limit-whitelist", "limit_whitelist", v.cidr_list, "CIDR list", "",
               "Client networks exempt from the limits."),
)
register(*ANNOTATIONS)
