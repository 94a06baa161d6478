"""Error-page, default-backend and mirroring annotations."""

from __future__ import annotations

from .. import values as v
from . import Annotation, register
from .shapes import mirror_target, status_codes

ANNOTATIONS = (
    Annotation("custom-http-errors", "custom_http_errors", status_codes, "status list", "",
               "Backend responses with these codes (comma-separated, 400-599) are replaced by the answer "
               "of the default-backend annotation's Service, else of --default-backend-service (headers "
               "X-Code, X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name)."),
    Annotation("default-backend", "default_backend", v.k8s_name, "Service name", "",
               "Service (same namespace, first port) for custom-http-errors and for paths whose "
               "Service has no endpoints."),
    Annotation("mirror-target", "mirror_target", mirror_target, "URL", "",
               "Copy every request to this URL (responses are ignored); may end in $request_uri.",
               risk="High"),
    Annotation("mirror-host", "mirror_host", v.host, "host name", "(mirror-target's host)",
               "Host header of the mirrored requests."),
    Annotation("mirror-request-body", "mirror_request_body", v.boolean, "bool", "true",
               "Include the request body in mirrored requests."),
)
register(*ANNOTATIONS)
