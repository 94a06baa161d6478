"""Canary annotations: send part of a host+path's traffic to another Ingress's backend.

A canary Ingress (`canary: "true"`) shares host and path with a main Ingress; build attaches
it to the main location instead of reporting a conflict. Header beats cookie beats weight.
"""

from __future__ import annotations

from .. import values as v
from . import Annotation, register, register_check
from .config import IngressConfig
from .shapes import header_value

ANNOTATIONS = (
    Annotation("canary", "canary", v.boolean, "bool", "false",
               "This Ingress is a canary of the Ingress serving the same host and path."),
    Annotation("canary-by-header", "canary_by_header", v.header_name, "header name", "",
               "Header deciding the canary: 'always' -> canary, 'never' -> main "
               "(or canary-by-header-value)."),
    Annotation("canary-by-header-value", "canary_by_header_value", header_value, "text", "",
               "With canary-by-header: this exact header value routes to the canary."),
    Annotation("canary-by-header-pattern", "canary_by_header_pattern",
               lambda s: v.regex_value(s, "canary-by-header-pattern"), "regex", "",
               "With canary-by-header and no canary-by-header-value: a header value matching this regular "
               "expression (case-sensitive, unanchored) routes to the canary."),
    Annotation("canary-by-cookie", "canary_by_cookie", v.token, "cookie name", "",
               "Cookie deciding the canary: 'always' -> canary, 'never' -> main."),
    Annotation("canary-weight", "canary_weight", lambda s: v.integer(s, 0, 1_000_000), "int", "0",
               "Share of the remaining requests (out of canary-weight-total) sent to the canary."),
    Annotation("canary-weight-total", "canary_weight_total", lambda s: v.integer(s, 1, 1_000_000), "int", "100",
               "Total against which canary-weight is counted."),
)
register(*ANNOTATIONS)


@register_check
def _canary_consistent(cfg: IngressConfig) -> list[tuple[str, str]]:
    out = []
    if cfg.canary_weight is not None and cfg.canary_weight > cfg.canary_weight_total:
        out.append(("canary-weight", (f"canary-weight {cfg.canary_weight} is above canary-weight-total "
                                     f"{cfg.canary_weight_total}")))
    if cfg.canary_by_header_value is not None and cfg.canary_by_header is None:
        out.append(("canary-by-header-value", "canary-by-header-value needs canary-by-header"))
    if cfg.canary_by_header_pattern is not None and cfg.canary_by_header is None:
        out.append(("canary-by-header-pattern", "canary-by-header-pattern needs canary-by-header"))
    return out
