"""`--mode ipvs`: the ServiceTable as IPVS virtual services, in `ipvsadm-restore` format.

One virtual service per Service port and address (each cluster IP, each external and
load-balancer IP, and the nodePort on each node address), with the scheduler from the
`ingressctl.io/scheduler` annotation (or `--scheduler`), persistence (`-p timeout`) for
ClientIP affinity, and one masquerading (`-m`) real server per endpoint. The service
addresses are bound to a dummy interface so the node accepts their packets, as kube-proxy
does with kube-ipvs0; `render` lists them first as `# ip ...` comment lines.

Design choice: rendering is pure and golden-tested; applying is one full
`ipvsadm --clear` + `ipvsadm-restore` plus `ip -batch` for the addresses, and `check()`
refuses with one line on a kernel without IPVS (the machines this was built on have none,
so the apply path has never run against a real IPVS).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..core.model import EndpointInfo, ServiceInfo, ServicePortKey, ServiceTable
from ..core.schedulers import SchedulerError, SchedulerSpec, parse_scheduler
from .base import (
    ApplyError,
    BackendUnavailable,
    CommandRunner,
    ProxyOptions,
    Runner,
    SyncResult,
    require_tools,
)

log = logging.getLogger(__name__)

DUMMY_INTERFACE = "ictl-ipvs0"  # kube-proxy: kube-ipvs0 (15 characters at most)
PROTOCOL_FLAGS = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}
PROC_IPVS = "/proc/net/ip_vs"


@dataclass(frozen=True)
class VirtualService:
    protocol: str
    ip: str
    port: int
    scheduler: SchedulerSpec
    persistence: int  # seconds; 0: none
    reals: tuple[EndpointInfo, ...]
    origin: str  # "default/web:http/tcp clusterIP" (for the comment line)

    @property
    def address(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"

    def lines(self) -> list[str]:
        flag = PROTOCOL_FLAGS[self.protocol]
        head = f"-A {flag} {self.address} -s {self.scheduler.name}"
        if self.scheduler.ipvs_flags:
            head += f" -b {self.scheduler.ipvs_flags}"
        if self.persistence:
            head += f" -p {self.persistence}"
        return [f"# {self.origin}", head] + [
            f"-a {flag} {self.address} -r {r.address} -m -w 1" for r in self.reals]


def virtual_services(info: ServiceInfo, node_ips: Sequence[str],
                     default_scheduler: str = "rr") -> list[VirtualService]:
    """Every virtual service one Service port needs; SchedulerError for a bad annotation."""
    spec = parse_scheduler(info.scheduler or default_scheduler)
    persistence = info.affinity_timeout if info.uses_affinity else 0
    out = []
    targets: list[tuple[str, tuple[str, ...], int, tuple[EndpointInfo, ...]]] = [
        ("clusterIP", info.cluster_ips, info.port, info.cluster_endpoints()),
        ("externalIP", info.external_ips, info.port, info.external_endpoints()),
        ("loadBalancer", info.load_balancer_ips, info.port, info.external_endpoints()),
    ]
    if info.node_port:
        targets.append(("nodePort", tuple(node_ips), info.node_port, info.external_endpoints()))
    for kind, ips, port, reals in targets:
        for ip in ips:
            out.append(VirtualService(info.protocol, ip, port, spec, persistence, reals,
                                      f"{info.key} {kind}"))
    return out


def bound_addresses(table: ServiceTable) -> list[str]:
    """Service addresses the dummy interface must hold (cluster, external and LB IPs)."""
    ips = {ip for s in table.services.values()
           for ip in s.cluster_ips + s.external_ips + s.load_balancer_ips}
    return sorted(ips, key=ipaddress.ip_address)


def _local_addresses() -> list[str]:
    from .userspace_backend import local_addresses
    return local_addresses()


class IpvsBackend:
    mode = "ipvs"

    def __init__(self, options: ProxyOptions | None = None, scheduler: str = "rr",
                 runner: Runner | None = None,
                 addresses: Callable[[], list[str]] = _local_addresses) -> None:
        self.options = options or ProxyOptions()
        self.scheduler = scheduler
        self.runner: Runner = runner or CommandRunner()
        self._addresses = addresses

    def node_ips(self, table: ServiceTable) -> list[str]:
        """nodePort addresses: the table's, else local ones inside --nodeport-addresses."""
        if table.node_ips:
            return list(table.node_ips)
        nets = [ipaddress.ip_network(c) for c in self.options.nodeport_addresses]
        local = [a for a in self._addresses() if not ipaddress.ip_address(a).is_loopback or nets]
        return [a for a in local if not nets or any(ipaddress.ip_address(a) in n for n in nets)]

    def render(self, table: ServiceTable) -> str:
        node_ips = self.node_ips(table) if any(s.node_port for s in table.services.values()) else []
        lines = [f"# ingressctl ipvs: service addresses on dummy interface {DUMMY_INTERFACE}",
                 f"# ip link add {DUMMY_INTERFACE} type dummy"]
        lines += [f"# ip addr replace {ip}/{128 if ':' in ip else 32} dev {DUMMY_INTERFACE}"
                  for ip in bound_addresses(table)]
        lines.append("# virtual services (ipvsadm-restore)")
        for key, info in sorted(table.services.items()):
            try:
                services = virtual_services(info, node_ips, self.scheduler)
            except SchedulerError as e:
                lines.append(f"# skipped {key}: {e}")
                continue
            for vs in services:
                lines += vs.lines()
        if any(s.load_balancer_source_ranges for s in table.services.values()):
            lines.append("# note: loadBalancerSourceRanges are not enforced by IPVS rules")
        return "\n".join(lines) + "\n"

    def check(self) -> None:
        if not os.path.exists(PROC_IPVS):
            try:
                self.runner(["modprobe", "ip_vs"])
            except (ApplyError, BackendUnavailable) as e:
                log.debug("modprobe ip_vs: %s", e)
        if not os.path.exists(PROC_IPVS):
            raise BackendUnavailable("IPVS is not available in this kernel (no /proc/net/ip_vs, "
                                     "modprobe ip_vs failed): use --mode iptables, nftables or userspace")
        require_tools(["ipvsadm", "ipvsadm-restore", "ip"], self.mode, self.runner)

    def sync(self, table: ServiceTable, changed: Iterable[ServicePortKey] | None) -> SyncResult:
        text = self.render(table)
        rules = [line for line in text.splitlines() if line and not line.startswith("#")]
        wanted = bound_addresses(table)
        batch = [f"link add {DUMMY_INTERFACE} type dummy"] if not self._has_dummy() else []
        batch += [f"addr del {ip}/{128 if ':' in ip else 32} dev {DUMMY_INTERFACE}"
                  for ip in self._bound_now() if ip not in wanted]
        batch += [f"addr replace {ip}/{128 if ':' in ip else 32} dev {DUMMY_INTERFACE}" for ip in wanted]
        self.runner(["ip", "-batch", "-"], "\n".join(batch) + "\n")
        self.runner(["ipvsadm", "--clear"])
        self.runner(["ipvsadm-restore"], "\n".join(rules) + "\n")
        return SyncResult(full=True, rules_written=len(rules), services_changed=len(table.services))

    def _bound_now(self) -> list[str]:
        if not self._has_dummy():
            return []
        out = self.runner(["ip", "-j", "addr", "show", "dev", DUMMY_INTERFACE])
        return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])]

    def _has_dummy(self) -> bool:
        return os.path.exists(f"/sys/class/net/{DUMMY_INTERFACE}")

    def cleanup(self) -> None:
        self.runner(["ipvsadm", "--clear"])
        if self._has_dummy():
            self.runner(["ip", "link", "del", DUMMY_INTERFACE])
