"""docs/configmap.md from the settings registry (`KEYS`): every ConfigMap key, its default and
what it does, so the reference cannot drift from the code.

    python -m ingressctl.ingress.configmap_reference > docs/configmap.md
"""

from __future__ import annotations

import dataclasses

from .settings import KEYS, Settings

DIFFERENCES = {
    "error-log-level": "ingress-nginx's default is notice; ingressctl's is warn (no reload chatter).",
    "proxy-real-ip-cidr": "as ingress-nginx, every address by default: set it to your load balancers.",
    "max-draining-generations": "ingressctl only (ingress-nginx keeps every draining generation: 0).",
    "allow-snippet-annotations": "off by default, as in ingress-nginx since 1.9; snippets are re-emitted "
                                 "from tokens, never pasted.",
    "ssl-protocols": "TLSv1 and TLSv1.1 are accepted but nginx's OpenSSL (security level 2) refuses them "
                     "at the handshake.",
    "block-cidrs": "answered 403 before any Ingress's own access rules: in ingress-nginx a location's "
                   "allowlist-source-range replaces the http-level deny and satisfy: any lets credentials "
                   "override it, so a tenant could readmit a blocked address.",
    "block-user-agents": "regexes are checked like regex paths (no whitespace, no nested repeats).",
    "add-headers": "values may name only a fixed set of nginx variables ($host, $request_id, $msec, ...); "
                   "a header that names another is left out and reported. At most 100 headers.",
    "proxy-set-headers": "as add-headers: a fixed set of variables, at most 100 headers.",
    "server-name-hash-bucket-size": "ingress-nginx computes it from the longest name; ingressctl uses 512, "
                                    "what a 253-character host needs, and refuses less.",
    "map-hash-bucket-size": "ingress-nginx's default is 64; ingressctl needs 512 (canary header values are "
                            "map keys) and refuses less.",
    "bind-address": "one key for both families (ingress-nginx has bind-address-ipv4 / -ipv6); it replaces "
                    "--listen-address for the listeners nginx opens.",
    "variables-hash-bucket-size": "refuses less than 256 (the default), which ingressctl's variables need.",
}
# Keys whose value is the opposite of their field's (disable-access-log sets enable_access_log).
SHOWN_DEFAULTS = {"disable-access-log": "false"}


def _default(field: str) -> str:
    value = getattr(Settings(), field)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return " ".join(str(x) for x in value) if len(value) < 6 else f"{len(value)} values (see deploy/base/configmap.yaml)"
    return str(value)


def render_reference() -> str:
    fields = {f.name for f in dataclasses.fields(Settings)}
    lines = ["# ConfigMap keys", "",
             "Generated from `ingressctl/ingress/settings.py` (`python -m ingressctl.ingress.configmap_reference`).",
             "Keys follow ingress-nginx's names and meaning; a bad value keeps the default and is reported",
             "(log, a Warning Event on the ConfigMap, the metric `ingressctl_problems{reason=...}`, `ingressctl validate",
             "--configmap`); an unknown key is a warning (reason UnknownConfigMapKey). Every key is",
             "listed with its default in `deploy/base/configmap.yaml`.", "",
             "| key | default | what it does | difference from ingress-nginx |", "| --- | --- | --- | --- |"]
    for key, (field, _, doc) in sorted(KEYS.items()):
        assert field in fields, key
        default = _default(field).replace("|", "\\\\|")
        default = SHOWN_DEFAULTS.get(key, default)
        lines.append(f"| `{key}` | `{default}` | {doc} | {DIFFERENCES.get(key, '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
