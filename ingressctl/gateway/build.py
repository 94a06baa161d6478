"""Gateway API objects -> the same Model parts `ingress.build` produces (servers, upstreams)
plus request dispatch, and the status of every object as data.

Pure: a snapshot in, a `GatewayResult` out. `merge.with_gateway` adds it to an Ingress build.

Design choice: every host is one nginx server whose `location /` takes its target from a
Dispatch (gateway/model.py); the choices are listed in the spec's precedence order:
host specificity, Exact path, longest path (a PathPrefix before a RegularExpression of the
same length: the spec leaves regexes to implementations), method, most header matches,
most query matches, oldest route, route namespace/name, rule order, match order.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..ingress import values as v
from ..ingress.annotations.config import IngressConfig
from ..ingress.backends import BackendResolver
from ..ingress.model import Certificate, Location, Problem, Server, Upstream
from ..ingress.problems import Problems
from ..ingress.tls import TLSError, certificate_from_secret
from ..objects import ServiceBackend
from ..objects.gateway import (
    GATEWAY_GROUP,
    Gateway,
    HeaderModifier,
    HTTPMatch,
    HTTPRoute,
    HTTPRule,
    ObjectRef,
    Redirect,
)
from ..store import Snapshot
from .attach import Attachment, attach, gateway_status, listener_problems, parent_gateway, parent_status
from .model import Choice, Condition, Dispatch, HeaderEntry, HeaderMap, Split, UriEntry, UriMap
from .status import Condition as StatusCondition
from .status import ObjectStatus, ParentStatus

DEFAULT_CONTROLLER = "ingressctl.io/gateway-controller"
_QUERY_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}\Z")
Target = tuple[tuple[str, int], ...]  # (upstream name or "500"/"503", weight) of one rule
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


@dataclass(frozen=True)
class GatewayOptions:
    controller_name: str = DEFAULT_CONTROLLER
    ingress_http_port: int = 80  # a listener on this port shares the Ingress servers (merge.py)
    ingress_https_port: int = 443  # TLS for Ingress: an HTTP listener cannot share it
    now: datetime = datetime(2000, 1, 1, tzinfo=UTC)  # certificate validity is checked against it
    balancer: bool = True  # the Lua balancer runs (--dynamic-endpoints): rule timeouts need it


@dataclass(frozen=True)
class GatewayResult:
    servers: tuple[Server, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    certificates: tuple[Certificate, ...] = ()
    dispatches: tuple[Dispatch, ...] = ()
    statuses: tuple[ObjectStatus, ...] = ()
    parents: tuple[ParentStatus, ...] = ()
    problems: tuple[Problem, ...] = ()


def literal(value: str) -> str:
    """A regex matching exactly `value`: letters, digits, '/', '_' and '-' as they are, every
    other byte as \\xHH (so nothing in it is regex or nginx syntax)."""
    return "".join(chr(b) if chr(b).isalnum() and b < 128 or chr(b) in "/_-" else f"\\x{b:02x}"
                   for b in value.encode())


def match_conditions(m: HTTPMatch) -> list[tuple[str, str]]:
    """(nginx variable, regex) pairs of one match; raises InvalidValue for what we cannot serve."""
    out: list[tuple[str, str]] = []
    if m.path_type == "Exact":
        out.append(("$uri", f"^{literal(v.path(m.path))}$"))
    elif m.path_type == "PathPrefix":
        prefix = v.path(m.path).rstrip("/")
        if prefix:
            out.append(("$uri", f"^{literal(prefix)}(/|$)"))
    elif m.path_type == "RegularExpression":
        out.append(("$uri", f"^(?:{v.regex_path(m.path)})$"))
    else:
        raise v.InvalidValue(f"path type {m.path_type!r} is not Exact, PathPrefix or RegularExpression")
    if m.method:
        out.append(("$request_method", f"^{v.enum(m.method, _METHODS)}$"))
    for typ, name, value in m.headers:
        var = "$http_" + v.header_name(name).lower().replace("-", "_")
        out.append((var, _value_regex(typ, value, f"header {name}")))
    for typ, name, value in m.query:
        if not _QUERY_NAME.match(name):
            raise v.InvalidValue(f"query parameter name {name!r}: only letters, digits and '_' are served")
        out.append((f"$arg_{name}", _value_regex(typ, value, f"query parameter {name}")))
    return out


_RESERVED_HEADERS = ("host", "connection", "upgrade", "x-real-ip", "x-forwarded-for", "x-forwarded-proto",
                     "x-forwarded-host", "x-forwarded-port", "x-request-id")
_HEADER_VALUE_UNSAFE = re.compile(r'["\\$\x00-\x1f\x7f]')


def header_changes(rule: HTTPRule) -> tuple[tuple[str, str, bool], ...]:
    """A RequestHeaderModifier as (lower-case name, value, append) triples: value "" = remove,
    append = add (joined to the client's value with ',', as the spec's conformance expects);
    raises InvalidValue."""
    return _modifier_changes(rule.request_headers, "RequestHeaderModifier", _RESERVED_HEADERS)


# Response headers nginx itself frames the answer with, and Set-Cookie (several lines, which
# one kept value would merge): a route may not touch them.
_RESERVED_RESPONSE_HEADERS = ("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
                              "set-cookie")


def response_header_changes(rule: HTTPRule) -> tuple[tuple[str, str, bool], ...]:
    """A ResponseHeaderModifier, as `header_changes` (add joins the backend's value)."""
    return _modifier_changes(rule.response_headers, "ResponseHeaderModifier", _RESERVED_RESPONSE_HEADERS)


def _modifier_changes(m: HeaderModifier | None, what: str, reserved: tuple[str, ...]
                      ) -> tuple[tuple[str, str, bool], ...]:
    if m is None:
        return ()
    out: dict[str, tuple[str, bool]] = {}
    changes = [*((n, val, False) for n, val in m.set), *((n, val, True) for n, val in m.add),
               *((n, "", False) for n in m.remove)]
    for name, value, append in changes:
        key = v.header_name(name).lower()
        if key in reserved:
            raise v.InvalidValue(f"{what}: header {name} is set by ingressctl itself")
        if len(value) > 4096 or _HEADER_VALUE_UNSAFE.search(value):
            raise v.InvalidValue(f"{what}: the value of {name} has '\"', '\\', '$' or control "
                                 "characters, or is longer than 4096")
        out.setdefault(key, (value, append))
    return tuple((k, val, append) for k, (val, append) in out.items())


_WELL_KNOWN = {"http": 80, "https": 443}
REDIRECT_CODES = (301, 302, 303, 307, 308)  # the spec's enum (301 and 302 are Core)
_DURATION = re.compile(r"^(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}\Z")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
PathChange = tuple[str, str]  # (ReplaceFullPath | ReplacePrefixMatch, the validated new path)


def redirect_base(r: Redirect, listener_port: int, listener_scheme: str = "http") -> str:
    """scheme://host[:port] of a RequestRedirect's Location, as the spec derives it: the
    scheme's well-known port when a scheme is given, else the listener's port; no port in
    the URL when it is the scheme's well-known one. Raises InvalidValue."""
    scheme = v.enum(r.scheme, ("http", "https")) if r.scheme else listener_scheme
    if r.status_code not in REDIRECT_CODES:
        raise v.InvalidValue(f"redirect statusCode {r.status_code}: only 301, 302, 303, 307 and 308 are served")
    if r.port and not 1 <= r.port <= 65535:
        raise v.InvalidValue(f"redirect port {r.port} is out of range")
    port = r.port or (_WELL_KNOWN[scheme] if r.scheme else listener_port)
    host = v.host(r.hostname) if r.hostname else "$host"
    suffix = "" if _WELL_KNOWN[scheme] == port else f":{port}"
    return f"{scheme}://{host}{suffix}"


def path_change(kind: str, value: str, rule: HTTPRule, what: str) -> PathChange | None:
    """A RequestRedirect's or URLRewrite's path modifier, validated; None = the path is kept.
    ReplacePrefixMatch replaces the matched prefix, so every match of the rule must be a
    PathPrefix (the spec makes the route not Accepted otherwise)."""
    if not kind:
        return None
    if kind == "ReplaceFullPath":
        return kind, v.path(value)
    if kind != "ReplacePrefixMatch":
        raise v.InvalidValue(f"{what} path type {kind!r} is not ReplaceFullPath or ReplacePrefixMatch")
    if any(m.path_type != "PathPrefix" for m in rule.matches):
        raise v.InvalidValue(f"{what} ReplacePrefixMatch needs PathPrefix matches only")
    return kind, v.path(value) if value else ""


def timeout_seconds(rule: HTTPRule) -> str:
    """The rule's timeout for the Lua balancer (backendRequest, else request; '' = nginx's own
    timeouts, also for 0s, which the spec reads as no timeout). Raises InvalidValue."""
    t = rule.timeouts
    if t is None:
        return ""
    seconds = []
    for name, value in (("request", t.request), ("backendRequest", t.backend_request)):
        if value and not _DURATION.match(value):
            raise v.InvalidValue(f"timeouts.{name} {value!r} is not a duration such as 10s, 500ms or 1m30s")
        seconds.append(sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)(h|ms|m|s)", value)) if value else 0.0)
    request, backend = seconds
    if request and backend > request:
        raise v.InvalidValue("timeouts.backendRequest is longer than timeouts.request")
    chosen = backend or request
    return f"{chosen:.3f}" if chosen else ""


def _value_regex(typ: str, value: str, what: str) -> str:
    if typ == "Exact":
        if len(value) > 4096 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise v.InvalidValue(f"{what}: value has control characters or is longer than 4096")
        return f"^{literal(value)}$"
    if typ == "RegularExpression":
        return f"^(?:{v.regex_value(value, what + ' regex')})$"
    raise v.InvalidValue(f"{what}: match type {typ!r} is not Exact or RegularExpression")


_FILTERS = ("RequestRedirect", "RequestHeaderModifier", "ResponseHeaderModifier", "URLRewrite", "RequestMirror")
_GRPC_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier")  # a mirror copy would go out as HTTP/1.1


def route_invalid(route: HTTPRoute, balancer: bool = True) -> str:
    """'' when every value of the route can be served, else why not (`balancer`: the Lua
    balancer runs, which rule timeouts need)."""
    try:
        for h in route.hostnames:
            v.host(h)
        for rule in route.rules:
            for m in rule.matches:
                match_conditions(m)
            unsupported = [f for f in rule.filter_types if f not in (_GRPC_FILTERS if route.grpc else _FILTERS)]
            if unsupported:
                raise v.InvalidValue(f"filters {', '.join(unsupported)} are not supported"
                                     + (" on a GRPCRoute" if route.grpc else ""))
            for f in set(rule.filter_types) - {"RequestMirror"}:
                if rule.filter_types.count(f) > 1:
                    raise v.InvalidValue(f"filter {f} appears more than once in a rule")
            if rule.redirect is not None and rule.rewrite is not None:
                raise v.InvalidValue("a rule cannot have both RequestRedirect and URLRewrite")
            if rule.redirect is not None:
                redirect_base(rule.redirect, 80)
                path_change(rule.redirect.path_type, rule.redirect.path, rule, "redirect")
            if rule.rewrite is not None:
                if rule.rewrite.hostname:
                    v.host(rule.rewrite.hostname)
                path_change(rule.rewrite.path_type, rule.rewrite.path, rule, "URLRewrite")
            if timeout_seconds(rule) and not balancer:
                raise v.InvalidValue("timeouts need the Lua balancer (--dynamic-endpoints)")
            header_changes(rule)
            response_header_changes(rule)
    except v.InvalidValue as e:
        return str(e)
    return ""


@dataclass(frozen=True)
class _Effects:
    """What a rule does besides choosing a target (the same for every match of the rule)."""

    redirect: str = ""  # RequestRedirect: scheme://host[:port] of the Location
    redirect_path: PathChange | None = None
    rewrite: PathChange | None = None  # URLRewrite's path
    host: str = ""  # URLRewrite's hostname
    headers: tuple[tuple[str, str, bool], ...] = ()  # RequestHeaderModifier: (name, value "" = removed, append)
    response_headers: tuple[tuple[str, str, bool], ...] = ()  # ResponseHeaderModifier, the same way
    mirrors: tuple[str, ...] = ()  # RequestMirror: upstream names
    timeout: str = ""  # seconds, for the Lua balancer


@dataclass
class _Candidate:
    key: tuple[object, ...]
    conditions: list[tuple[str, str]]
    target: Target
    route: str
    prefix: str = ""  # a PathPrefix match's prefix without its trailing '/' (what ReplacePrefixMatch replaces)
    effects: _Effects = _Effects()
    grpc: bool = False  # from a GRPCRoute: served with grpc_pass
    rule: int = 0  # the rule and match index in the route
    match: int = 0


@dataclass
class _Builder:
    snap: Snapshot
    resolver: BackendResolver
    problems: Problems = field(default_factory=Problems)  # the same collector the Ingress build uses
    upstreams: dict[str, Upstream] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)

    def granted(self, from_kind: str, from_ns: str, ref: ObjectRef, ns: str) -> bool:
        """A ReferenceGrant in `ns` lets `from_kind` objects of `from_ns` refer to `ref`."""
        for grant in self.snap.reference_grants.values():
            if grant.meta.namespace != ns:
                continue
            if any(f == (GATEWAY_GROUP, from_kind, from_ns) for f in grant.from_) and \
                    any(g == ref.group and k == ref.kind and n in ("", ref.name) for g, k, n in grant.to):
                return True
        return False

    def backend(self, route: HTTPRoute, ref: ObjectRef) -> tuple[str, str]:
        """(target, ResolvedRefs failure reason or '') of one backendRef."""
        if ref.group != "" or ref.kind != "Service":
            return "500", "InvalidKind"
        ns = ref.namespace or route.meta.namespace
        if ns != route.meta.namespace and not self.granted(route.meta.kind, route.meta.namespace, ref, ns):
            return "500", "RefNotPermitted"
        if not ref.port:
            return "500", "UnsupportedValue"
        svc = self.snap.service(ns, ref.name)
        if svc is None:
            return "500", "BackendNotFound"
        if svc.type == "ExternalName":
            return "500", "UnsupportedValue"
        res = self.resolver.resolve(ns, ServiceBackend(ref.name, ref.port))
        if res.upstream is None:
            reason = "BackendNotFound" if any(p[0] == "PortNotFound" for p in res.problems) else ""
            return ("500", reason) if reason else ("503", "")
        self.upstreams[res.upstream.name] = res.upstream
        return res.upstream.name, ""

    def listener_certificates(self, gw: Gateway, now: datetime) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
        """HTTPS listeners: certificate file by listener name, and why a listener has none.
        The first certificateRef serves (one certificate per listener)."""
        certs: dict[str, str] = {}
        failures: dict[str, tuple[str, str]] = {}
        for lst in gw.listeners:
            if lst.protocol != "HTTPS":
                continue
            if not lst.certificate_refs:
                failures[lst.name] = ("InvalidCertificateRef", "an HTTPS listener needs a certificateRef")
                continue
            ref = lst.certificate_refs[0]
            ns = ref.namespace or gw.meta.namespace
            if ref.group != "" or ref.kind != "Secret":
                failures[lst.name] = ("InvalidCertificateRef", f"{ref.kind} is not a Secret")
            elif ns != gw.meta.namespace and not self.granted("Gateway", gw.meta.namespace, ref, ns):
                failures[lst.name] = ("RefNotPermitted", f"no ReferenceGrant in {ns} allows Secret {ref.name}")
            elif (secret := self.snap.secret(ns, ref.name)) is None:
                failures[lst.name] = ("InvalidCertificateRef", f"Secret {ns}/{ref.name} not found")
            else:
                try:
                    cert = certificate_from_secret(secret, now)
                except TLSError as e:
                    failures[lst.name] = ("InvalidCertificateRef", f"Secret {ns}/{ref.name}: {e}")
                    continue
                self.certificates[cert.file_name] = cert
                certs[lst.name] = cert.file_name
        return certs, failures

    def rule_target(self, route: HTTPRoute, rule: HTTPRule) -> tuple[Target, list[str], tuple[str, ...]]:
        """Where one rule sends requests: (target, weight) pairs (a forbidden or missing backend
        keeps its share and answers 500, as the spec says), the ResolvedRefs failures, and the
        upstreams its RequestMirrors copy requests to (one that does not resolve copies nothing)."""
        mirrored = [self.backend(route, r) for r in rule.mirrors]
        mirrors = tuple(t for t, _ in mirrored if t not in ("500", "503"))
        if rule.redirect is not None:
            return ((str(rule.redirect.status_code), 1),), [], ()
        results = [(self.backend(route, r), r.weight) for r in rule.backend_refs]
        failures = [reason for (_, reason), _ in results if reason] + [reason for _, reason in mirrored if reason]
        weighted: dict[str, int] = {}
        for (target, _), weight in results:
            if weight > 0:
                weighted[target] = weighted.get(target, 0) + min(weight, 1_000_000)
        return tuple(weighted.items()) or (("500", 1),), failures, mirrors


