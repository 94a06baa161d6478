"""The route table of a model (host, location -> where requests go) and its difference.

Used by `ingressctl diff` to say what a change does in routing terms before showing the
nginx.conf diff: a route is one location of one server block, and its target is the
Service and port it proxies to (with its canary), or the status nginx answers itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ingress.model import Location, Model
from .match import location_label


@dataclass(frozen=True)
class RouteChange:
    change: str  # added | removed | changed
    host: str  # "*" for the default server
    location: str
    before: str
    after: str

    def __str__(self) -> str:
        where = f"{self.host} {self.location}"
        if self.change == "added":
            return f"+ {where} -> {self.after}"
        if self.change == "removed":
            return f"- {where} -> {self.before}"
        return f"~ {where}: {self.before} => {self.after}"


def _target(model: Model, loc: Location) -> str:
    ups = {u.name: u for u in model.upstreams}
    if loc.status:
        return f"status {loc.status}"
    up = ups.get(loc.upstream)
    text = f"{up.service}:{up.port}" if up else loc.upstream
    if loc.ingress:
        text += f" (Ingress {loc.ingress})"
    if loc.canary is not None:
        canary = ups.get(loc.canary.upstream)
        text += f" + canary {canary.service}:{canary.port}" if canary else " + canary"
    return text


def route_table(model: Model) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for s in model.servers:
        host = s.host or "*"
        if s.redirect_to:
            out[(host, "(server)")] = f"308 to {s.redirect_to}"
        for loc in s.locations:
            out[(host, location_label(loc))] = _target(model, loc)
    return out


def diff_routes(before: Model, after: Model) -> list[RouteChange]:
    a, b = route_table(before), route_table(after)
    out = []
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            out.append(RouteChange("removed", *key, a[key], ""))
        elif key not in a:
            out.append(RouteChange("added", *key, "", b[key]))
        elif a[key] != b[key]:
            out.append(RouteChange("changed", *key, a[key], b[key]))
    return out
