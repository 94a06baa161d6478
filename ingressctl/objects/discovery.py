"""discovery.k8s.io/v1: EndpointSlice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .meta import Meta, _describe, _meta, _Reader

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class EndpointPort:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool
    serving: bool
    terminating: bool
    node_name: str = ""
    zone: str = ""
    hostname: str = ""


@dataclass(frozen=True)
class EndpointSlice:
    meta: Meta
    service_name: str
    address_type: str
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]


def parse_endpoint_slice(raw: Mapping[str, Any]) -> EndpointSlice:
    r = _Reader(_describe(raw))
    meta = _meta(r, "EndpointSlice", raw, True)
    ports = []
    for i, p in enumerate(r.seq(raw.get("ports"), "ports", 100)):
        p = r.mapping(p, f"ports[{i}]")
        ports.append(
            EndpointPort(
                name=r.text(p.get("name"), f"ports[{i}].name"),
                port=r.integer(p.get("port"), f"ports[{i}].port"),
                protocol=r.text(p.get("protocol"), f"ports[{i}].protocol", "TCP"),
            )
        )
    eps = []
    for i, e in enumerate(r.seq(raw.get("endpoints"), "endpoints", 1000)):
        e = r.mapping(e, f"endpoints[{i}]")
        cond = r.mapping(e.get("conditions"), f"endpoints[{i}].conditions")
        ready = r.flag(cond.get("ready"), f"endpoints[{i}].conditions.ready", True)
        terminating = r.flag(cond.get("terminating"), f"endpoints[{i}].conditions.terminating", False)
        eps.append(
            Endpoint(
                addresses=tuple(r.text(a, f"endpoints[{i}].addresses") for a in r.seq(e.get("addresses"), "addresses", 100)),
                ready=ready,
                serving=r.flag(cond.get("serving"), f"endpoints[{i}].conditions.serving", ready),
                terminating=terminating,
                node_name=r.text(e.get("nodeName"), f"endpoints[{i}].nodeName"),
                zone=r.text(e.get("zone"), f"endpoints[{i}].zone"),
                hostname=r.text(e.get("hostname"), f"endpoints[{i}].hostname"),
            )
        )
    service = meta.labels.get(SERVICE_NAME_LABEL, "")
    if not service:
        raise r.fail("metadata.labels", f"needs the {SERVICE_NAME_LABEL} label")
    return EndpointSlice(
        meta=meta,
        service_name=service,
        address_type=r.text(raw.get("addressType"), "addressType", "IPv4"),
        ports=tuple(ports),
        endpoints=tuple(eps),
    )