def _host_rank(server_host: str, route_host: str) -> tuple[int, int]:
    if route_host == server_host and not route_host.startswith("*."):
        return (-len(route_host), -len(route_host))
    return (0, -len(route_host))


def _covers(route_host: str, server_host: str) -> bool:
    if not route_host or route_host == server_host:
        return True
    return route_host.startswith("*.") and server_host.endswith(route_host[1:])


def _dispatch(did: int, cands: list[_Candidate]) -> Dispatch:
    conds: dict[tuple[str, str], int] = {}
    splits: dict[Target, Split] = {}
    for c in cands:
        for cond in c.conditions:
            conds.setdefault(cond, len(conds))
    conditions = tuple(Condition(var, rx, f"$gw_c_{did}_{i}") for (var, rx), i in conds.items())
    choices = []
    ordered = sorted(cands, key=lambda c: c.key)
    for c in ordered:
        need = {conds[x] for x in c.conditions}
        pattern = "^" + "".join("1" if i in need else "." for i in range(len(conds))) if need else "^"
        target = c.target[0][0] if len(c.target) == 1 else _split(did, c.target, splits)
        choices.append(Choice(pattern, target, c.route, "GRPCRoute" if c.grpc else "HTTPRoute", c.rule, c.match))
    fx = [c.effects for c in ordered]
    headers = _header_maps(choices, [e.headers for e in fx], f"$gw_h_{did}_", "$http_")
    response = _header_maps(choices, [e.response_headers for e in fx], f"$gw_r_{did}_", "$sent_http_")
    # the path maps look at "<flags>|$uri": a choice's flags pattern, padded to every flag
    flags = ["(?s)^" + (ch.pattern[1:].ljust(len(conds), ".") if conds else "x") + "[|]" for ch in choices]
    locations = rewrites = None
    if any(e.redirect for e in fx):
        locations = UriMap(f"$gw_l_{did}", tuple(
            x for f, c in zip(flags, ordered, strict=True) for x in _path_entries(
                f, c.prefix, c.effects.redirect_path, c.effects.redirect, "$is_args$args",
                c.effects.redirect + "$request_uri" if c.effects.redirect else "")))
    if any(e.rewrite for e in fx):
        rewrites = UriMap(f"$gw_u_{did}", tuple(
            x for f, c in zip(flags, ordered, strict=True) for x in _path_entries(f, c.prefix, c.effects.rewrite,
                                                                                  "", "", "")))
    host = None
    if any(e.host for e in fx):
        host = HeaderMap("host", f"$gw_host_{did}", "$host", tuple(
            HeaderEntry(ch.pattern, not e.host, e.host) for ch, e in zip(choices, fx, strict=True)))
    slots = max(len(e.mirrors) for e in fx) if fx else 0
    mirrors = tuple(HeaderMap(f"mirror{j}", f"$gw_m_{did}_{j}", '""', tuple(
        HeaderEntry(ch.pattern, False, e.mirrors[j] if j < len(e.mirrors) else "")
        for ch, e in zip(choices, fx, strict=True))) for j in range(slots))
    timeouts = None
    if any(e.timeout for e in fx):
        timeouts = HeaderMap("timeouts", f"$gw_t_{did}", '""', tuple(
            HeaderEntry(ch.pattern, False, e.timeout) for ch, e in zip(choices, fx, strict=True)))
    return Dispatch(did, conditions, tuple(choices), tuple(splits.values()), headers, response, locations, rewrites,
                    host, mirrors, timeouts)


