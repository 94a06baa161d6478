"""The object cache every source fills and every consumer reads.

Sources call `apply`, `delete` or `replace`; consumers take a `Snapshot`, an immutable view
that pure build functions accept. Indexes (ingresses by class, slices by service) are kept
up to date on every write so lookups in the build are O(1).

Design choice: `replace(kind_set, objects)` swaps a whole set of objects under one lock and
emits one notification, so a relist (410 Gone) or a re-read of the manifest directory never
exposes a half-empty store to a consumer.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .objects import (
    ConfigMap,
    EndpointSlice,
    Ingress,
    IngressClass,
    KubeObject,
    Namespace,
    Node,
    Secret,
    Service,
)
from .objects.gateway import Gateway, GatewayClass, HTTPRoute, ReferenceGrant

Key = tuple[str, str, str]  # kind, namespace, name


def key_of(obj: KubeObject) -> Key:
    return (obj.meta.kind, obj.meta.namespace, obj.meta.name)


@dataclass(frozen=True)
class Change:
    """What one write did: the kinds it touched and the keys that changed."""

    kinds: frozenset[str]
    keys: frozenset[Key]
    services: frozenset[str] = frozenset()  # "ns/name" of Services whose EndpointSlices changed


@dataclass(frozen=True)
class Snapshot:
    """An immutable, consistent view of the store at one version."""

    version: int = 0
    ingresses: Mapping[str, Ingress] = field(default_factory=dict)  # "ns/name"
    classes: Mapping[str, IngressClass] = field(default_factory=dict)  # name
    services: Mapping[str, Service] = field(default_factory=dict)  # "ns/name"
    slices_by_service: Mapping[str, tuple[EndpointSlice, ...]] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    configmaps: Mapping[str, ConfigMap] = field(default_factory=dict)
    nodes: Mapping[str, Node] = field(default_factory=dict)
    # Gateway API (objects/gateway.py): by "ns/name", or name for cluster-scoped kinds
    gateway_classes: Mapping[str, GatewayClass] = field(default_factory=dict)
    gateways: Mapping[str, Gateway] = field(default_factory=dict)
    http_routes: Mapping[str, HTTPRoute] = field(default_factory=dict)
    grpc_routes: Mapping[str, HTTPRoute] = field(default_factory=dict)  # GRPCRoutes, in HTTPRoute's shape
    reference_grants: Mapping[str, ReferenceGrant] = field(default_factory=dict)
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)

    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get(f"{namespace}/{name}")

    def slices(self, namespace: str, service: str) -> tuple[EndpointSlice, ...]:
        return self.slices_by_service.get(f"{namespace}/{service}", ())

    def secret(self, namespace: str, name: str) -> Secret | None:
        return self.secrets.get(f"{namespace}/{name}")

    def configmap(self, namespace: str, name: str) -> ConfigMap | None:
        return self.configmaps.get(f"{namespace}/{name}")

    @staticmethod
    def of(objects: Iterable[KubeObject], version: int = 0) -> Snapshot:
        """A snapshot straight from objects (tests, offline validation)."""
        s = Store()
        s.replace(None, objects)
        return dataclasses.replace(s.snapshot(), version=version)


Listener = Callable[[Change], None]


def _slice_services(*objs: KubeObject | None) -> frozenset[str]:
    return frozenset(f"{o.meta.namespace}/{o.service_name}" for o in objs if isinstance(o, EndpointSlice))


class Store:
    """Thread-safe object cache with indexes and change notifications."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[Key, KubeObject] = {}
        self._slices: dict[str, dict[str, EndpointSlice]] = defaultdict(dict)
        self._by_class: dict[str | None, set[str]] = defaultdict(set)
        self._listeners: list[Listener] = []
        self._version = 0
        self._snapshot: Snapshot | None = None
        self._kinds: dict[str, dict[str, KubeObject]] = defaultdict(dict)  # kind -> "ns/name" -> object
        self._views: dict[str, Mapping[str, object]] = {}  # frozen per-kind copies, kept until that kind changes

    # -- writes ------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def apply(self, obj: KubeObject) -> bool:
        """Insert or update one object; False (and no notification) when nothing changed."""
        with self._lock:
            old = self._objects.get(key_of(obj))
            if not self._put(obj):
                return False
            change = Change(frozenset({obj.meta.kind}), frozenset({key_of(obj)}), _slice_services(old, obj))
            self._bump()
        self._notify(change)
        return True

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        with self._lock:
            old = self._objects.get((kind, namespace, name))
            if not self._drop((kind, namespace, name)):
                return False
            change = Change(frozenset({kind}), frozenset({(kind, namespace, name)}), _slice_services(old))
            self._bump()
        self._notify(change)
        return True

    def replace(self, kinds: Iterable[str] | None, objects: Iterable[KubeObject]) -> Change | None:
        """Make the store hold exactly `objects` for `kinds` (None: every kind) in one step."""
        return self._write(objects, kinds, drop_others=True)

    def put_many(self, objects: Iterable[KubeObject]) -> Change | None:
        """Insert or update `objects`, nothing deleted, in one step with one notification."""
        return self._write(objects, None, drop_others=False)

    def _write(self, objects: Iterable[KubeObject], kinds: Iterable[str] | None, drop_others: bool) -> Change | None:
        objects = list(objects)
        with self._lock:
            scope = set(kinds) if kinds is not None else None
            wanted = {key_of(o): o for o in objects if scope is None or o.meta.kind in scope}
            changed: set[Key] = set()
            services: set[str] = set()
            if drop_others:
                for k in [k for k in self._objects if (scope is None or k[0] in scope) and k not in wanted]:
                    services |= _slice_services(self._objects.get(k))
                    self._drop(k)
                    changed.add(k)
            for k, o in wanted.items():
                old = self._objects.get(k)
                if old is o:  # an unchanged file's object, as parsed before: nothing to compare
                    continue
                if self._put(o):
                    changed.add(k)
                    services |= _slice_services(old, o)
            if not changed:
                return None
            change = Change(frozenset(k[0] for k in changed), frozenset(changed), frozenset(services))
            self._bump()
        self._notify(change)
        return change

    # -- reads -------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def objects_of(self, kind: str) -> list[KubeObject]:
        with self._lock:
            return [o for k, o in self._objects.items() if k[0] == kind]

    def ingresses_by_class(self, class_name: str | None) -> list[Ingress]:
        with self._lock:
            out = []
            for key in self._by_class.get(class_name, ()):
                ns, name = key.split("/", 1)
                obj = self._objects.get(("Ingress", ns, name))
                if isinstance(obj, Ingress):
                    out.append(obj)
            return out

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._make_snapshot()
            return self._snapshot

    # -- internals ---------------------------------------------------------------------
    def _view(self, kind: str) -> Mapping[str, object]:
        """An immutable copy of one kind's objects, reused by snapshots until that kind changes.

        An EndpointSlice write then leaves `snapshot().ingresses` the very same mapping, so
        consumers that cache by identity (the admission host index) skip their refresh.
        """
        view = self._views.get(kind)
        if view is None:
            if kind == "EndpointSlice":  # by service, each service's slices sorted by name
                view = {svc: tuple(v[n] for n in sorted(v)) for svc, v in self._slices.items() if v}
            else:
                view = dict(self._kinds.get(kind, {}))
            view = self._views[kind] = MappingProxyType(view)
        return view

    def _make_snapshot(self) -> Snapshot:
        return Snapshot(
            version=self._version,
            ingresses=self._view("Ingress"),  # type: ignore[arg-type]
            classes=self._view("IngressClass"),  # type: ignore[arg-type]
            services=self._view("Service"),  # type: ignore[arg-type]
            slices_by_service=self._view("EndpointSlice"),  # type: ignore[arg-type]
            secrets=self._view("Secret"),  # type: ignore[arg-type]
            configmaps=self._view("ConfigMap"),  # type: ignore[arg-type]
            nodes=self._view("Node"),  # type: ignore[arg-type]
            gateway_classes=self._view("GatewayClass"),  # type: ignore[arg-type]
            gateways=self._view("Gateway"),  # type: ignore[arg-type]
            http_routes=self._view("HTTPRoute"),  # type: ignore[arg-type]
            grpc_routes=self._view("GRPCRoute"),  # type: ignore[arg-type]
            reference_grants=self._view("ReferenceGrant"),  # type: ignore[arg-type]
            namespaces=self._view("Namespace"),  # type: ignore[arg-type]
        )

    def _put(self, obj: KubeObject) -> bool:
        k = key_of(obj)
        old = self._objects.get(k)
        if old == obj:
            return False
        if old is not None:
            self._unindex(old)
        self._objects[k] = obj
        self._kinds[k[0]][f"{k[1]}/{k[2]}" if k[1] else k[2]] = obj
        self._views.pop(k[0], None)
        self._index(obj)
        return True

    def _drop(self, k: Key) -> bool:
        old = self._objects.pop(k, None)
        if old is None:
            return False
        self._kinds[k[0]].pop(f"{k[1]}/{k[2]}" if k[1] else k[2], None)
        self._views.pop(k[0], None)
        self._unindex(old)
        return True

    def _index(self, obj: KubeObject) -> None:
        if isinstance(obj, EndpointSlice):
            self._slices[f"{obj.meta.namespace}/{obj.service_name}"][obj.meta.name] = obj
        elif isinstance(obj, Ingress):
            self._by_class[obj.class_name].add(obj.meta.key)

    def _unindex(self, obj: KubeObject) -> None:
        if isinstance(obj, EndpointSlice):
            svc = f"{obj.meta.namespace}/{obj.service_name}"
            self._slices[svc].pop(obj.meta.name, None)
            if not self._slices[svc]:
                del self._slices[svc]
        elif isinstance(obj, Ingress):
            self._by_class[obj.class_name].discard(obj.meta.key)

    def _bump(self) -> None:
        self._version += 1
        self._snapshot = None

    def _notify(self, change: Change) -> None:
        for listener in list(self._listeners):
            listener(change)
