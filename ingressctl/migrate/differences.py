"""What ingress-nginx does where ingressctl knowingly differs: the hand-kept half of the check.

`SAME` lists build reports that describe the environment (a missing Service, no endpoints,
a missing Secret): ingress-nginx answers the same way, so they are not differences.
`INGRESS_NGINX_DOES` says, per build report that ingressctl makes for a served Ingress,
what ingress-nginx does instead. `FLAGS` maps the controller flags ingressctl understands;
any other flag is unsupported. `DEFAULTS` lists ConfigMap defaults that differ.
"""

from __future__ import annotations

SAME = frozenset({"ServiceNotFound", "PortNotFound", "NoEndpoints", "SecretNotFound", "InvalidCertificate",
                  "DefaultBackendNotFound", "AuthSecretNotFound", "InvalidAuthSecret", "CanaryWithoutMain",
                  "AliasConflict"})

INGRESS_NGINX_DOES = {
    "UnsupportedAnnotation": "applies it",
    "CustomErrorsIgnored": "serves those status codes from its own default backend",
    "CanaryNoEndpoints": "sends the canary's share to a backend without endpoints (503)",
    "CanaryConflict": "merges one of the canaries",
    "TLSConflict": "takes the certificate of one of the Ingresses",
    "ServiceUpstreamUnavailable": "proxies to the Service's cluster IP",
    "InvalidExternalName": "resolves the ExternalName and proxies to it",
}

# ingress-nginx flag -> what ingressctl offers ("" = same name and meaning).
FLAGS = {
    "--configmap": "", "--controller-class": "", "--ingress-class": "", "--election-id": "",
    "--publish-service": "", "--publish-status-address": "", "--default-backend-service": "",
    "--watch-ingress-without-class": "", "--watch-namespace": "", "--http-port": "", "--https-port": "",
    "--validating-webhook": "--webhook-port", "--validating-webhook-certificate": "--webhook-cert",
    "--validating-webhook-key": "--webhook-key", "--v": "-v/-vv", "--enable-metrics": "always on (/metrics)",
    "--update-status": "always on (the Lease holder writes status)", "--ingress-class-by-name": "always on",
    "--healthz-port": "--status-port (/healthz)",
}

# ConfigMap key -> (ingress-nginx default, ingressctl default), where they differ.
DEFAULTS = {
    "upstream-keepalive-connections": ("320", "32"),
}
