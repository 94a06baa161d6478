"""Adding the Gateway API build to an Ingress build: one Model, one nginx.

Gateway listeners on their own ports get servers of their own (`Server.ports`); a listener
on the Ingress HTTP port shares the Ingress servers. Rule when both claim a host on the
same address and port: the Ingress server keeps the
host and the Gateway routes for that host are left out and reported (Ingress came first
on this controller; a migration moves a host by deleting its Ingress). Host-less Gateway
routes take the default server only when no Ingress serves it (it answers 404).

Design choice: merging is a pure function of two results; neither build knows the other.
"""

from __future__ import annotations

import dataclasses

from ..ingress.build import BuildResult
from ..ingress.model import Problem, Server
from ..store import Snapshot
from .build import GatewayOptions, GatewayResult, build_gateway


def _free_default(server: Server) -> bool:
    return all(loc.status == 404 and not loc.upstream and not loc.ingress for loc in server.locations)


def _routes_of(server: Server, gw: GatewayResult) -> list[str]:
    """The HTTPRoutes ("ns/name") a Gateway server dispatches to."""
    variables = {loc.dispatch for loc in server.locations}
    return sorted({ch.route for d in gw.dispatches if d.variable in variables for ch in d.choices})


def merge(result: BuildResult, gw: GatewayResult) -> BuildResult:
    if not gw.servers and not gw.statuses:
        return result
    model = result.model
    servers = list(model.servers)
    index = {(s.host, s.ports): i for i, s in enumerate(servers)}
    problems = list(gw.problems)
    added: list[Server] = []
    for s in gw.servers:
        i = index.get((s.host, s.ports))
        if i is None:
            added.append(s)
        elif not s.host and _free_default(servers[i]):
            servers[i] = dataclasses.replace(servers[i], locations=s.locations)
        else:
            for route in _routes_of(s, gw):
                ns, _, name = route.partition("/")
                problems.append(Problem("HTTPRoute", ns, name, "HostConflict",
                                        f"host {s.host or '(default server)'} is served by an Ingress on the same "
                                        "port; this route is left out there", True))
    upstreams = {u.name: u for u in (*model.upstreams, *gw.upstreams)}
    certs = {c.file_name: c for c in (*model.certificates, *gw.certificates)}
    model = dataclasses.replace(
        model, servers=tuple(servers[:1] + sorted(servers[1:] + added, key=lambda s: s.host)),
        upstreams=tuple(upstreams[k] for k in sorted(upstreams)), dispatches=gw.dispatches,
        certificates=tuple(certs[k] for k in sorted(certs)))
    return dataclasses.replace(result, model=model, problems=result.problems + tuple(problems),
                               gateway=gw)


def with_gateway(result: BuildResult, snap: Snapshot, opts: GatewayOptions) -> BuildResult:
    return merge(result, build_gateway(snap, opts))
