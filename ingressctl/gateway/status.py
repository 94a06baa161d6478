"""Gateway API status as data: the conditions `gateway.build` computes for each object.

The status writer (leader only) copies these into `.status`; tests compare them directly.

Design choice: a condition carries the object's generation it was computed from
(observedGeneration), so the build, not the writer, decides what is current.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
