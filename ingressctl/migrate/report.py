"""Text form of a migration report (JSON is `Report.to_json`)."""

from __future__ import annotations

from .check import Difference, Report


def _diff_line(d: Difference) -> str:
    return f"{d.what}: ingress-nginx {d.ingress_nginx}; ingressctl {d.ingressctl}"


def format_text(r: Report) -> str:
    c = r.source.classes
    lines = [f"ingress-nginx: controller {c.controller}, class annotation {c.ingress_class!r}"
             + (", Ingresses without class too" if c.watch_without_class else "")
             + f"; ConfigMap {r.source.configmap or '(none)'}; controller {r.source.controller or '(not in the input)'}",
             f"{len(r.ingresses)} Ingress(es): {r.count('same')} same, {r.count('differs')} differ, "
             f"{r.count('refused')} refused; {len(r.other_classes)} of other classes not checked", ""]
    for i in r.ingresses:
        lines.append(f"{i.verdict:<8} {i.ingress}")
        lines += [f"         - {_diff_line(d)}" for d in i.differences]
        lines += [f"         - {reason}" for reason in i.reasons]
    for title, items in (("ConfigMap keys", r.configmap), ("controller flags", r.flags),
                         ("defaults that differ", r.notes)):
        if items:
            lines += ["", f"{title}:"] + [f"  - {_diff_line(d)}" for d in items]
    if r.read_problems:
        lines += ["", "objects that could not be read:"] + [f"  - {p}" for p in r.read_problems]
    return "\n".join(lines) + "\n"
