"""Which HTTPRoutes attach to which Gateway listeners, and the conditions that say why.

Pure: a snapshot in; for every Gateway of our classes its listener conditions, and for
every route parentRef naming such a Gateway the listeners it attached to with the
hostnames it serves there (the intersection of route and listener hostnames).

Design choice: a route attaches only where a listener allows it (allowedRoutes namespaces
and kinds) and only with hostnames inside the listener's hostname: a tenant can never
widen what the Gateway owner opened to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..ingress import values as v
from ..objects.gateway import GATEWAY_GROUP, Gateway, HTTPRoute, Listener, ObjectRef
from ..store import Snapshot
from .status import Condition, ListenerStatus, ObjectStatus, ParentStatus

SUPPORTED_PROTOCOLS = ("HTTP", "HTTPS")
ROUTE_KINDS = {"HTTP": ("HTTPRoute", "GRPCRoute"), "HTTPS": ("HTTPRoute", "GRPCRoute")}


@dataclass(frozen=True)
class Attachment:
    route: HTTPRoute
    gateway: Gateway
    listener: Listener
    hostnames: tuple[str, ...]  # "" = every host


def listener_problems(gw: Gateway, reserved: Mapping[str, frozenset[int]] | None = None,
                      cert_failures: dict[str, tuple[str, str]] | None = None) -> dict[str, tuple[Condition, ...]]:
    """Conditions of every listener of one Gateway, by listener name (`reserved`: the Ingress
    ports; `cert_failures`: listener name -> (reason, message) of unusable certificateRefs)."""
    cert_failures, reserved = cert_failures or {}, reserved or {}
    g = gw.meta.generation
    by_port: dict[int, list[Listener]] = {}
    for lst in gw.listeners:
        by_port.setdefault(lst.port, []).append(lst)
    out: dict[str, tuple[Condition, ...]] = {}
    for lst in gw.listeners:
        same_port = by_port[lst.port]
        conflict = ""
        if len({x.protocol for x in same_port}) > 1:
            conflict = "ProtocolConflict"
        elif sum(1 for x in same_port if x.hostname == lst.hostname) > 1:
            conflict = "HostnameConflict"
        accepted, reason, message = True, "Accepted", ""
        if lst.protocol not in SUPPORTED_PROTOCOLS:
            accepted, reason, message = False, "UnsupportedProtocol", f"protocol {lst.protocol} is not served"
        elif not 1 <= lst.port <= 65535 or lst.port in reserved.get(lst.protocol, ()):
            accepted, reason, message = False, "PortUnavailable", f"port {lst.port} is out of range or taken"
        elif lst.hostname:
            try:
                v.host(lst.hostname)
            except v.InvalidValue as e:
                accepted, reason, message = False, "UnsupportedValue", str(e)
        elif lst.protocol == "HTTPS" and lst.tls_mode != "Terminate":
            accepted, reason, message = False, "UnsupportedValue", f"tls mode {lst.tls_mode} is not served"
        bad_kinds = [k for grp, k in lst.kinds if grp != GATEWAY_GROUP or k not in ROUTE_KINDS.get(lst.protocol, ())]
        refs_ok = not bad_kinds and lst.name not in cert_failures
        refs_reason, refs_message = cert_failures.get(lst.name, ("ResolvedRefs", ""))
        if bad_kinds:
            refs_reason, refs_message = "InvalidRouteKinds", f"route kinds {', '.join(bad_kinds)} are not supported"
        programmed = (accepted and not conflict and lst.name not in cert_failures
                      and (not bad_kinds or len(bad_kinds) < len(lst.kinds)))
        out[lst.name] = (
            Condition("Accepted", accepted, reason, message, g),
            Condition("ResolvedRefs", refs_ok, refs_reason, refs_message, g),
            Condition("Programmed", programmed, "Programmed" if programmed else "Invalid", "", g),
            Condition("Conflicted", bool(conflict), conflict or "NoConflicts", "", g),
        )
    return out


def _programmed(conds: tuple[Condition, ...]) -> bool:
    return any(c.type == "Programmed" and c.status for c in conds)


def _allows(snap: Snapshot, gw: Gateway, lst: Listener, route: HTTPRoute) -> bool:
    kinds = [k for grp, k in lst.kinds if grp == GATEWAY_GROUP] if lst.kinds else list(ROUTE_KINDS.get(lst.protocol, ()))
    if route.meta.kind not in kinds:
        return False
    ns = route.meta.namespace
    if lst.namespaces_from == "All":
        return True
    if lst.namespaces_from == "Selector":
        namespace = snap.namespaces.get(ns)
        labels = dict(namespace.meta.labels) if namespace else {}
        labels.setdefault("kubernetes.io/metadata.name", ns)
        return lst.selector is not None and lst.selector.matches(labels)
    return ns == gw.meta.namespace


def intersect(listener_host: str, route_hosts: tuple[str, ...]) -> tuple[str, ...]:
    """The hostnames a route serves on a listener ("" = every host); () = none in common."""
    if not listener_host:
        return route_hosts or ("",)
    if not route_hosts:
        return (listener_host,)
    out: list[str] = []
    for h in route_hosts:
        if h == listener_host:
            out.append(h)
        elif listener_host.startswith("*.") and h.endswith(listener_host[1:]):
            out.append(h)  # the route's name (or narrower wildcard) inside the listener's wildcard
        elif h.startswith("*.") and listener_host.endswith(h[1:]):
            out.append(listener_host)
    return tuple(dict.fromkeys(out))


def parent_gateway(snap: Snapshot, route: HTTPRoute, ref: ObjectRef, ours: dict[str, Gateway]) -> Gateway | None:
    if ref.group != GATEWAY_GROUP or ref.kind != "Gateway":
        return None
    return ours.get(f"{ref.namespace or route.meta.namespace}/{ref.name}")


def attach(snap: Snapshot, route: HTTPRoute, ref: ObjectRef, gw: Gateway,
           listeners: dict[str, tuple[Condition, ...]]) -> tuple[list[Attachment], Condition]:
    """The listeners one parentRef attaches to, and its Accepted condition."""
    g = route.meta.generation
    named = [x for x in gw.listeners if (not ref.section_name or x.name == ref.section_name)
             and (not ref.port or x.port == ref.port)]
    if not named:
        return [], Condition("Accepted", False, "NoMatchingParent", "no listener matches sectionName/port", g)
    live = [x for x in named if _programmed(listeners[x.name])]
    allowed = [x for x in live if _allows(snap, gw, x, route)]
    if not allowed:
        return [], Condition("Accepted", False, "NotAllowedByListeners",
                             "no listener allows this route (allowedRoutes namespaces or kinds)", g)
    hostnames = tuple(dict.fromkeys(route.hostnames))
    out = [Attachment(route, gw, x, hs) for x in allowed if (hs := intersect(x.hostname, hostnames))]
    if not out:
        return [], Condition("Accepted", False, "NoMatchingListenerHostname",
                             "no hostname in common with the listeners", g)
    return out, Condition("Accepted", True, "Accepted", "", g)


def gateway_status(gw: Gateway, listeners: dict[str, tuple[Condition, ...]], attached: dict[str, int]) -> ObjectStatus:
    g = gw.meta.generation
    programmed = any(_programmed(c) for c in listeners.values())
    return ObjectStatus("Gateway", gw.meta.namespace, gw.meta.name, (
        Condition("Accepted", True, "Accepted", "", g),
        Condition("Programmed", programmed, "Programmed" if programmed else "Invalid", "", g),
    ), tuple(ListenerStatus(x.name, attached.get(x.name, 0), listeners[x.name], _supported(x)) for x in gw.listeners))


def _supported(lst: Listener) -> tuple[str, ...]:
    own = ROUTE_KINDS.get(lst.protocol, ())
    return tuple(k for k in own if not lst.kinds or (GATEWAY_GROUP, k) in lst.kinds)


def parent_status(route: HTTPRoute, ref: ObjectRef, gw: Gateway, conds: tuple[Condition, ...]) -> ParentStatus:
    return ParentStatus(route.meta.key, gw.meta.key, ref.section_name, ref.port, conds, route.meta.kind)
