"""Builders of Ingress manifests and stores shared by the admission tests and bench/admission.py."""

from __future__ import annotations

from typing import Any

from ingressctl.admission.validate import ValidateOptions, Validator
from ingressctl.ingress.build import BuildOptions
from ingressctl.ingress.classes import ClassFilter
from ingressctl.objects import KubeObject, parse_object
from ingressctl.store import Snapshot

PREFIX = "nginx.ingress.kubernetes.io/"


def ingress(name: str, host: str | None = "a.example.com", path: str = "/", path_type: str = "Prefix",
            annotations: dict[str, str] | None = None, namespace: str = "default",
            created: str | None = "2024-01-01T00:00:00Z", tls: list[dict[str, Any]] | None = None,
            service: str = "web", port: int | str = 80, class_name: str | None = "nginx") -> dict[str, Any]:
    """A raw networking.k8s.io/v1 Ingress with one rule and one path."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": dict(annotations or {})}
    if created:
        meta["creationTimestamp"] = created
    port_ref = {"number": port} if isinstance(port, int) else {"name": port}
    rule: dict[str, Any] = {"http": {"paths": [{"path": path, "pathType": path_type, "backend": {
        "service": {"name": service, "port": port_ref}}}]}}
    if host is not None:
        rule["host"] = host
    spec: dict[str, Any] = {"rules": [rule]}
    if class_name is not None:
        spec["ingressClassName"] = class_name
    if tls is not None:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def ingress_class(name: str = "nginx", controller: str = "ingressctl.io/ingress-controller") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": name},
            "spec": {"controller": controller}}


def service(name: str = "web", namespace: str = "default", port: int = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": port, "targetPort": 8080}]}}


def endpoint_slice(service_name: str = "web", namespace: str = "default",
                   addresses: tuple[str, ...] = ("10.0.0.1",)) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-abc", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}


def snapshot(*raws: dict[str, Any], base: bool = True) -> Snapshot:
    """A snapshot holding the IngressClass "nginx" (ours), Service default/web with one endpoint, and `raws`."""
    objs: list[KubeObject] = []
    if base:
        objs += [parse_object(ingress_class()), parse_object(service()), parse_object(endpoint_slice())]
    objs += [parse_object(r) for r in raws]
    return Snapshot.of(objs)


def validator(allow_snippets: bool = False, **kw: Any) -> Validator:
    from ingressctl.ingress.settings import Settings

    opts = BuildOptions(classes=ClassFilter(), settings=Settings(allow_snippet_annotations=allow_snippets))
    return Validator(ValidateOptions(build=opts, **kw))
