"""Assemble one explanation: server, location, route, decisions, backend, endpoints, and the
Ingresses that would have matched but do not serve (refused, lost a conflict, other class)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..ingress.annotations import PREFIX
from ..ingress.build import BuildResult, ingress_routes
from ..ingress.classes import ClassFilter
from ..ingress.model import Location, Model, Server, Upstream
from ..objects import Ingress
from ..store import Snapshot
from .decide import Decision, decide, server_redirect
from .gateway import dispatch_decision
from .match import Candidate, host_matches, internal_paths, location_label, select_location, select_server
from .request import Request


@dataclass(frozen=True)
class RouteRef:
    """The object, rule and path a location came from: an Ingress, or an HTTPRoute or
    GRPCRoute (then `path` is the index of the match in the rule)."""

    kind: str
    namespace: str
    name: str
    rule: int | None  # index in spec.rules; None: spec.defaultBackend
    path: int | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        if self.kind != "Ingress":
            return f"{self.kind} {self.key} rules[{self.rule}].matches[{self.path}]"
        where = "defaultBackend" if self.rule is None else f"rules[{self.rule}].http.paths[{self.path}]"
        return f"{self.kind} {self.key} {where}"


@dataclass(frozen=True)
class EndpointState:
    address: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    used: bool  # nginx sends requests to it (ready, or serving+terminating when none is ready)


@dataclass(frozen=True)
class Explanation:
    request: Request
    server: str  # host of the server block, "" = default server
    server_why: str
    location: str | None
    candidates: tuple[Candidate, ...]
    route: RouteRef | None
    status: int | None
    redirect: str
    backend: dict[str, Any] | None  # {"service": "ns/name", "port": name or number}
    upstream: str
    endpoints: tuple[EndpointState, ...]
    annotations: tuple[tuple[str, str, str], ...]  # (key, value, "ns/name" that set it)
    reasons: tuple[str, ...]
    split: tuple[tuple[str, float], ...] = ()  # a random split between Services: ("ns/name:port", percent)

    @property
    def ingress(self) -> str | None:
        return self.route.key if self.route is not None and self.route.kind == "Ingress" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status, "ingress": self.ingress, "backend": self.backend, "location": self.location,
            "reasons": list(self.reasons), "redirect": self.redirect or None,
            "request": {"scheme": self.request.scheme, "host": self.request.host, "path": self.request.path,
                        "uri": self.request.uri, "method": self.request.method},
            "server": {"host": self.server or None, "why": self.server_why},
            "route": None if self.route is None else {"kind": self.route.kind, "namespace": self.route.namespace,
                                                      "name": self.route.name, "rule": self.route.rule,
                                                      "path": self.route.path},
            "candidates": [{"location": c.match, "matched": c.matched, "chosen": c.chosen, "why": c.why}
                           for c in self.candidates],
            "upstream": self.upstream or None,
            "endpoints": [e.__dict__ for e in self.endpoints],
            "annotations": [{"key": k, "value": v, "ingress": i} for k, v, i in self.annotations],
        }


def explain(snap: Snapshot, result: BuildResult, req: Request, classes: ClassFilter,
            http_port: int = 80, https_port: int = 443) -> Explanation:
    model = result.model
    server, server_why = select_server(model, req.host, req.port)
    uri = req.uri
    candidates: list[Candidate] = []
    loc: Location | None = None
    early = server_redirect(server, req, http_port, https_port)
    if early is not None:
        decision = early
    elif uri is None:
        decision = _answer(400, f"path {req.path!r} climbs above the root: nginx answers 400")
    elif uri in internal_paths(server):
        decision = _answer(404, f"{uri} is an internal location of ingressctl: nginx answers 404")
    else:
        loc, candidates = select_location(server, uri)
        decision = (decide(server, loc, req, uri, https_port) if loc is not None
                    else _answer(404, "no location matches: 404"))
    route = _origin(snap, server, loc) if loc is not None else None
    if loc is not None and uri is not None and loc.dispatch:  # a Gateway host: its dispatch maps decide
        decision, chosen = dispatch_decision(model, loc, req, uri)
        route = RouteRef(chosen.kind, chosen.namespace, chosen.name, chosen.rule, chosen.match) if chosen else None
    reasons = [f"server: {server_why}"]
    if loc is not None:
        reasons.append(f"location {location_label(loc)}: " + next(c.why for c in candidates if c.chosen))
        if route is not None:
            reasons.append(f"from {route}")
    reasons += decision.reasons
    reasons += _bystanders(snap, result, req, uri or "", route, classes)
    upstream = model_upstream(model, decision.upstream) if decision.status is None else None
    backend = None
    if upstream is not None and decision.status is None:
        port: int | str = upstream.port
        if loc is not None and not decision.canary and loc.upstream == decision.upstream:
            port = _written_port(loc.service, upstream.port)
        backend = {"service": upstream.service, "port": port}
    endpoints = _endpoints(snap, upstream.service, upstream.port, upstream) if upstream else ()
    if upstream is not None and upstream.external:
        reasons.append(f"ExternalName: nginx resolves {upstream.external_name} per request")
    annotations = _annotations(snap, route, decision.canary, loc)
    owner = _host_owner(snap, result, server.host) if not server.ports else None
    if owner is not None and (route is None or owner.meta.key != route.key):
        # the route's own server-level annotations are not in force here; the owner's are
        annotations = tuple(a for a in annotations if a[0][len(PREFIX):] not in SERVER_LEVEL or a[2] == owner.meta.key)
        annotations += tuple((a, v, owner.meta.key) for a, v in sorted(owner.meta.annotations.items())
                             if a.startswith(PREFIX) and a[len(PREFIX):] in SERVER_LEVEL)
        reasons.append(f"server-level settings of {server.host} come from its oldest Ingress {owner.meta.key}")
    split = tuple((_service_of(model, u), p) for u, p in decision.weights) if decision.status is None else ()
    return Explanation(req, server.host, server_why, location_label(loc) if loc else None, tuple(candidates), route,
                       decision.status, decision.redirect, backend, decision.upstream if backend else "",
                       endpoints, annotations, tuple(reasons), split)


def _service_of(model: Model, upstream: str) -> str:
    """'ns/name:port' of an upstream, or the status a split share answers ("500")."""
    u = model_upstream(model, upstream)
    return f"{u.service}:{u.port}" if u is not None else upstream


# Annotations that act on the whole server block: the host's oldest Ingress sets them.
SERVER_LEVEL = frozenset({"server-alias", "from-to-www-redirect", "server-snippet", "auth-tls-secret",
                          "auth-tls-verify-client", "auth-tls-verify-depth"})


def _host_owner(snap: Snapshot, result: BuildResult, host: str) -> Ingress | None:
    """The oldest served Ingress with a rule for `host` (None for the default server)."""
    if not host:
        return None
    served = {f"{s.namespace}/{s.name}" for s in result.statuses}
    owners = [i for k, i in snap.ingresses.items() if k in served and any(r.host == host for r in i.rules)]
    return min(owners, key=lambda i: i.meta.age_key, default=None)


def _answer(status: int, why: str) -> Decision:
    return Decision().answer(status, why)


def model_upstream(model: Model, name: str) -> Upstream | None:
    return next((u for u in model.upstreams if u.name == name), None) if name else None


def _written_port(label: str, number: int) -> int | str:
    """The backend port as the Ingress wrote it (name or number), from 'ns/name:port'."""
    port = label.rpartition(":")[2]
    return int(port) if port.isdigit() else port or number


def _origin(snap: Snapshot, server: Server, loc: Location) -> RouteRef | None:
    """The Ingress rule and path a location came from. Another route kind (a Gateway HTTPRoute)
    plugs in here: when its build marks its locations with their route, return a RouteRef of
    that kind; everything else in explain works on locations and is kind-agnostic."""
    ing = snap.ingresses.get(loc.ingress) if loc.ingress else None
    if ing is None:
        return None
    candidates = [(ri, pi, p) for host in (server.host, "") for ri, rule in enumerate(ing.rules) if rule.host == host
                  for pi, p in enumerate(rule.paths)]
    for ri, pi, p in candidates:
        if loc.path in _forms(p.path, p.path_type):
            return RouteRef("Ingress", ing.meta.namespace, ing.meta.name, ri, pi)
    # a copy the build made (an exact /p beside an Exact /p/): the longest Prefix path it falls under
    under = [(len(p.path), ri, pi) for ri, pi, p in candidates if p.path_type != "Exact"
             and _path_matches(p.path, "Prefix", loc.path, False)]
    if under:
        _, ri, pi = max(under)
        return RouteRef("Ingress", ing.meta.namespace, ing.meta.name, ri, pi)
    return RouteRef("Ingress", ing.meta.namespace, ing.meta.name, None, None)


def _forms(path: str, path_type: str) -> set[str]:
    """The location paths the build makes from one Ingress path (see ingress.build._locations)."""
    base = path.rstrip("/") or "/"
    if path_type == "Exact":
        return {path}
    return {path, base, base + "/", re.sub(r"([.+])", r"\\\1", base) + "(/|$)"}


def _annotations(snap: Snapshot, route: RouteRef | None, canary: bool,
                 loc: Location | None) -> tuple[tuple[str, str, str], ...]:
    out = []
    if route is not None and route.kind != "Ingress":
        return ()
    keys = [route.key] if route is not None else []
    if loc is not None and loc.canary is not None and route is not None:
        keys += [k for k, i in snap.ingresses.items() if i.meta.namespace == route.namespace and k != route.key
                 and i.meta.annotations.get(PREFIX + "canary") == "true" and _rule_claims(i, loc.path)]
    for k in keys:
        ing = snap.ingresses[k]
        out += [(a, v, k) for a, v in sorted(ing.meta.annotations.items()) if a.startswith(PREFIX)]
    return tuple(out)


def _rule_claims(ing: Ingress, path: str) -> bool:
    want = path.rstrip("/") or "/"
    return any((p.path.rstrip("/") or "/") == want for r in ing.rules for p in r.paths)


def _endpoints(snap: Snapshot, service: str, port: int, upstream: Upstream) -> tuple[EndpointState, ...]:
    ns, _, name = service.partition("/")
    svc = snap.service(ns, name)
    sp = svc.port_for(port) if svc is not None else None
    if sp is None:
        return ()
    used = {(e.address, e.port) for e in upstream.endpoints}
    out = []
    for sl in snap.slices(ns, name):
        target = next((p.port for p in sl.ports if p.name == sp.name and p.protocol == sp.protocol), 0)
        for ep in sl.endpoints:
            for addr in ep.addresses:
                out.append(EndpointState(addr, target, ep.ready, ep.serving, ep.terminating,
                                         (addr, target) in used))
    return tuple(sorted(set(out), key=lambda e: (e.address, e.port)))


def _request_matches(ing: Ingress, req: Request, uri: str, use_regex: bool) -> bool:
    """Lenient: does any rule of `ing` name this host and path (valid or not)?"""
    for rule in ing.rules:
        if rule.host and not host_matches(rule.host.lower(), req.host):
            continue
        for p in rule.paths:
            if _path_matches(p.path, p.path_type, uri, use_regex):
                return True
    return not ing.rules and ing.default_backend is not None


def _path_matches(path: str, path_type: str, uri: str, use_regex: bool) -> bool:
    if path_type == "ImplementationSpecific" and use_regex:
        try:
            return re.match("^" + path, uri, re.IGNORECASE) is not None
        except re.error:
            return False
    if path_type == "Exact":
        return uri == path
    base = path.rstrip("/")
    return not base or uri == base or uri.startswith(base + "/")


def _bystanders(snap: Snapshot, result: BuildResult, req: Request, uri: str, route: RouteRef | None,
                classes: ClassFilter) -> list[str]:
    """Ingresses naming this host and path that do not serve it, and why."""
    served = {f"{s.namespace}/{s.name}" for s in result.statuses}
    out = []
    for key, ing in sorted(snap.ingresses.items(), key=lambda kv: kv[1].meta.age_key):
        if route is not None and key == route.key:
            continue
        use_regex = ing.meta.annotations.get(PREFIX + "use-regex") == "true"
        if not _request_matches(ing, req, uri, use_regex):
            continue
        if not classes.is_ours(ing, snap.classes):
            out.append(f"Ingress {key} also matches but is not served by this controller "
                       f"({classes.why_not(ing, snap.classes)})")
        elif key not in served:
            why = "; ".join(f"{p.reason}: {p.message}" for p in result.problems
                            if (p.namespace, p.name) == (ing.meta.namespace, ing.meta.name) and not p.warning)
            lead = "no route: " if route is None else "also: "
            out.append(f"{lead}Ingress {key} was refused: {why or 'invalid'}")
        elif ing.meta.annotations.get(PREFIX + "canary") == "true":
            continue
        else:
            for reason, message in _left_out(ing, result, req, uri):
                if reason == "PathConflict" and route is not None:
                    out.append(f"Ingress {key} also claims this path but lost the conflict to the older "
                               f"Ingress {route.key}")
                else:
                    out.append(f"Ingress {key} also matches but does not serve it: {reason}: {message}")
    return out


def _left_out(ing: Ingress, result: BuildResult, req: Request, uri: str) -> list[tuple[str, str]]:
    """Problems saying that a route of `ing` matching this request is not served: a conflict
    lost to an older Ingress, or a host owned by another namespace."""
    routes, _ = ingress_routes(ing, True)
    mine = [p for p in result.problems if (p.namespace, p.name) == (ing.meta.namespace, ing.meta.name)
            and p.reason in ("PathConflict", "HostOwned")]
    out = []
    for p in mine:
        for r in routes:
            if (not r.host or host_matches(r.host, req.host)) and _route_matches(r.kind, r.path, uri) \
                    and f"path {r.path} ({r.kind})" in p.message and f"host {r.host or '*'} " in p.message:
                out.append((p.reason, p.message))
                break
    return out


def _route_matches(kind: str, path: str, uri: str) -> bool:
    if kind == "regex":
        return _path_matches(path, "ImplementationSpecific", uri, True)
    return _path_matches(path, "Exact" if kind == "exact" else "Prefix", uri, False)