def _path_entries(flags: str, prefix: str, change: PathChange | None, before: str, after: str,
                  keep: str) -> list[UriEntry]:
    """A choice's entries of a UriMap: `before` + the new path + `after`, or `keep` when the
    path is not changed. ReplacePrefixMatch follows the spec's table: /foo → /xyz, /foo/bar →
    /xyz/bar, and an empty or "/" replacement leaves /bar (never an empty path)."""
    if change is None:
        return [UriEntry(flags, keep)]
    kind, value = change
    if kind == "ReplaceFullPath":
        return [UriEntry(flags, before + value + after)]
    lit, rest = literal(prefix), value.rstrip("/")
    return [UriEntry(f"{flags}{lit}$", before + (rest or "/") + after),
            UriEntry(f"{flags}{lit}(/.*)$", before + rest + "$1" + after),
            UriEntry(flags, keep)]


def _header_maps(choices: list[Choice], per_choice: list[tuple[tuple[str, str, bool], ...]], variable: str,
                 original: str) -> tuple[HeaderMap, ...]:
    """One map per header some choice changes; the others keep the original value."""
    names = list(dict.fromkeys(n for changes in per_choice for n, _, _ in changes))
    tables = [{n: (val, append) for n, val, append in changes} for changes in per_choice]
    return tuple(HeaderMap(n, f"{variable}{k}", original + n.replace("-", "_"), tuple(
        HeaderEntry(ch.pattern, n not in table, *table.get(n, ("", False)))
        for ch, table in zip(choices, tables, strict=True))) for k, n in enumerate(names))


