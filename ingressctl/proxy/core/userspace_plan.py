"""What the userspace proxy listens on, as data: `plan_listeners(table)` gives one
`ListenerPlan` per (protocol, address, port): which balancer it feeds, with which
scheduler, affinity, backends and source ranges, plus the problems (a bad scheduler, two
Services on one address). Pure: `backends/userspace.py` opens and closes the sockets."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .model import ServiceInfo, ServicePortKey, ServiceTable
from .relay import Backend
from .schedulers import SchedulerSpec, parse_scheduler


@dataclass(frozen=True)
class ListenerKey:
    protocol: str  # TCP | UDP
    ip: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.protocol.lower()} {host}:{self.port}"


BalancerKey = tuple[ServicePortKey, str]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network  # (service port, "cluster" | "external")


@dataclass(frozen=True)
class ListenerPlan:
    """What one listener does: which Balancer it feeds, with which settings."""

    balancer: BalancerKey
    scheduler: SchedulerSpec
    affinity_timeout: int
    backends: tuple[Backend, ...]
    source_ranges: tuple[IPNetwork, ...] = ()  # loadBalancerSourceRanges on LB IPs; (): anyone

    def admits(self, client_ip: str) -> bool:
        if not self.source_ranges:
            return True
        try:
            addr = ipaddress.ip_address(client_ip.split("%")[0])
        except ValueError:
            return False
        return any(addr in net for net in self.source_ranges)


def plan_listeners(table: ServiceTable, nodeport_ips: tuple[str, ...],
                   default_scheduler: str = "rr") -> tuple[dict[ListenerKey, ListenerPlan], list[str]]:
    """ServiceTable -> listeners to open, plus problems (bad scheduler, address clash)."""
    plans: dict[ListenerKey, ListenerPlan] = {}
    problems: list[str] = []
    for key, info in sorted(table.services.items()):
        if info.protocol not in ("TCP", "UDP"):
            problems.append(f"{key}: {info.protocol} is not supported in userspace mode")
            continue
        try:
            spec = parse_scheduler(info.scheduler or default_scheduler)
        except ValueError as e:
            problems.append(f"{key}: {e}")
            continue
        ranges = _networks(info.load_balancer_source_ranges, f"{key}: ", problems)
        for scope, ips, port, filtered in _addresses(info, nodeport_ips):
            eps = info.cluster_endpoints() if scope == "cluster" else info.external_endpoints()
            plan = ListenerPlan((key, scope), spec,
                                info.affinity_timeout if info.uses_affinity else 0,
                                tuple(Backend(e.ip, e.port) for e in eps), ranges if filtered else ())
            for ip in ips:
                lk = ListenerKey(info.protocol, ip, port)
                if lk in plans and plans[lk].balancer[0] != key:
                    problems.append(f"{key}: {lk} is already used by {plans[lk].balancer[0]}")
                    continue
                plans.setdefault(lk, plan)
    return plans, problems


def _addresses(info: ServiceInfo, nodeport_ips: tuple[str, ...]) -> list[tuple[str, tuple[str, ...], int, bool]]:
    """(scope, addresses, port, source ranges apply) for each kind of address."""
    out = [("cluster", info.cluster_ips, info.port, False)]
    if info.external_ips:
        out.append(("external", info.external_ips, info.port, False))
    lb_only = tuple(ip for ip in info.load_balancer_ips if ip not in info.external_ips)
    if lb_only:
        out.append(("external", lb_only, info.port, True))
    if info.node_port:
        out.append(("external", nodeport_ips or ("0.0.0.0",), info.node_port, False))
    return out


def _networks(cidrs: tuple[str, ...], where: str, problems: list[str]) -> tuple[IPNetwork, ...]:
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c.strip(), strict=False))
        except ValueError:
            problems.append(f"{where}ignoring loadBalancerSourceRange {c!r}: not a CIDR")
    return tuple(out)
