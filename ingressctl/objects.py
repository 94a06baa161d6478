"""Typed views of the Kubernetes objects ingressctl reads.

Every source (the API watcher, the manifest directory) hands plain dicts to `parse_object`,
which returns frozen dataclasses or raises `ObjectError` naming the object and the field.
Nothing downstream ever looks at a raw dict again, so a malformed object is reported once,
here, and cannot surprise the build or the templates.

Design choice: parse only the fields we use and keep them immutable; unknown fields are
ignored as the API server would keep them, not as errors.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .objects_gateway import Gateway, GatewayClass, HTTPRoute, Namespace, ReferenceGrant

INGRESS_CLASS_DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ObjectError(ValueError):
    """A Kubernetes object that cannot be read; the message names object and field."""


@dataclass(frozen=True)
class Meta:
    kind: str
    namespace: str
    name: str
    uid: str = ""
    resource_version: str = ""
    creation_timestamp: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def age_key(self) -> tuple[str, str, str]:
        """Sort key for 'oldest wins': creationTimestamp, then namespace/name."""
        return (self.creation_timestamp or "9999", self.namespace, self.name)


# --- Ingress -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceBackend:
    name: str
    port: int | str  # a number or a Service port name


@dataclass(frozen=True)
class IngressPath:
    path: str
    path_type: str  # Exact | Prefix | ImplementationSpecific
    backend: ServiceBackend | None
    resource_kind: str = ""  # non-Service backends are unsupported and reported


@dataclass(frozen=True)
class IngressRule:
    host: str
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True)
class IngressTLS:
    hosts: tuple[str, ...]
    secret_name: str


@dataclass(frozen=True)
class LoadBalancerIngress:
    ip: str = ""
    hostname: str = ""


@dataclass(frozen=True)
class Ingress:
    meta: Meta
    class_name: str | None
    default_backend: ServiceBackend | None
    rules: tuple[IngressRule, ...]
    tls: tuple[IngressTLS, ...]
    status: tuple[LoadBalancerIngress, ...] = ()


@dataclass(frozen=True)
class IngressClass:
    meta: Meta
    controller: str

    @property
    def is_default(self) -> bool:
        return self.meta.annotations.get(INGRESS_CLASS_DEFAULT_ANNOTATION, "") == "true"


# --- Service, EndpointSlice -----------------------------------------------------------


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


# --- Secret, ConfigMap, Node -----------------------------------------------------------


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


KubeObject = Union[Ingress, IngressClass, Service, EndpointSlice, Secret, ConfigMap, Node,
                   "GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant", "Namespace"]  # a GRPCRoute is an HTTPRoute


# --- parsing ---------------------------------------------------------------------------


class _Reader:
    """Field access with errors that say which object and which field went wrong."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, path: str, msg: str) -> ObjectError:
        return ObjectError(f"{self.what}: {path}: {msg}")

    def mapping(self, obj: Any, path: str) -> Mapping[str, Any]:
        if obj is None:
            return {}
        if not isinstance(obj, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(obj).__name__}")
        return obj

    def seq(self, obj: Any, path: str, limit: int | None = None) -> list[Any]:
        if obj is None:
            return []
        if not isinstance(obj, list):
            raise self.fail(path, f"expected a list, got {type(obj).__name__}")
        if limit is not None and len(obj) > limit:
            raise self.fail(path, f"{len(obj)} items: at most {limit} (the API server's bound)")
        return obj

    def text(self, obj: Any, path: str, default: str = "") -> str:
        if obj is None:
            return default
        if not isinstance(obj, str):
            raise self.fail(path, f"expected a string, got {type(obj).__name__}")
        if not obj.isascii() and not _encodable(obj):
            raise self.fail(path, "is not valid Unicode text (a lone surrogate)")
        return obj

    def integer(self, obj: Any, path: str, default: int = 0) -> int:
        if obj is None:
            return default
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise self.fail(path, f"expected an integer, got {obj!r}")
        return int(obj)

    def flag(self, obj: Any, path: str, default: bool) -> bool:
        if obj is None:
            return default
        if not isinstance(obj, bool):
            raise self.fail(path, f"expected true or false, got {obj!r}")
        return obj

    def str_map(self, obj: Any, path: str, secret: bool = False) -> dict[str, str]:
        """A string -> string map; `secret` maps (Secret data) never quote a value in errors."""
        out: dict[str, str] = {}
        for k, v in self.mapping(obj, path).items():
            if not isinstance(k, str):
                raise self.fail(path, f"key {k!r} is not a string")
            if isinstance(v, (int, float, bool)) and not isinstance(v, str):
                shown = f"a {type(v).__name__}" if secret else repr(v)
                raise self.fail(f"{path}.{k}", f"value {shown} must be a string (quote it)")
            out[k] = self.text(v, f"{path}.{k}")
        return out

    def int_or_str(self, obj: Any, path: str) -> int | str:
        if isinstance(obj, bool) or not isinstance(obj, (int, str)) or obj == "":
            raise self.fail(path, f"expected a port number or name, got {obj!r}")
        return obj if isinstance(obj, str) else int(obj)


