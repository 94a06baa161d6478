"""Snapshot + this node -> ServiceTable, the pure half of the Service proxy.

Applies the Kubernetes rules kube-proxy applies before writing a single rule: which
Services a proxy programs (not headless, not ExternalName, not labelled for another proxy,
has a cluster IP), one entry per Service port, endpoints matched to the port by name and
protocol across all of the Service's EndpointSlices, deduplicated, flagged local when their
nodeName is this node. The endpoint *selection* (ready vs terminating, Local policies) is
in `model.ServiceInfo`, so it is shared by every backend.

Design choice: no I/O, no clock, deterministic order, so `build_table(snapshot) ==
build_table(snapshot)` and the change tracker can diff tables entry by entry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from types import MappingProxyType

from ...objects import EndpointSlice, Service, ServicePort
from ...store import Snapshot
from .model import (
    SCHEDULER_ANNOTATION,
    EndpointInfo,
    ServiceInfo,
    ServicePortKey,
    ServiceTable,
)

PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
DEFAULT_PROXY_NAME = "ingressctl"


def skip_reason(svc: Service, proxy_name: str = DEFAULT_PROXY_NAME) -> str:
    """Why this proxy leaves the Service alone, or "" if it programs it."""
    other = svc.meta.labels.get(PROXY_NAME_LABEL)
    if other is not None and other != proxy_name:
        return f"handled by service proxy {other!r}"
    if svc.type == "ExternalName":
        return "ExternalName"
    if svc.is_headless or HEADLESS_LABEL in svc.meta.labels:
        return "headless"
    if not [ip for ip in svc.cluster_ips if _is_ip(ip)]:
        return "no cluster IP"
    return ""


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _endpoints_for(port: ServicePort, slices: Iterable[EndpointSlice],
                   node_name: str) -> tuple[EndpointInfo, ...]:
    """Endpoints of every slice that has a port of this name and protocol, deduplicated."""
    found: dict[tuple[str, int], EndpointInfo] = {}
    for sl in slices:
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        target = next((p for p in sl.ports if p.name == port.name and p.protocol == port.protocol), None)
        if target is None or not 1 <= target.port <= 65535:
            continue
        for ep in sl.endpoints:
            if not ep.addresses or not _is_ip(ep.addresses[0]):
                continue
            info = EndpointInfo(
                ip=ep.addresses[0],
                port=target.port,
                ready=ep.ready,
                serving=ep.serving,
                terminating=ep.terminating,
                is_local=bool(node_name) and ep.node_name == node_name,
                node_name=ep.node_name,
                zone=ep.zone,
            )
            old = found.get((info.ip, info.port))
            if old is None or (info.ready and not old.ready):
                found[(info.ip, info.port)] = info
    return tuple(sorted(found.values()))


def service_infos(svc: Service, slices: Iterable[EndpointSlice],
                  node_name: str = "") -> list[ServiceInfo]:
    """One ServiceInfo per port of a Service the proxy programs."""
    slices = tuple(slices)
    cluster_ips = tuple(ip for ip in svc.cluster_ips if _is_ip(ip))
    lb_ips = tuple(i.ip for i in svc.status_ingress if i.ip and _is_ip(i.ip)) \
        if svc.type == "LoadBalancer" else ()
    external = svc.type in ("NodePort", "LoadBalancer")
    scheduler = svc.meta.annotations.get(SCHEDULER_ANNOTATION, "").strip()  # "": --scheduler
    out = []
    for p in svc.ports:
        out.append(ServiceInfo(
            key=ServicePortKey(svc.meta.namespace, svc.meta.name, p.name, p.protocol),
            type=svc.type,
            cluster_ips=cluster_ips,
            port=p.port,
            protocol=p.protocol,
            node_port=p.node_port if external else 0,
            external_ips=tuple(ip for ip in svc.external_ips if _is_ip(ip)),
            load_balancer_ips=lb_ips,
            load_balancer_source_ranges=tuple(svc.load_balancer_source_ranges) if lb_ips else (),
            session_affinity=svc.session_affinity,
            affinity_timeout=svc.affinity_timeout,
            external_traffic_policy=svc.external_traffic_policy,
            internal_traffic_policy=svc.internal_traffic_policy,
            scheduler=scheduler,
            endpoints=_endpoints_for(p, slices, node_name),
        ))
    return out


def build_table(snapshot: Snapshot, node_name: str = "", node_ips: Iterable[str] = (),
                proxy_name: str = DEFAULT_PROXY_NAME) -> ServiceTable:
    """The ServiceTable for this node from one consistent Snapshot."""
    services: dict[ServicePortKey, ServiceInfo] = {}
    skipped: list[str] = []
    for key in sorted(snapshot.services):
        svc = snapshot.services[key]
        reason = skip_reason(svc, proxy_name)
        if reason:
            skipped.append(f"{key}: {reason}")
            continue
        for info in service_infos(svc, snapshot.slices(svc.meta.namespace, svc.meta.name), node_name):
            services[info.key] = info
    return ServiceTable(
        services=MappingProxyType(services),
        node_name=node_name,
        node_ips=tuple(node_ips),
        skipped=tuple(skipped),
    )
