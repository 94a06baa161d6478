"""Gateway API status as data: the conditions `gateway.build` computes for each object.

The status writer (leader only) copies these into `.status`; tests compare them directly.

Design choice: a condition carries the object's generation it was computed from
(observedGeneration), so the build, not the writer, decides what is current.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""
    observed_generation: int = 0


@dataclass(frozen=True)
class ListenerStatus:
    name: str
    attached_routes: int
    conditions: tuple[Condition, ...]
    supported_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectStatus:
    """Status of a GatewayClass or Gateway (listeners empty for a class)."""

    kind: str
    namespace: str
    name: str
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerStatus, ...] = ()

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def listener(self, name: str) -> ListenerStatus | None:
        return next((x for x in self.listeners if x.name == name), None)


@dataclass(frozen=True)
class ParentStatus:
    """One entry of an HTTPRoute's status.parents: the parentRef as written and its conditions."""

    route: str  # "ns/name"
    gateway: str  # "ns/name"
    section_name: str
    port: int
    conditions: tuple[Condition, ...]
    kind: str = "HTTPRoute"  # or GRPCRoute

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


Body = dict[str, Any]


def _conditions(conds: Iterable[Condition], now: str) -> list[Body]:
    return [{"type": c.type, "status": "True" if c.status else "False", "reason": c.reason,
             "message": c.message, "observedGeneration": c.observed_generation, "lastTransitionTime": now}
            for c in conds]


def object_status_body(s: ObjectStatus, now: str) -> Body:
    """`.status` of a GatewayClass or Gateway."""
    body: Body = {"conditions": _conditions(s.conditions, now)}
    if s.kind == "Gateway":
        body["listeners"] = [{"name": x.name, "attachedRoutes": x.attached_routes,
                              "supportedKinds": [{"group": GATEWAY_GROUP, "kind": k} for k in x.supported_kinds],
                              "conditions": _conditions(x.conditions, now)} for x in s.listeners]
    return body


def route_status_body(parents: Iterable[ParentStatus], others: Iterable[Mapping[str, Any]], controller: str,
                      now: str) -> Body:
    """`.status` of an HTTPRoute: other controllers' entries as they are, then ours."""
    ours: list[Body] = []
    for p in parents:
        ns, _, name = p.gateway.partition("/")
        ref: Body = {"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": ns, "name": name}
        if p.section_name:
            ref["sectionName"] = p.section_name
        if p.port:
            ref["port"] = p.port
        ours.append({"parentRef": ref, "controllerName": controller, "conditions": _conditions(p.conditions, now)})
    return {"parents": [dict(o) for o in others if o.get("controllerName") != controller] + ours}