def _encodable(text: str) -> bool:
    """False for a lone surrogate (JSON's "\\udc80"): it reaches no file nginx can read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _meta(r: _Reader, kind: str, raw: Mapping[str, Any], namespaced: bool) -> Meta:
    m = r.mapping(raw.get("metadata"), "metadata")
    name = r.text(m.get("name"), "metadata.name")
    if not name:
        raise r.fail("metadata.name", "is required")
    ns = r.text(m.get("namespace"), "metadata.namespace", "default" if namespaced else "")
    ts = m.get("creationTimestamp")
    if ts is not None and not isinstance(ts, (str, datetime.date)):  # YAML reads a bare timestamp as a datetime
        raise r.fail("metadata.creationTimestamp", f"expected a timestamp, got {type(ts).__name__}")
    return Meta(
        kind=kind,
        namespace=ns if namespaced else "",
        name=name,
        uid=r.text(m.get("uid"), "metadata.uid"),
        resource_version=r.text(m.get("resourceVersion"), "metadata.resourceVersion"),
        creation_timestamp=ts if isinstance(ts, str) else (ts.isoformat() if ts else ""),
        generation=r.integer(m.get("generation"), "metadata.generation"),
        labels=r.str_map(m.get("labels"), "metadata.labels"),
        annotations=r.str_map(m.get("annotations"), "metadata.annotations"),
    )


def _lb_status(r: _Reader, raw: Any, path: str) -> tuple[LoadBalancerIngress, ...]:
    items = r.seq(r.mapping(r.mapping(raw, "status").get("loadBalancer"), path).get("ingress"), path)
    return tuple(
        LoadBalancerIngress(
            ip=r.text(r.mapping(i, path).get("ip"), f"{path}.ip"),
            hostname=r.text(r.mapping(i, path).get("hostname"), f"{path}.hostname"),
        )
        for i in items
    )


def _backend(r: _Reader, raw: Any, path: str) -> tuple[ServiceBackend | None, str]:
    b = r.mapping(raw, path)
    if "resource" in b:
        res = r.mapping(b["resource"], f"{path}.resource")
        return None, r.text(res.get("kind"), f"{path}.resource.kind", "Resource")
    svc = r.mapping(b.get("service"), f"{path}.service")
    if not svc:
        raise r.fail(path, "needs service or resource")
    name = r.text(svc.get("name"), f"{path}.service.name")
    if not name:
        raise r.fail(f"{path}.service.name", "is required")
    port = r.mapping(svc.get("port"), f"{path}.service.port")
    if "number" in port and "name" in port:
        raise r.fail(f"{path}.service.port", "set number or name, not both")
    if "number" in port:
        num = r.integer(port["number"], f"{path}.service.port.number")
        if not 1 <= num <= 65535:
            raise r.fail(f"{path}.service.port.number", f"{num} is not in 1-65535")
        return ServiceBackend(name, num), ""
    pname = r.text(port.get("name"), f"{path}.service.port.name")
    if not pname:
        raise r.fail(f"{path}.service.port", "needs number or name")
    return ServiceBackend(name, pname), ""


def parse_ingress(raw: Mapping[str, Any]) -> Ingress:
    r = _Reader(_describe(raw))
    meta = _meta(r, "Ingress", raw, True)
    spec = r.mapping(raw.get("spec"), "spec")
    default = None
    if spec.get("defaultBackend") is not None:
        default, kind = _backend(r, spec["defaultBackend"], "spec.defaultBackend")
    rules = []
    for i, rule in enumerate(r.seq(spec.get("rules"), "spec.rules")):
        rule = r.mapping(rule, f"spec.rules[{i}]")
        host = r.text(rule.get("host"), f"spec.rules[{i}].host")
        http = r.mapping(rule.get("http"), f"spec.rules[{i}].http")
        paths = []
        for j, p in enumerate(r.seq(http.get("paths"), f"spec.rules[{i}].http.paths")):
            where = f"spec.rules[{i}].http.paths[{j}]"
            p = r.mapping(p, where)
            ptype = r.text(p.get("pathType"), f"{where}.pathType")
            if ptype not in ("Exact", "Prefix", "ImplementationSpecific"):
                raise r.fail(f"{where}.pathType", f"{ptype!r} is not Exact, Prefix or ImplementationSpecific")
            backend, kind = _backend(r, p.get("backend"), f"{where}.backend")
            paths.append(IngressPath(r.text(p.get("path"), f"{where}.path", "/"), ptype, backend, kind))
        rules.append(IngressRule(host, tuple(paths)))
    tls = []
    for i, t in enumerate(r.seq(spec.get("tls"), "spec.tls")):
        t = r.mapping(t, f"spec.tls[{i}]")
        hosts = tuple(r.text(h, f"spec.tls[{i}].hosts") for h in r.seq(t.get("hosts"), f"spec.tls[{i}].hosts"))
        tls.append(IngressTLS(hosts, r.text(t.get("secretName"), f"spec.tls[{i}].secretName")))
    cls = spec.get("ingressClassName")
    return Ingress(
        meta=meta,
        class_name=r.text(cls, "spec.ingressClassName") if cls is not None else None,
        default_backend=default,
        rules=tuple(rules),
        tls=tuple(tls),
        status=_lb_status(r, raw.get("status"), "status.loadBalancer.ingress"),
    )


def parse_ingress_class(raw: Mapping[str, Any]) -> IngressClass:
    r = _Reader(_describe(raw))
    spec = r.mapping(raw.get("spec"), "spec")
    return IngressClass(_meta(r, "IngressClass", raw, False), r.text(spec.get("controller"), "spec.controller"))


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


PARSERS: dict[str, Callable[[Mapping[str, Any]], KubeObject]] = {
    "Ingress": parse_ingress,
    "IngressClass": parse_ingress_class,
    "Service": parse_service,
    "EndpointSlice": parse_endpoint_slice,
    "Secret": parse_secret,
    "ConfigMap": parse_config_map,
    "Node": parse_node,
}
KINDS: tuple[str, ...] = ()  # set at the end of this module, with the Gateway API kinds


def _describe(raw: Mapping[str, Any]) -> str:
    kind = raw.get("kind", "?")
    meta = raw.get("metadata")
    m: Mapping[str, Any] = meta if isinstance(meta, Mapping) else {}
    ns, name = m.get("namespace"), m.get("name", "?")
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def parse_object(raw: Any) -> KubeObject:
    """Parse one object of a kind we read; ObjectError for anything else or malformed."""
    if not isinstance(raw, Mapping):
        raise ObjectError(f"expected an object (mapping), got {type(raw).__name__}")
    kind = raw.get("kind")
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ObjectError(f"{_describe(raw)}: kind {kind!r} is not one ingressctl reads")
    return parser(raw)


from .objects_gateway import GATEWAY_PARSERS

PARSERS.update(GATEWAY_PARSERS)  # type: ignore[arg-type]
KINDS = tuple(PARSERS)