def _split(did: int, target: Target, splits: dict[Target, Split]) -> str:
    """A split_clients variable sharing requests by weight (shares in 0.01 %, the rest to the last)."""
    split = splits.get(target)
    if split is None:
        total = sum(w for _, w in target)
        shares = tuple((f"{w * 10000 // total / 100:.2f}%", t) for t, w in target[:-1] if w * 10000 // total)
        split = splits[target] = Split(f"$gw_w_{did}_{len(splits)}", shares, target[-1][0])
    return split.variable


def build_gateway(snap: Snapshot, opts: GatewayOptions = GatewayOptions()) -> GatewayResult:
    classes = {n: c for n, c in snap.gateway_classes.items() if c.controller_name == opts.controller_name}
    statuses = [ObjectStatus("GatewayClass", "", c.meta.name, (StatusCondition("Accepted", True, "Accepted", "",
                                                                                c.meta.generation),))
                for c in classes.values()]
    ours: dict[str, Gateway] = {k: g for k, g in snap.gateways.items() if g.class_name in classes}
    b = _Builder(snap, BackendResolver(snap))
    certs = {k: b.listener_certificates(g, opts.now) for k, g in ours.items()}
    # nginx makes a port TLS for every server when one server's listen says ssl: the Ingress
    # ports take only their own protocol (and then share the Ingress servers, port key SHARED)
    reserved = {"HTTP": frozenset({opts.ingress_https_port}), "HTTPS": frozenset({opts.ingress_http_port})}
    listener_conds = {k: listener_problems(g, reserved, certs[k][1]) for k, g in ours.items()}
    tls: dict[int, bool] = {}  # listener port -> HTTPS
    host_certs: dict[tuple[int, str], str] = {}  # (port key, host) -> certificate file (HTTPS listeners)
    parents: list[ParentStatus] = []
    attached: dict[str, dict[str, int]] = {k: {} for k in ours}
    by_port: dict[int, ByHost] = {}
    for route in sorted([*snap.http_routes.values(), *snap.grpc_routes.values()], key=lambda r: r.meta.age_key):
        invalid = route_invalid(route, opts.balancer)
        targets = [b.rule_target(route, rule) for rule in route.rules] if not invalid else []
        failures = [f for _, fs, _ in targets for f in fs]
        g = route.meta.generation
        resolved = StatusCondition("ResolvedRefs", not failures, failures[0] if failures else "ResolvedRefs", "", g)
        for ref in route.parent_refs:
            gw = parent_gateway(snap, route, ref, ours)
            if gw is None:
                continue
            if invalid:
                acc = StatusCondition("Accepted", False, "UnsupportedValue", invalid, g)
                parents.append(parent_status(route, ref, gw, (acc, resolved)))
                b.problems.add(Problem(route.meta.kind, route.meta.namespace, route.meta.name, "UnsupportedValue",
                                          invalid))
                continue
            atts, acc = attach(snap, route, ref, gw, listener_conds[gw.meta.key])
            parents.append(parent_status(route, ref, gw, (acc, resolved)))
            for a in atts:
                counts = attached[gw.meta.key]
                counts[a.listener.name] = counts.get(a.listener.name, 0) + 1
                port = port_key(a.listener.protocol, a.listener.port, opts)
                _add_candidates(by_port.setdefault(port, {}), a, [(t, m) for t, _, m in targets],
                                shared=port == SHARED)
                if a.listener.protocol == "HTTPS":
                    for host in a.hostnames:
                        host_certs.setdefault((port, host), certs[gw.meta.key][0].get(a.listener.name, ""))
    for k, gway in ours.items():  # a programmed listener's port is served even before a route attaches
        for lst in gway.listeners:
            if any(c.type == "Programmed" and c.status for c in listener_conds[k][lst.name]):
                port = port_key(lst.protocol, lst.port, opts)
                by_port.setdefault(port, {})
                tls[port] = tls.get(port, False) or lst.protocol == "HTTPS"
                if not lst.hostname and lst.protocol == "HTTPS":
                    host_certs.setdefault((port, ""), certs[k][0].get(lst.name, ""))
    b.problems.extend(_grpc_conflicts(by_port, opts))
    servers, dispatches = _servers(by_port, opts, tls, host_certs)
    statuses += [gateway_status(g, listener_conds[k], attached[k]) for k, g in sorted(ours.items())]
    return GatewayResult(tuple(servers), tuple(b.upstreams[k] for k in sorted(b.upstreams)),
                         tuple(b.certificates[k] for k in sorted(b.certificates)), tuple(dispatches),
                         tuple(statuses), tuple(parents), tuple(b.problems.items))


ByHost = dict[str, list[tuple[str, "_Candidate"]]]
SHARED = 0  # the port key of listeners on the Ingress ports: they share the Ingress servers


def port_key(protocol: str, port: int, opts: GatewayOptions) -> int:
    """SHARED for an HTTP listener on the Ingress HTTP port and an HTTPS listener on the
    Ingress HTTPS port (the Ingress servers listen on both; the scheme tells them apart),
    else the listener's own port."""
    if (protocol, port) in (("HTTP", opts.ingress_http_port), ("HTTPS", opts.ingress_https_port)):
        return SHARED
    return port
_HTTP = IngressConfig()
_GRPC = IngressConfig(backend_protocol="GRPC")


def _servers(by_port: dict[int, ByHost], opts: GatewayOptions, tls: dict[int, bool],
             certs: dict[tuple[int, str], str]) -> tuple[list[Server], list[Dispatch]]:
    """One server per (listener port, host). Listeners on the Ingress ports share the Ingress
    servers (ports=(): both ports; each route match also tests the scheme of its listener, so
    an HTTPS-only host answers 404 on plain HTTP); any other port gets its own servers and a
    404 default server (HTTPS: with the certificate of a hostname-less listener, else the
    default certificate)."""
    servers: list[Server] = []
    dispatches: list[Dispatch] = []
    for port in sorted(by_port):
        by_host = by_port[port]
        ssl = tls.get(port, False)
        ports = () if port == SHARED else (port,)
        # HTTPS: HTTP/2 by ALPN beside HTTP/1.1; plain HTTP: h2c (prior knowledge) only where
        # a GRPCRoute is served, since nginx 1.22 then speaks nothing else on the port; the
        # Ingress ports keep the Ingress settings (use-http2)
        http2 = bool(ports) and (ssl or any(c.grpc for cands in by_host.values() for _, c in cands))
        if ports and "" not in by_host:
            servers.append(Server(host="", locations=(Location("/", "", "", 404, "", ""),), ports=ports, tls=ssl,
                                  http2=http2, certificate=certs.get((port, ""), "")))
        for host in ([""] if "" in by_host else []) + sorted(h for h in by_host if h):
            cands = _host_candidates(by_host, host)
            d = _dispatch(len(dispatches), cands)
            dispatches.append(d)
            grpc = any(c.grpc for c in cands)  # _grpc_conflicts left one kind per host
            loc = Location("/", "", "", 0, "", "", config=_GRPC if grpc else _HTTP, dispatch=d.variable,
                           dispatch_redirect=d.locations.variable if d.locations else "",
                           dispatch_rewrite=d.rewrites.variable if d.rewrites else "",
                           upstream_host=d.host.variable if d.host else "",
                           mirrors=tuple(m.variable for m in d.mirrors),
                           timeouts=d.timeouts.variable if d.timeouts else "",
                           header_sets=tuple((h.name, h.variable) for h in d.headers),
                           response_header_sets=tuple((h.name, h.variable) for h in d.response_headers))
            host_tls = ssl if ports else (port, host) in certs or (not host and (port, "") in certs)
            servers.append(Server(host=host, locations=(loc,), any_depth_wildcard=host.startswith("*."), ports=ports,
                                  tls=host_tls, certificate=certs.get((port, host), ""), http2=http2))
    return servers, dispatches


def _add_candidates(by_host: ByHost, a: Attachment, targets: list[tuple[Target, tuple[str, ...]]],
                    shared: bool = False) -> None:
    """The route's matches for each of its hosts; on the shared Ingress ports each match also
    tests the scheme of the listener it came through."""
    r = a.route
    scheme = [("$scheme", "^https$" if a.listener.protocol == "HTTPS" else "^http$")] if shared else []
    for ri, (rule, (target, mirrors)) in enumerate(zip(r.rules, targets, strict=True)):
        effects = _rule_effects(rule, a, mirrors)
        for mi, m in enumerate(rule.matches):
            conds = match_conditions(m) + scheme
            path_len = len(m.path.rstrip("/")) if m.path_type == "PathPrefix" else len(m.path)
            key = (0 if m.path_type == "Exact" else 1, -path_len, m.path_type == "RegularExpression",
                   0 if m.method else 1, -len(m.headers), -len(m.query), r.meta.age_key, ri, mi)
            prefix = m.path.rstrip("/") if m.path_type == "PathPrefix" else ""
            for host in a.hostnames:
                by_host.setdefault(host, []).append((host, _Candidate(key, conds, target, r.meta.key, prefix, effects,
                                                                      r.grpc, ri, mi)))


def _grpc_conflicts(by_port: dict[int, ByHost], opts: GatewayOptions) -> list[Problem]:
    """GRPCRoutes where they cannot be served, taken out of `by_port` and reported: on the
    Ingress HTTP port (HTTP/1.1 only), and on a host an HTTPRoute of the same port serves
    (one nginx location cannot both proxy_pass and grpc_pass; implementations refuse to share
    a hostname between the two kinds)."""
    problems: dict[str, Problem] = {}

    def drop(by_host: ByHost, host: str, these: list[_Candidate], why: str) -> None:
        for c in these:
            ns, _, name = c.route.partition("/")
            problems.setdefault(c.route + why, Problem("GRPCRoute", ns, name, "HostConflict",
                                                       f"{why}; this route is left out there", True))
        gone = {id(c) for c in these}
        by_host[host] = [(h, c) for h, c in by_host[host] if id(c) not in gone]

    for port, by_host in by_port.items():
        where = "the Ingress ports" if port == SHARED else f"port {port}"
        for host in list(by_host):
            plain = [c for _, c in by_host[host] if c.grpc and ("$scheme", "^http$") in c.conditions]
            if plain:
                drop(by_host, host, plain, "the Ingress HTTP port speaks HTTP/1.1 only")
        http_hosts = {h for h, cands in by_host.items() if any(not c.grpc for _, c in cands)}
        for host in list(by_host):
            grpc = [c for _, c in by_host[host] if c.grpc]
            if grpc and (host in http_hosts or "" in http_hosts or any(_covers(h, host) for h in http_hosts if h)):
                drop(by_host, host, grpc, f"host {host or '*'} on {where} is also served by an HTTPRoute")
    return list(problems.values())


def _rule_effects(rule: HTTPRule, a: Attachment, mirrors: tuple[str, ...]) -> _Effects:
    """The validated filters of a rule (route_invalid has accepted them)."""
    redirect = redirect_base(rule.redirect, a.listener.port, a.listener.protocol.lower()) if rule.redirect else ""
    rw = rule.rewrite
    return _Effects(
        redirect=redirect,
        redirect_path=path_change(rule.redirect.path_type, rule.redirect.path, rule, "redirect") if rule.redirect else None,
        rewrite=path_change(rw.path_type, rw.path, rule, "URLRewrite") if rw else None,
        host=v.host(rw.hostname) if rw and rw.hostname else "",
        headers=header_changes(rule), response_headers=response_header_changes(rule),
        mirrors=mirrors, timeout=timeout_seconds(rule))


def _host_candidates(by_host: ByHost, host: str) -> list[_Candidate]:
    """The candidates serving `host`: its own, then wildcards covering it, then host-less ones,
    host specificity first (the spec's first precedence rule); each route match once."""
    out: dict[tuple[object, ...], _Candidate] = {}
    for rh, cands in by_host.items():
        if not _covers(rh, host):
            continue
        for _, c in cands:
            key = (*_host_rank(host, rh), *c.key)
            out.setdefault((c.route, c.key, tuple(c.conditions)), dataclasses.replace(c, key=key))
    return list(out.values())
