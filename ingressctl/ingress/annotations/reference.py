"""The annotation reference table (`docs/annotations.md`), generated from the registry.

`python -m ingressctl.ingress.annotations.reference > docs/annotations.md` rewrites it;
tests/test_annotations_docs.py fails when the committed file differs from this output, so
the documentation cannot drift from the code.
"""

from __future__ import annotations

import importlib

from . import PREFIX, REGISTRY, SECURITY_CATEGORIES

_FAMILIES = {
    "routing": "Paths, rewrites, redirects and the host's server",
    "proxy": "Upstream and proxy",
    "access": "Access control and authentication",
    "limits": "Rate limits",
    "cors": "CORS",
    "canary": "Canary",
    "affinity": "Session affinity",
    "backendtls": "TLS to the backend",
    "errors": "Errors, fallbacks and mirroring",
    "snippet": "Snippets",
}

HEADER = f"""# Annotation reference

Generated from the annotation registry (`ingressctl/ingress/annotations/`) by
`python -m ingressctl.ingress.annotations.reference > docs/annotations.md`; do not edit by hand.

All names take the prefix `{PREFIX}`. A value that does not have the documented type is
refused with a reason naming the annotation and the value, and the Ingress is reported and
skipped (other Ingresses are unaffected). Annotations not in this table are reported as
unsupported warnings. Risk follows ingress-nginx's scale: how much an Ingress author can
change beyond their own routes with it.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_reference() -> str:
    out = [HEADER, "\n## Not supported: refused or warned\n",
           "An annotation ingressctl does not implement is a warning (the Ingress is served without it),",
           "unless ignoring it would weaken security or move where TLS ends: then the Ingress is refused",
           "with a reason until ingressctl implements it. Refused categories (name prefixes):\n"]
    out += [f"- `{prefix}*`: it {what}" if prefix.endswith("-") else f"- `{prefix}`: it {what}"
            for prefix, what in SECURITY_CATEGORIES]
    for family, title in _FAMILIES.items():
        module = importlib.import_module(f"{__package__}.{family}")
        items = sorted(module.ANNOTATIONS, key=lambda a: a.name)
        out += [f"\n## {title}\n", "| Annotation | Type | Default | What it does | Risk |",
                "|---|---|---|---|---|"]
        for a in items:
            default = f"`{_cell(a.default)}`" if a.default else ""
            extra = " Needs `allow-snippet-annotations: \"true\"`." if a.snippet else ""
            out.append(f"| `{a.name}` | {_cell(a.type)} | {default} | {_cell(a.doc)}{extra} | {a.risk} |")
    listed = sum(len(importlib.import_module(f"{__package__}.{f}").ANNOTATIONS) for f in _FAMILIES)
    assert listed == len(REGISTRY), "an annotation family module is missing from _FAMILIES"
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
