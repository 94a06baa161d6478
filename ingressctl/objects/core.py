"""core/v1 kinds: Service (with its LoadBalancer status), Secret, ConfigMap, Node."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .meta import Meta, _describe, _meta, _Reader


@dataclass(frozen=True)
class LoadBalancerIngress:
    ip: str = ""
    hostname: str = ""


@dataclass(frozen=True)
class ServicePort:
    name: str
    protocol: str
    port: int
    target_port: int | str
    node_port: int = 0
    app_protocol: str = ""


@dataclass(frozen=True)
class Service:
    meta: Meta
    type: str
    cluster_ip: str
    cluster_ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str]
    external_name: str = ""
    external_ips: tuple[str, ...] = ()
    load_balancer_ip: str = ""
    load_balancer_source_ranges: tuple[str, ...] = ()
    load_balancer_class: str = ""
    session_affinity: str = "None"
    affinity_timeout: int = 10800
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    status_ingress: tuple[LoadBalancerIngress, ...] = ()

    @property
    def is_headless(self) -> bool:
        return self.cluster_ip == "None"

    def port_for(self, ref: int | str) -> ServicePort | None:
        for p in self.ports:
            if (isinstance(ref, int) and p.port == ref) or (isinstance(ref, str) and p.name == ref):
                return p
        return None


@dataclass(frozen=True)
class Secret:
    meta: Meta
    type: str
    data: Mapping[str, bytes]


@dataclass(frozen=True)
class ConfigMap:
    meta: Meta
    data: Mapping[str, str]


@dataclass(frozen=True)
class NodeAddress:
    type: str
    address: str


@dataclass(frozen=True)
class Node:
    meta: Meta
    addresses: tuple[NodeAddress, ...]


def _lb_status(r: _Reader, raw: Any, path: str) -> tuple[LoadBalancerIngress, ...]:
    items = r.seq(r.mapping(r.mapping(raw, "status").get("loadBalancer"), path).get("ingress"), path)
    return tuple(
        LoadBalancerIngress(
            ip=r.text(r.mapping(i, path).get("ip"), f"{path}.ip"),
            hostname=r.text(r.mapping(i, path).get("hostname"), f"{path}.hostname"),
        )
        for i in items
    )


def _service_port(r: _Reader, raw: Any, path: str) -> ServicePort:
    p = r.mapping(raw, path)
    port = r.integer(p.get("port"), f"{path}.port")
    if not 1 <= port <= 65535:
        raise r.fail(f"{path}.port", f"{port} is not in 1-65535")
    proto = r.text(p.get("protocol"), f"{path}.protocol", "TCP")
    if proto not in ("TCP", "UDP", "SCTP"):
        raise r.fail(f"{path}.protocol", f"{proto!r} is not TCP, UDP or SCTP")
    target = p.get("targetPort", port)
    return ServicePort(
        name=r.text(p.get("name"), f"{path}.name"),
        protocol=proto,
        port=port,
        target_port=r.int_or_str(target, f"{path}.targetPort"),
        node_port=r.integer(p.get("nodePort"), f"{path}.nodePort"),
        app_protocol=r.text(p.get("appProtocol"), f"{path}.appProtocol"),
    )


def parse_service(raw: Mapping[str, Any]) -> Service:
    r = _Reader(_describe(raw))
    meta = _meta(r, "Service", raw, True)
    spec = r.mapping(raw.get("spec"), "spec")
    stype = r.text(spec.get("type"), "spec.type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise r.fail("spec.type", f"{stype!r} is not a Service type")
    ports = tuple(_service_port(r, p, f"spec.ports[{i}]") for i, p in enumerate(r.seq(spec.get("ports"), "spec.ports")))
    cfg = r.mapping(r.mapping(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig").get("clientIP"), "clientIP")
    timeout = r.integer(cfg.get("timeoutSeconds"), "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 10800)
    cluster_ip = r.text(spec.get("clusterIP"), "spec.clusterIP")
    ips = tuple(r.text(x, "spec.clusterIPs") for x in r.seq(spec.get("clusterIPs"), "spec.clusterIPs"))
    return Service(
        meta=meta,
        type=stype,
        cluster_ip=cluster_ip,
        cluster_ips=ips or ((cluster_ip,) if cluster_ip else ()),
        ports=ports,
        selector=r.str_map(spec.get("selector"), "spec.selector"),
        external_name=r.text(spec.get("externalName"), "spec.externalName"),
        external_ips=tuple(r.text(x, "spec.externalIPs") for x in r.seq(spec.get("externalIPs"), "spec.externalIPs")),
        load_balancer_ip=r.text(spec.get("loadBalancerIP"), "spec.loadBalancerIP"),
        load_balancer_source_ranges=tuple(
            r.text(x, "spec.loadBalancerSourceRanges")
            for x in r.seq(spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges")
        ),
        load_balancer_class=r.text(spec.get("loadBalancerClass"), "spec.loadBalancerClass"),
        session_affinity=r.text(spec.get("sessionAffinity"), "spec.sessionAffinity", "None"),
        affinity_timeout=timeout,
        external_traffic_policy=r.text(spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy", "Cluster"),
        internal_traffic_policy=r.text(spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", "Cluster"),
        status_ingress=_lb_status(r, raw.get("status"), "status.loadBalancer.ingress"),
    )


def parse_secret(raw: Mapping[str, Any]) -> Secret:
    r = _Reader(_describe(raw))
    meta = _meta(r, "Secret", raw, True)
    data: dict[str, bytes] = {}
    for k, v in r.str_map(raw.get("data"), "data", secret=True).items():
        try:
            data[k] = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as e:
            raise r.fail(f"data.{k}", f"not valid base64 ({e})") from None
    for k, v in r.str_map(raw.get("stringData"), "stringData", secret=True).items():
        data[k] = v.encode()
    return Secret(meta, r.text(raw.get("type"), "type", "Opaque"), data)


def parse_config_map(raw: Mapping[str, Any]) -> ConfigMap:
    r = _Reader(_describe(raw))
    return ConfigMap(_meta(r, "ConfigMap", raw, True), r.str_map(raw.get("data"), "data"))


def parse_node(raw: Mapping[str, Any]) -> Node:
    r = _Reader(_describe(raw))
    status = r.mapping(raw.get("status"), "status")
    addrs = tuple(
        NodeAddress(r.text(r.mapping(a, "status.addresses").get("type"), "type"), r.text(r.mapping(a, "a").get("address"), "address"))
        for a in r.seq(status.get("addresses"), "status.addresses")
    )
    return Node(_meta(r, "Node", raw, False), addrs)


@dataclass(frozen=True)
class Namespace:
    meta: Meta  # only its labels matter (Gateway allowedRoutes selectors)


def parse_namespace(raw: Mapping[str, Any]) -> Namespace:
    return Namespace(_meta(_Reader(_describe(raw)), "Namespace", raw, False))
