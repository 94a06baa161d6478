"""networking.k8s.io/v1 kinds: Ingress and IngressClass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .core import LoadBalancerIngress, _lb_status
from .meta import Meta, _describe, _meta, _Reader

INGRESS_CLASS_DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


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
