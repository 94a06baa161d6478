"""The ServiceTable: what the Service proxy must make reachable on this node.

`proxy.core.build` turns a store Snapshot into a ServiceTable; every backend (iptables,
nftables, userspace, ipvs) turns the same table into its own rules or sockets. The table
is keyed by ServicePortKey (namespace/name, port name, protocol), one entry per Service
port, the unit kube-proxy programs.

Design choice: an entry carries *all* endpoints with their conditions, and the choice of
which to use (ready first, serving-terminating only when nothing is ready; local ones for
the Local traffic policies) is made here, once, by `cluster_endpoints` and
`local_endpoints`, so no backend can get those rules subtly different from another.
Everything is frozen and ordered, so two builds of the same objects compare equal and a
change tracker can diff entries with `==`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SESSION_AFFINITY_CLIENT_IP = "ClientIP"
POLICY_LOCAL = "Local"
POLICY_CLUSTER = "Cluster"
DEFAULT_AFFINITY_TIMEOUT = 10800
DEFAULT_SCHEDULER = "rr"
SCHEDULER_ANNOTATION = "ingressctl.io/scheduler"


@dataclass(frozen=True, order=True)
class ServicePortKey:
    """One Service port: the unit every backend programs."""

    namespace: str
    name: str
    port_name: str  # "" for an unnamed single port
    protocol: str  # TCP | UDP | SCTP

    @property
    def service(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        port = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.name}{port}/{self.protocol.lower()}"


@dataclass(frozen=True, order=True)
class EndpointInfo:
    """One endpoint address + target port of a Service port, with its conditions."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    is_local: bool = False
    node_name: str = ""
    zone: str = ""

    @property
    def address(self) -> str:
        """"ip:port" ("[ip]:port" for IPv6)."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def _usable(endpoints: tuple[EndpointInfo, ...]) -> tuple[EndpointInfo, ...]:
    """Ready endpoints; if none, the serving-but-terminating ones (as kube-proxy does)."""
    ready = tuple(e for e in endpoints if e.ready)
    if ready:
        return ready
    return tuple(e for e in endpoints if e.serving and e.terminating)


@dataclass(frozen=True)
class ServiceInfo:
    """Everything a backend needs about one Service port."""

    key: ServicePortKey
    type: str  # ClusterIP | NodePort | LoadBalancer
    cluster_ips: tuple[str, ...]
    port: int
    protocol: str
    node_port: int = 0  # 0: none on this Service port
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()  # from status.loadBalancer.ingress[].ip
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity: str = "None"  # None | ClientIP
    affinity_timeout: int = DEFAULT_AFFINITY_TIMEOUT  # seconds; used only with ClientIP
    external_traffic_policy: str = POLICY_CLUSTER  # Cluster | Local
    internal_traffic_policy: str = POLICY_CLUSTER  # Cluster | Local
    scheduler: str = ""  # the ingressctl.io/scheduler annotation, unchecked; "": the proxy's --scheduler
    endpoints: tuple[EndpointInfo, ...] = ()  # every endpoint, sorted, with conditions

    @property
    def uses_affinity(self) -> bool:
        return self.session_affinity == SESSION_AFFINITY_CLIENT_IP

    @property
    def external_local(self) -> bool:
        """externalTrafficPolicy Local applies (only to Services reachable from outside)."""
        return self.external_traffic_policy == POLICY_LOCAL and self.has_external

    @property
    def internal_local(self) -> bool:
        return self.internal_traffic_policy == POLICY_LOCAL

    @property
    def has_external(self) -> bool:
        """Reachable from outside the cluster: nodePort, externalIPs or load-balancer IPs."""
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    def cluster_endpoints(self) -> tuple[EndpointInfo, ...]:
        """Endpoints for traffic to the cluster IP (honours internalTrafficPolicy)."""
        if self.internal_local:
            return self.local_endpoints()
        return _usable(self.endpoints)

    def local_endpoints(self) -> tuple[EndpointInfo, ...]:
        """Usable endpoints on this node (for the Local traffic policies)."""
        return _usable(tuple(e for e in self.endpoints if e.is_local))

    def external_endpoints(self) -> tuple[EndpointInfo, ...]:
        """Endpoints for traffic to nodePort / external / LB IPs from outside the node."""
        if self.external_local:
            return self.local_endpoints()
        return _usable(self.endpoints)

    def all_usable_endpoints(self) -> tuple[EndpointInfo, ...]:
        """Every endpoint any traffic may reach (per-endpoint chains are made for these)."""
        external = self.external_endpoints() if self.has_external else ()
        return tuple(sorted(set(self.cluster_endpoints() + external)))

    @property
    def has_endpoints(self) -> bool:
        """Some endpoint can serve, on any node: without one, traffic is rejected."""
        return bool(_usable(self.endpoints))


@dataclass(frozen=True)
class ServiceTable:
    """All Service ports this node's proxy programs, plus the node facts they need."""

    services: Mapping[ServicePortKey, ServiceInfo] = field(default_factory=dict)
    node_name: str = ""
    node_ips: tuple[str, ...] = ()  # addresses nodePorts answer on (empty: every local one)
    skipped: tuple[str, ...] = ()  # "ns/name: reason" for Services deliberately left out

    def get(self, key: ServicePortKey) -> ServiceInfo | None:
        return self.services.get(key)

    def by_service(self, namespace: str, name: str) -> tuple[ServiceInfo, ...]:
        return tuple(s for k, s in sorted(self.services.items()) if k.namespace == namespace
                     and k.name == name)
