"""Text form of an explanation: the answer first, then the evidence in matching order."""

from __future__ import annotations

from .explain import Explanation


def format_text(e: Explanation) -> str:
    r = e.request
    lines = [f"{r.method} {r.scheme}://{r.host}{r.request_uri}"]
    if e.status is not None:
        lines.append(f"answer: nginx answers {e.status}" + (f" (Location: {e.redirect})" if e.redirect else ""))
    elif e.backend is not None:
        lines.append(f"answer: proxied to Service {e.backend['service']} port {e.backend['port']} "
                     f"(upstream {e.upstream})")
    lines.append(f"server: {e.server or 'default server'} — {e.server_why}")
    if e.candidates:
        lines.append("locations, in nginx's order:")
        for c in e.candidates:
            mark = "=>" if c.chosen else "  "
            origin = f" [{c.location.ingress}]" if c.location.ingress else ""
            lines.append(f"  {mark} {c.match:<30} {c.why}{origin}")
    lines.append(f"route: {e.route}" if e.route else "route: none")
    if e.annotations:
        lines.append("annotations in force:")
        lines += [f"  {k}: {v}  (from {i})" for k, v, i in e.annotations]
    if e.endpoints:
        lines.append("endpoints:")
        for ep in e.endpoints:
            state = "ready" if ep.ready else "terminating" if ep.terminating else "not ready"
            lines.append(f"  {ep.address}:{ep.port} {state}{'' if ep.used else ' (not used)'}")
    lines.append("why:")
    lines += [f"  - {reason}" for reason in e.reasons]
    return "\n".join(lines) + "\n"
