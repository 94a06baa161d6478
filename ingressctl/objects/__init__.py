"""Typed views of the Kubernetes objects ingressctl reads, one module per API group:
`core` (Service, Secret, ConfigMap, Node, Namespace), `networking` (Ingress, IngressClass),
`discovery` (EndpointSlice) and `gateway` (Gateway API); `meta` holds what they share.

Every source (the API watcher, the manifest directory) hands plain dicts to `parse_object`,
which returns frozen dataclasses or raises `ObjectError` naming the object and the field.
Nothing downstream ever looks at a raw dict again, so a malformed object is reported once,
here, and cannot surprise the build or the templates.

Design choice: parse only the fields we use and keep them immutable; unknown fields are
ignored as the API server would keep them, not as errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

from .core import (
    ConfigMap,
    LoadBalancerIngress,
    Namespace,
    Node,
    NodeAddress,
    Secret,
    Service,
    ServicePort,
    parse_config_map,
    parse_namespace,
    parse_node,
    parse_secret,
    parse_service,
)
from .discovery import SERVICE_NAME_LABEL, Endpoint, EndpointPort, EndpointSlice, parse_endpoint_slice
from .gateway import GATEWAY_PARSERS, Gateway, GatewayClass, HTTPRoute, ReferenceGrant
from .meta import Meta, ObjectError, _describe, _meta, _Reader
from .networking import (
    INGRESS_CLASS_DEFAULT_ANNOTATION,
    Ingress,
    IngressClass,
    IngressPath,
    IngressRule,
    IngressTLS,
    ServiceBackend,
    parse_ingress,
    parse_ingress_class,
)

__all__ = ["INGRESS_CLASS_DEFAULT_ANNOTATION", "KINDS", "PARSERS", "SERVICE_NAME_LABEL", "ConfigMap", "Endpoint",
           "EndpointPort", "EndpointSlice", "Gateway", "GatewayClass", "HTTPRoute", "Ingress", "IngressClass",
           "IngressPath", "IngressRule", "IngressTLS", "KubeObject", "LoadBalancerIngress", "Meta", "Namespace",
           "Node", "NodeAddress", "ObjectError", "ReferenceGrant", "Secret", "Service", "ServiceBackend",
           "ServicePort", "_Reader", "_describe", "_meta", "parse_ingress", "parse_object"]

KubeObject = Union[Ingress, IngressClass, Service, EndpointSlice, Secret, ConfigMap, Node,
                   GatewayClass, Gateway, HTTPRoute, ReferenceGrant, Namespace]  # a GRPCRoute is an HTTPRoute

PARSERS: dict[str, Callable[[Mapping[str, Any]], KubeObject]] = {
    "Ingress": parse_ingress,
    "IngressClass": parse_ingress_class,
    "Service": parse_service,
    "EndpointSlice": parse_endpoint_slice,
    "Secret": parse_secret,
    "ConfigMap": parse_config_map,
    "Node": parse_node,
    "Namespace": parse_namespace,
    **GATEWAY_PARSERS,
}
KINDS = tuple(PARSERS)


def parse_object(raw: Any) -> KubeObject:
    """Parse one object of a kind we read; ObjectError for anything else or malformed."""
    if not isinstance(raw, Mapping):
        raise ObjectError(f"expected an object (mapping), got {type(raw).__name__}")
    kind = raw.get("kind")
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ObjectError(f"{_describe(raw)}: kind {kind!r} is not one ingressctl reads")
    return parser(raw)
