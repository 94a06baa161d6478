"""CORS annotations: preflight answers and Access-Control-* headers.

Origins are matched against an anchored regex built from the validated list (`*.` matches
exactly one label); only a matching Origin is echoed back.
"""

from __future__ import annotations

from .. import values as v
from . import Annotation, register
from .shapes import header_list, method_list, origin_list

ANNOTATIONS = (
    Annotation("enable-cors", "enable_cors", v.boolean, "bool", "false",
               "Answer CORS preflight requests (OPTIONS, 204) and add Access-Control-* headers."),
    Annotation("cors-allow-origin", "cors_allow_origin", origin_list, "origin list", "*",
               "Allowed origins: '*' or a comma-separated list of scheme://host[:port], '*.' wildcards."),
    Annotation("cors-allow-methods", "cors_allow_methods", method_list, "method list",
               "GET, PUT, POST, DELETE, PATCH, OPTIONS", "Access-Control-Allow-Methods."),
    Annotation("cors-allow-headers", "cors_allow_headers", header_list, "header list",
               "DNT, Keep-Alive, User-Agent, X-Requested-With, If-Modified-Since, Cache-Control, "
               "Content-Type, Range, Authorization", "Access-Control-Allow-Headers."),
    Annotation("cors-allow-credentials", "cors_allow_credentials", v.boolean, "bool", "true",
               "Access-Control-Allow-Credentials."),
    Annotation("cors-expose-headers", "cors_expose_headers", header_list, "header list", "",
               "Access-Control-Expose-Headers."),
    Annotation("cors-max-age", "cors_max_age", lambda s: v.integer(s, 0, 1 << 31), "int (seconds)", "1728000",
               "Access-Control-Max-Age: how long a browser may cache the preflight answer."),
)
register(*ANNOTATIONS)
