"""Service backends -> upstreams: port resolution and endpoint selection.

A backend names a Service port by number or name. The Service port's name then selects the
matching port in each EndpointSlice (slices name their ports after the Service port), which
gives the target port number. Ready endpoints are used; serving-but-terminating endpoints
only when no endpoint is ready. ExternalName Services become upstreams that nginx resolves
at request time.

Design choice: one `BackendResolver` per build caches every (Service, port) resolution, so
10,000 Ingresses sharing a Service cost one endpoint scan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass

from ..objects import EndpointSlice, Service, ServiceBackend, ServicePort
from ..store import Snapshot
from . import values as v
from .model import Endpoint, Model, Upstream

ProblemTuple = tuple[str, str, bool]  # reason, message, warning


@dataclass(frozen=True)
class Resolution:
    upstream: Upstream | None  # None: answer 503
    service: str  # ns/name:port for logs
    problems: tuple[ProblemTuple, ...] = ()


_selected: dict[tuple[str, str, str, str], tuple[tuple[EndpointSlice, ...], tuple[Endpoint, ...]]] = {}
# a build's resolution of a Service port, kept across builds: a build that reuses a server
# (build.BuildMemo) compares it with what it had, which the same object makes cheap
_resolved: dict[tuple[str, str, int | str], tuple[Service, tuple[Endpoint, ...], str, Resolution]] = {}
_SELECTED_MAX = 100_000


def select_endpoints(snap: Snapshot, svc: Service, sp: ServicePort) -> tuple[Endpoint, ...]:
    """The port's ready endpoints (else its serving terminating ones), from the Service's
    EndpointSlices. Kept per Service port while its slices are the same objects (the store
    keeps unchanged ones), so a build reads only the slices that changed."""
    slices = snap.slices(svc.meta.namespace, svc.meta.name)
    key = (svc.meta.namespace, svc.meta.name, sp.name, sp.protocol)
    hit = _selected.get(key)
    if hit is not None and len(hit[0]) == len(slices) and all(a is b for a, b in zip(hit[0], slices, strict=True)):
        return hit[1]
    if len(_selected) >= _SELECTED_MAX:
        _selected.clear()
    endpoints = _select(slices, sp)
    _selected[key] = (slices, endpoints)  # the slices are kept: their ids are not reused meanwhile
    return endpoints


def _select(slices: tuple[EndpointSlice, ...], sp: ServicePort) -> tuple[Endpoint, ...]:
    ready: set[Endpoint] = set()
    terminating: set[Endpoint] = set()
    for sl in slices:
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        port = next((p.port for p in sl.ports if p.name == sp.name and p.protocol == sp.protocol), 0)
        if not 1 <= port <= 65535:
            continue
        for ep in sl.endpoints:
            bucket = ready if ep.ready else terminating if (ep.serving and ep.terminating) else None
            if bucket is None:
                continue
            for addr in ep.addresses:
                ip = normal_ip(addr)
                if ip and routable_endpoint(ip):
                    bucket.add(Endpoint(ip, port))
    return tuple(sorted(ready or terminating, key=lambda e: (e.address, e.port)))


_IPV4 = re.compile(r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$")


def normal_ip(addr: str) -> str:
    """The address in canonical form, or '' if it is not an IP (fast path for dotted quads).

    IPv6 zone ids are refused: ipaddress accepts any text after '%' and prints it back.
    """
    if _IPV4.fullmatch(addr):
        return addr
    if "%" in addr:
        return ""
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return ""


# Names that reach the controller's own host or the cloud metadata service (169.254.169.254).
_LOCAL_NAMES = ("localhost", "metadata.google.internal", "instance-data", "instance-data.ec2.internal")


def external_name(value: str) -> str:
    """An ExternalName nginx may resolve: a DNS name, not an address ('169.254.169.254' is a valid
    DNS-1123 name, and nginx would connect to it), not a wildcard, not a name of the node itself.
    A DNS name can still resolve to such an address: egress policy has the last word."""
    name = v.host(value.rstrip(".").lower())
    last = name.rpartition(".")[2]
    if name.startswith("*.") or last.isdigit() or name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise v.InvalidValue(f"ExternalName {value!r} is an address, a wildcard or a local name, not a DNS name "
                             "of a remote service")
    return name


def routable_endpoint(ip: str) -> bool:
    """Not unspecified (0.0.0.0 reaches the controller's own loopback), link-local (the cloud
    metadata service) nor multicast: the API server refuses those in EndpointSlices, and so do we
    for manifests. Loopback stays: local mode serves processes on this machine."""
    if _IPV4.fullmatch(ip) and not ip.startswith(("0.", "169.254.", "22", "23")):
        return True  # fast path: multicast is 224-239, so only 22x/23x need the full check
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:  # ::ffff:169.254.169.254
        return routable_endpoint(str(a.ipv4_mapped))
    return not (a.is_unspecified or a.is_link_local or a.is_multicast)


def upstream_name(namespace: str, service: str, port: int | str) -> str:
    return f"{namespace}-{service}-{port}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


class BackendResolver:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self._cache: dict[tuple[str, str, int | str], Resolution] = {}
        self._owners: dict[str, tuple[str, str]] = {}  # upstream name -> (namespace, service)

    def _name(self, namespace: str, service: str, port: int) -> str:
        """`ns-service-port`, unless another Service already has that name ('a-b'/'c' and
        'a'/'b-c'): then a digest of namespace/service follows, so two Services never share
        an upstream (and its endpoints)."""
        name = upstream_name(namespace, service, port)
        if self._owners.setdefault(name, (namespace, service)) != (namespace, service):
            name = f"{name}-{_digest(f'{namespace}/{service}')}"
        return name

    def resolve(self, namespace: str, backend: ServiceBackend) -> Resolution:
        key = (namespace, backend.name, backend.port)
        res = self._cache.get(key)
        if res is None:
            res = self._resolve(namespace, backend)
            self._cache[key] = res
        return res

    def _resolve(self, namespace: str, backend: ServiceBackend) -> Resolution:
        label = f"{namespace}/{backend.name}:{backend.port}"
        svc = self.snap.service(namespace, backend.name)
        if svc is None:
            return Resolution(None, label, (("ServiceNotFound", f"Service {namespace}/{backend.name} not found; "
                                             "answering 503", True),))
        if svc.type == "ExternalName":
            return self._external(svc, backend, label)
        sp = svc.port_for(backend.port)
        if sp is None:
            return Resolution(None, label, (("PortNotFound", f"Service {svc.meta.key} has no port "
                                             f"{backend.port!r}; answering 503", True),))
        name = self._name(namespace, backend.name, sp.port)
        endpoints = select_endpoints(self.snap, svc, sp)
        if not endpoints:
            return Resolution(None, label, (("NoEndpoints", f"Service {svc.meta.key} port {backend.port} has "
                                             "no ready endpoints; answering 503", True),))
        key = (namespace, backend.name, backend.port)
        hit = _resolved.get(key)  # the same Resolution while its Service and endpoints are the same
        if hit is not None and hit[0] is svc and hit[1] is endpoints and hit[2] == name:
            return hit[3]
        if len(_resolved) >= _SELECTED_MAX:
            _resolved.clear()
        res = Resolution(Upstream(name, svc.meta.key, endpoints, port=sp.port), label)
        _resolved[key] = (svc, endpoints, name, res)
        return res

    def _external(self, svc: Service, backend: ServiceBackend, label: str) -> Resolution:
        try:
            host = external_name(svc.external_name)
        except v.InvalidValue as e:
            return Resolution(None, label, (("InvalidExternalName", str(e), False),))
        if isinstance(backend.port, int):
            port = backend.port
        else:
            sp = svc.port_for(backend.port)
            if sp is None:
                return Resolution(None, label, (("PortNotFound", f"Service {svc.meta.key} has no port "
                                                 f"{backend.port!r}; answering 503", True),))
            port = sp.port
        name = self._name(svc.meta.namespace, svc.meta.name, port)
        return Resolution(Upstream(name, svc.meta.key, (), external_name=host, external_port=port, port=port), label)

    def upstreams(self) -> tuple[Upstream, ...]:
        seen: dict[str, Upstream] = {}
        for res in self._cache.values():
            if res.upstream is not None:
                seen[res.upstream.name] = res.upstream
        return tuple(seen[k] for k in sorted(seen))


def refresh_upstreams(model: Model, snap: Snapshot, services: Collection[str]) -> Model | None:
    """The model with new endpoints for `services`, when only endpoint lists change.

    None when the change needs a full build: a Service no upstream carries yet (its
    locations answer 503), an upstream that would lose its last endpoint, or one whose
    endpoints are not its pods' (clusterIP, hashing and other variants stay static).
    """
    wanted = set(services)
    seen: set[str] = set()
    upstreams = []
    for u in model.upstreams:
        if u.service not in wanted:
            upstreams.append(u)
            continue
        seen.add(u.service)
        ns, _, name = u.service.partition("/")
        svc = snap.service(ns, name)
        sp = svc.port_for(u.port) if svc is not None else None
        if sp is None or not u.lua_balanced or u.name != upstream_name(ns, name, u.port):
            return None
        endpoints = select_endpoints(snap, svc, sp)  # type: ignore[arg-type]
        if not endpoints:
            return None
        upstreams.append(dataclasses.replace(u, endpoints=endpoints))
    if seen != wanted:
        return None
    return dataclasses.replace(model, upstreams=tuple(upstreams))
