"""gateway.networking.k8s.io kinds: the Gateway API v1 objects (standard channel).

Parsed like every other kind (`objects.parse_object`): frozen dataclasses, errors that name
the field, only the fields the gateway build uses. Every list is bounded at the API
server's own maxItems, so one object can never make the build do unbounded work.

Design choice: the parse keeps values as written (types, strings); whether a value is
*acceptable* (a regex nginx can run, a header name) is the build's decision, because the
Gateway API reports that in the route's status instead of refusing the object.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .meta import Meta, _describe, _meta, _Reader

GATEWAY_GROUP = "gateway.networking.k8s.io"
MAX_LISTENERS = 64
MAX_PARENT_REFS = 32
MAX_HOSTNAMES = 16
MAX_RULES = 16
MAX_MATCHES = 64
MAX_HEADER_MATCHES = 16
MAX_BACKEND_REFS = 16
MAX_FILTERS = 16
MAX_CERT_REFS = 64
MAX_KINDS = 8
MAX_GRANT_ITEMS = 16


@dataclass(frozen=True)
class GatewayClass:
    meta: Meta
    controller_name: str


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str]
    expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # key, operator, values

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for key, op, values in self.expressions:
            ok = {"In": key in labels and labels[key] in values,
                  "NotIn": not (key in labels and labels[key] in values),
                  "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class ObjectRef:
    group: str
    kind: str
    name: str
    namespace: str = ""  # "" = the referring object's namespace
    port: int = 0
    weight: int = 1
    section_name: str = ""


@dataclass(frozen=True)
class Listener:
    name: str
    hostname: str  # "" = any
    port: int
    protocol: str
    certificate_refs: tuple[ObjectRef, ...] = ()
    namespaces_from: str = "Same"  # Same | All | Selector
    selector: LabelSelector | None = None
    kinds: tuple[tuple[str, str], ...] = ()  # (group, kind); () = the protocol's default kinds
    tls_mode: str = "Terminate"


@dataclass(frozen=True)
class Gateway:
    meta: Meta
    class_name: str
    listeners: tuple[Listener, ...]


@dataclass(frozen=True)
class HTTPMatch:
    path_type: str = "PathPrefix"  # Exact | PathPrefix | RegularExpression
    path: str = "/"
    headers: tuple[tuple[str, str, str], ...] = ()  # type, name, value
    query: tuple[tuple[str, str, str], ...] = ()
    method: str = ""


@dataclass(frozen=True)
class Redirect:
    """A RequestRedirect filter as written ("" / 0 = not set)."""

    scheme: str = ""
    hostname: str = ""
    port: int = 0
    status_code: int = 302
    path_type: str = ""  # ReplaceFullPath | ReplacePrefixMatch
    path: str = ""


@dataclass(frozen=True)
class Rewrite:
    """A URLRewrite filter as written ("" = not set)."""

    hostname: str = ""
    path_type: str = ""  # ReplaceFullPath | ReplacePrefixMatch
    path: str = ""


@dataclass(frozen=True)
class Timeouts:
    """spec.rules[].timeouts as written (Gateway API durations, "" = not set)."""

    request: str = ""
    backend_request: str = ""


@dataclass(frozen=True)
class HTTPRule:
    matches: tuple[HTTPMatch, ...]
    backend_refs: tuple[ObjectRef, ...]
    filter_types: tuple[str, ...] = ()
    redirect: Redirect | None = None
    request_headers: HeaderModifier | None = None
    timeouts: Timeouts | None = None
    response_headers: HeaderModifier | None = None
    rewrite: Rewrite | None = None
    mirrors: tuple[ObjectRef, ...] = ()  # RequestMirror filters' backendRefs


@dataclass(frozen=True)
class HeaderModifier:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class HTTPRoute:
    """An HTTPRoute, or a GRPCRoute (meta.kind says which) in the same shape: a gRPC call is
    POST /<service>/<method> over HTTP/2, so a GRPCRoute's method match is a path match
    (`grpc_match`) and its rules are HTTP rules with grpc_pass to the backends."""

    meta: Meta
    parent_refs: tuple[ObjectRef, ...]
    hostnames: tuple[str, ...]
    rules: tuple[HTTPRule, ...]
    status_parents: tuple[Mapping[str, Any], ...] = ()  # as read: other controllers' entries are kept

    @property
    def grpc(self) -> bool:
        return self.meta.kind == "GRPCRoute"


@dataclass(frozen=True)
class ReferenceGrant:
    meta: Meta
    from_: tuple[tuple[str, str, str], ...]  # group, kind, namespace
    to: tuple[tuple[str, str, str], ...]  # group, kind, name ("" = any)


def _ref(r: _Reader, raw: Any, path: str, group: str, kind: str) -> ObjectRef:
    m = r.mapping(raw, path)
    name = r.text(m.get("name"), f"{path}.name")
    if not name:
        raise r.fail(f"{path}.name", "is required")
    return ObjectRef(group=r.text(m.get("group"), f"{path}.group", group),
                     kind=r.text(m.get("kind"), f"{path}.kind", kind), name=name,
                     namespace=r.text(m.get("namespace"), f"{path}.namespace"),
                     port=r.integer(m.get("port"), f"{path}.port"),
                     weight=r.integer(m.get("weight"), f"{path}.weight", 1),
                     section_name=r.text(m.get("sectionName"), f"{path}.sectionName"))


def _selector(r: _Reader, raw: Any, path: str) -> LabelSelector:
    m = r.mapping(raw, path)
    exprs = []
    for i, e in enumerate(r.seq(m.get("matchExpressions"), f"{path}.matchExpressions", 16)):
        em = r.mapping(e, f"{path}.matchExpressions[{i}]")
        values = tuple(r.text(v, f"{path}.matchExpressions[{i}].values")
                       for v in r.seq(em.get("values"), f"{path}.matchExpressions[{i}].values", 64))
        exprs.append((r.text(em.get("key"), "key"), r.text(em.get("operator"), "operator"), values))
    return LabelSelector(r.str_map(m.get("matchLabels"), f"{path}.matchLabels"), tuple(exprs))


def _listener(r: _Reader, raw: Any, path: str) -> Listener:
    m = r.mapping(raw, path)
    tls = r.mapping(m.get("tls"), f"{path}.tls")
    allowed = r.mapping(m.get("allowedRoutes"), f"{path}.allowedRoutes")
    ns = r.mapping(allowed.get("namespaces"), f"{path}.allowedRoutes.namespaces")
    kinds = tuple((r.text(r.mapping(k, "k").get("group"), f"{path}.kinds.group", GATEWAY_GROUP),
                   r.text(r.mapping(k, "k").get("kind"), f"{path}.kinds.kind"))
                  for k in r.seq(allowed.get("kinds"), f"{path}.allowedRoutes.kinds", MAX_KINDS))
    sel = ns.get("selector")
    return Listener(
        name=r.text(m.get("name"), f"{path}.name"), hostname=r.text(m.get("hostname"), f"{path}.hostname"),
        port=r.integer(m.get("port"), f"{path}.port"), protocol=r.text(m.get("protocol"), f"{path}.protocol"),
        certificate_refs=tuple(_ref(r, c, f"{path}.tls.certificateRefs[{i}]", "", "Secret") for i, c in
                               enumerate(r.seq(tls.get("certificateRefs"), f"{path}.tls.certificateRefs", MAX_CERT_REFS))),
        namespaces_from=r.text(ns.get("from"), f"{path}.allowedRoutes.namespaces.from", "Same"),
        selector=_selector(r, sel, f"{path}.allowedRoutes.namespaces.selector") if sel is not None else None,
        kinds=kinds, tls_mode=r.text(tls.get("mode"), f"{path}.tls.mode", "Terminate"))


def parse_gateway_class(raw: Mapping[str, Any]) -> GatewayClass:
    r = _Reader(_describe(raw))
    spec = r.mapping(raw.get("spec"), "spec")
    return GatewayClass(_meta(r, "GatewayClass", raw, False), r.text(spec.get("controllerName"), "spec.controllerName"))


def parse_gateway(raw: Mapping[str, Any]) -> Gateway:
    r = _Reader(_describe(raw))
    spec = r.mapping(raw.get("spec"), "spec")
    listeners = tuple(_listener(r, x, f"spec.listeners[{i}]")
                      for i, x in enumerate(r.seq(spec.get("listeners"), "spec.listeners", MAX_LISTENERS)))
    return Gateway(_meta(r, "Gateway", raw, True), r.text(spec.get("gatewayClassName"), "spec.gatewayClassName"),
                   listeners)


def _pairs(r: _Reader, raw: Any, path: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((r.text(r.mapping(h, path).get("type"), f"{path}[{i}].type", "Exact"),
                  r.text(r.mapping(h, path).get("name"), f"{path}[{i}].name"),
                  r.text(r.mapping(h, path).get("value"), f"{path}[{i}].value"))
                 for i, h in enumerate(r.seq(raw, path, MAX_HEADER_MATCHES)))


def _match(r: _Reader, raw: Any, path: str) -> HTTPMatch:
    m = r.mapping(raw, path)
    p = r.mapping(m.get("path"), f"{path}.path")
    return HTTPMatch(path_type=r.text(p.get("type"), f"{path}.path.type", "PathPrefix"),
                     path=r.text(p.get("value"), f"{path}.path.value", "/"),
                     headers=_pairs(r, m.get("headers"), f"{path}.headers"),
                     query=_pairs(r, m.get("queryParams"), f"{path}.queryParams"),
                     method=r.text(m.get("method"), f"{path}.method"))


def _rule(r: _Reader, raw: Any, path: str) -> HTTPRule:
    m = r.mapping(raw, path)
    matches = tuple(_match(r, x, f"{path}.matches[{i}]")
                    for i, x in enumerate(r.seq(m.get("matches"), f"{path}.matches", MAX_MATCHES)))
    refs = tuple(_ref(r, x, f"{path}.backendRefs[{i}]", "", "Service")
                 for i, x in enumerate(r.seq(m.get("backendRefs"), f"{path}.backendRefs", MAX_BACKEND_REFS)))
    raw_filters = r.seq(m.get("filters"), f"{path}.filters", MAX_FILTERS)
    filters = tuple(r.text(r.mapping(f, path).get("type"), f"{path}.filters[{i}].type")
                    for i, f in enumerate(raw_filters))
    redirect = next((_redirect(r, r.mapping(f, path).get("requestRedirect"), f"{path}.filters[{i}].requestRedirect")
                     for i, f in enumerate(raw_filters) if r.mapping(f, path).get("type") == "RequestRedirect"), None)
    headers = next((_header_modifier(r, r.mapping(f, path).get("requestHeaderModifier"),
                                     f"{path}.filters[{i}].requestHeaderModifier")
                    for i, f in enumerate(raw_filters) if r.mapping(f, path).get("type") == "RequestHeaderModifier"), None)
    response = next((_header_modifier(r, r.mapping(f, path).get("responseHeaderModifier"),
                                      f"{path}.filters[{i}].responseHeaderModifier")
                     for i, f in enumerate(raw_filters) if r.mapping(f, path).get("type") == "ResponseHeaderModifier"),
                    None)
    rewrite = next((_rewrite(r, r.mapping(f, path).get("urlRewrite"), f"{path}.filters[{i}].urlRewrite")
                    for i, f in enumerate(raw_filters) if r.mapping(f, path).get("type") == "URLRewrite"), None)
    mirrors = tuple(_ref(r, r.mapping(r.mapping(f, path).get("requestMirror"), f"{path}.filters[{i}].requestMirror")
                         .get("backendRef"), f"{path}.filters[{i}].requestMirror.backendRef", "", "Service")
                    for i, f in enumerate(raw_filters) if r.mapping(f, path).get("type") == "RequestMirror")
    timeouts = None
    if m.get("timeouts") is not None:
        t = r.mapping(m.get("timeouts"), f"{path}.timeouts")
        timeouts = Timeouts(r.text(t.get("request"), f"{path}.timeouts.request"),
                            r.text(t.get("backendRequest"), f"{path}.timeouts.backendRequest"))
    return HTTPRule(matches or (HTTPMatch(),), refs, filters, redirect, headers, timeouts, response, rewrite, mirrors)


def _path_modifier(r: _Reader, m: Mapping[str, Any], path: str) -> tuple[str, str]:
    """(type, value) of an HTTPPathModifier ("", "" when there is none)."""
    p = r.mapping(m.get("path"), f"{path}.path")
    kind = r.text(p.get("type"), f"{path}.path.type")
    value = p.get("replaceFullPath") if kind == "ReplaceFullPath" else p.get("replacePrefixMatch")
    return kind, r.text(value, f"{path}.path")


def _rewrite(r: _Reader, raw: Any, path: str) -> Rewrite:
    m = r.mapping(raw, path)
    kind, value = _path_modifier(r, m, path)
    return Rewrite(hostname=r.text(m.get("hostname"), f"{path}.hostname"), path_type=kind, path=value)


def _header_modifier(r: _Reader, raw: Any, path: str) -> HeaderModifier:
    m = r.mapping(raw, path)

    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        return tuple((r.text(r.mapping(x, path).get("name"), f"{path}.{key}.name"),
                      r.text(r.mapping(x, path).get("value"), f"{path}.{key}.value"))
                     for x in r.seq(m.get(key), f"{path}.{key}", MAX_HEADER_MATCHES))
    remove = tuple(r.text(x, f"{path}.remove") for x in r.seq(m.get("remove"), f"{path}.remove", MAX_HEADER_MATCHES))
    return HeaderModifier(pairs("set"), pairs("add"), remove)


def _redirect(r: _Reader, raw: Any, path: str) -> Redirect:
    m = r.mapping(raw, path)
    kind, value = _path_modifier(r, m, path)
    return Redirect(scheme=r.text(m.get("scheme"), f"{path}.scheme"), hostname=r.text(m.get("hostname"), f"{path}.hostname"),
                    port=r.integer(m.get("port"), f"{path}.port"),
                    status_code=r.integer(m.get("statusCode"), f"{path}.statusCode", 302),
                    path_type=kind, path=value)


def parse_http_route(raw: Mapping[str, Any]) -> HTTPRoute:
    r = _Reader(_describe(raw))
    spec = r.mapping(raw.get("spec"), "spec")
    parents = tuple(_ref(r, x, f"spec.parentRefs[{i}]", GATEWAY_GROUP, "Gateway")
                    for i, x in enumerate(r.seq(spec.get("parentRefs"), "spec.parentRefs", MAX_PARENT_REFS)))
    hostnames = tuple(r.text(h, "spec.hostnames") for h in r.seq(spec.get("hostnames"), "spec.hostnames", MAX_HOSTNAMES))
    rules = tuple(_rule(r, x, f"spec.rules[{i}]") for i, x in enumerate(r.seq(spec.get("rules"), "spec.rules", MAX_RULES)))
    if sum(len(x.matches) for x in rules) > 128:
        raise r.fail("spec.rules", "more than 128 matches in all rules (the API server's bound)")
    status = r.mapping(raw.get("status"), "status")
    status_parents = tuple(r.mapping(p, "status.parents") for p in r.seq(status.get("parents"), "status.parents", 32))
    return HTTPRoute(_meta(r, "HTTPRoute", raw, True), parents, hostnames, rules or (HTTPRule((HTTPMatch(),), ()),),
                     status_parents)


# GRPCMethodMatch values, as the CRD's validation has them (our bound on what reaches a regex)
_GRPC_SERVICE = re.compile(r"(?i)^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*\Z")
_GRPC_METHOD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*\Z")


def grpc_match(kind: str, service: str, method: str) -> tuple[str, str]:
    """A GRPCMethodMatch as (HTTP path type, path): Exact service and method is the Exact
    path /service/method, a service alone the prefix /service, a method alone the regex
    /[^/]+/method; RegularExpression puts the two regexes in place. Raises ValueError."""
    if kind == "Exact":
        if service and not _GRPC_SERVICE.match(service) or method and not _GRPC_METHOD.match(method):
            raise ValueError(f"gRPC service {service!r} or method {method!r} is not a valid name")
        if service and method:
            return "Exact", f"/{service}/{method}"
        if service:
            return "PathPrefix", f"/{service}"
        return ("RegularExpression", f"/[^/]+/{method}") if method else ("PathPrefix", "/")
    if kind == "RegularExpression":
        return "RegularExpression", f"/{service or '[^/]+'}/{method or '[^/]+'}"
    raise ValueError(f"gRPC method match type {kind!r} is not Exact or RegularExpression")


def _grpc_rule(r: _Reader, raw: Any, path: str) -> HTTPRule:
    m = r.mapping(raw, path)
    matches = []
    for i, x in enumerate(r.seq(m.get("matches"), f"{path}.matches", MAX_MATCHES)):
        mm = r.mapping(x, f"{path}.matches[{i}]")
        method = r.mapping(mm.get("method"), f"{path}.matches[{i}].method")
        try:
            ptype, value = grpc_match(r.text(method.get("type"), f"{path}.matches[{i}].method.type", "Exact"),
                                      r.text(method.get("service"), f"{path}.matches[{i}].method.service"),
                                      r.text(method.get("method"), f"{path}.matches[{i}].method.method"))
        except ValueError as e:
            raise r.fail(f"{path}.matches[{i}].method", str(e)) from None
        matches.append(HTTPMatch(path_type=ptype, path=value,
                                 headers=_pairs(r, mm.get("headers"), f"{path}.matches[{i}].headers")))
    rule = _rule(r, {k: val for k, val in m.items() if k != "matches"}, path)
    return dataclasses.replace(rule, matches=tuple(matches) or rule.matches)


def parse_grpc_route(raw: Mapping[str, Any]) -> HTTPRoute:
    r = _Reader(_describe(raw))
    spec = r.mapping(raw.get("spec"), "spec")
    parents = tuple(_ref(r, x, f"spec.parentRefs[{i}]", GATEWAY_GROUP, "Gateway")
                    for i, x in enumerate(r.seq(spec.get("parentRefs"), "spec.parentRefs", MAX_PARENT_REFS)))
    hostnames = tuple(r.text(h, "spec.hostnames") for h in r.seq(spec.get("hostnames"), "spec.hostnames", MAX_HOSTNAMES))
    rules = tuple(_grpc_rule(r, x, f"spec.rules[{i}]")
                  for i, x in enumerate(r.seq(spec.get("rules"), "spec.rules", MAX_RULES)))
    if sum(len(x.matches) for x in rules) > 128:
        raise r.fail("spec.rules", "more than 128 matches in all rules (the API server's bound)")
    status = r.mapping(raw.get("status"), "status")
    status_parents = tuple(r.mapping(p, "status.parents") for p in r.seq(status.get("parents"), "status.parents", 32))
    return HTTPRoute(_meta(r, "GRPCRoute", raw, True), parents, hostnames, rules or (HTTPRule((HTTPMatch(),), ()),),
                     status_parents)


def parse_reference_grant(raw: Mapping[str, Any]) -> ReferenceGrant:
    r = _Reader(_describe(raw))
    spec = r.mapping(raw.get("spec"), "spec")
    frm = tuple((r.text(r.mapping(x, "spec.from").get("group"), "spec.from.group"),
                 r.text(r.mapping(x, "spec.from").get("kind"), "spec.from.kind"),
                 r.text(r.mapping(x, "spec.from").get("namespace"), "spec.from.namespace"))
                for x in r.seq(spec.get("from"), "spec.from", MAX_GRANT_ITEMS))
    to = tuple((r.text(r.mapping(x, "spec.to").get("group"), "spec.to.group"),
                r.text(r.mapping(x, "spec.to").get("kind"), "spec.to.kind"),
                r.text(r.mapping(x, "spec.to").get("name"), "spec.to.name"))
               for x in r.seq(spec.get("to"), "spec.to", MAX_GRANT_ITEMS))
    return ReferenceGrant(_meta(r, "ReferenceGrant", raw, True), frm, to)


GatewayObject = GatewayClass | Gateway | HTTPRoute | ReferenceGrant
GATEWAY_PARSERS: dict[str, Callable[[Mapping[str, Any]], GatewayObject]] = {
    "GatewayClass": parse_gateway_class,
    "Gateway": parse_gateway,
    "HTTPRoute": parse_http_route,
    "GRPCRoute": parse_grpc_route,
    "ReferenceGrant": parse_reference_grant,
}
