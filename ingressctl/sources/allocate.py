"""clusterIP and nodePort assignment for the manifest-directory source.

The API server gives every Service a clusterIP from the service CIDR (unless headless or
ExternalName) and every NodePort/LoadBalancer port a nodePort from 30000-32767; manifests
written by hand usually leave both out. `AddressAllocator.assign` fills them in the same
way, refuses what the API server would refuse (an address outside the range, a duplicate),
and keeps each Service's assignment stable across reloads for as long as it exists.

Design choice: first free address/port in order, not random: a given directory always
yields the same addresses, which makes `ingressctl render` reproducible.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable

from ..objects import Service

DEFAULT_SERVICE_CIDR = "127.96.0.0/16"  # loopback: bindable without privileges in local mode
DEFAULT_NODE_PORT_RANGE = (30000, 32767)


class AddressAllocator:
    def __init__(self, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE) -> None:
        self.network = ipaddress.ip_network(service_cidr)
        self.node_ports = node_port_range
        self._ips: dict[str, str] = {}  # service key -> clusterIP assigned before
        self._ports: dict[tuple[str, str, int, str], int] = {}
        self._memo: dict[str, tuple[Service, Service]] = {}  # key -> (parsed Service, its filled copy)
        self._used: tuple[dict[str, str], dict[int, str]] | None = None  # the last assign's addresses and ports

    def assign(self, services: Iterable[Service]) -> tuple[list[Service], list[str]]:
        services = sorted(services, key=lambda s: s.meta.age_key)
        problems: list[str] = []
        used_ips: dict[str, str] = {}
        used_ports: dict[int, str] = {}
        kept: list[Service] = []
        for s in services:  # explicit values first: they are claims, not requests
            err = self._claim_explicit(s, used_ips, used_ports)
            if err:
                problems.append(f"Service {s.meta.key}: {err}; skipped")
            else:
                kept.append(s)
        for s in kept:  # then what each was given before: an address never moves to another Service
            self._reserve(s, used_ips, used_ports)
        self._ip_cursor, self._port_cursor = 2, self.node_ports[0]
        out = [self._fill(s, used_ips, used_ports) for s in kept]
        live = {s.meta.key for s in out}
        self._ips = {k: ip for k, ip in self._ips.items() if k in live}
        self._ports = {k: p for k, p in self._ports.items() if k[0] in live}
        self._memo = {k: m for k, m in self._memo.items() if k in live}
        self._used = (used_ips, used_ports)
        return out, problems

    def assign_more(self, services: Iterable[Service]) -> list[Service] | None:
        """What `assign` of every Service would give `services` (those of changed manifest
        files), the others staying as the last `assign` left them; None when only a full
        `assign` can tell: a Service whose spec changed, or a new one claiming an address
        or port of its own. A new Service takes the first free address, as `assign` gives it."""
        if self._used is None:
            return None
        used_ips, used_ports = dict(self._used[0]), dict(self._used[1])
        out: dict[str, Service] = {}
        fresh: list[Service] = []
        for s in services:
            memo = self._memo.get(s.meta.key)
            if memo is not None:
                if memo[0] is not s and memo[0] != s:
                    return None
                out[s.meta.key] = memo[1]
            elif (s.cluster_ip and s.cluster_ip != "None") or any(p.node_port for p in s.ports):
                return None
            else:
                fresh.append(s)
        self._ip_cursor, self._port_cursor = 2, self.node_ports[0]
        for s in sorted(fresh, key=lambda s: s.meta.age_key):
            out[s.meta.key] = self._filled(s, used_ips, used_ports)
        for s in services:
            self._memo[s.meta.key] = (s, out[s.meta.key])
        self._used = (used_ips, used_ports)
        return [out[s.meta.key] for s in services]

    def _reserve(self, s: Service, used_ips: dict[str, str], used_ports: dict[int, str]) -> None:
        key = s.meta.key
        if not s.cluster_ip and s.type != "ExternalName" and (ip := self._ips.get(key)):
            used_ips.setdefault(ip, key)
        if s.type in ("NodePort", "LoadBalancer"):
            for p in s.ports:
                if not p.node_port and (port := self._ports.get((key, p.name, p.port, p.protocol))):
                    used_ports.setdefault(port, key)

    def _claim_explicit(self, s: Service, used_ips: dict[str, str], used_ports: dict[int, str]) -> str:
        ip = s.cluster_ip
        if ip and ip != "None" and s.type != "ExternalName":
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return f"clusterIP {ip!r} is not an IP address"
            if addr not in self.network:
                return f"clusterIP {ip} is not in the service CIDR {self.network}"
            if ip in used_ips:
                return f"clusterIP {ip} is already allocated to Service {used_ips[ip]}"
            used_ips[ip] = s.meta.key
        lo, hi = self.node_ports
        for p in s.ports:
            if not p.node_port:
                continue
            if not lo <= p.node_port <= hi:
                return f"nodePort {p.node_port} is not in {lo}-{hi}"
            if p.node_port in used_ports:
                return f"nodePort {p.node_port} is already allocated to Service {used_ports[p.node_port]}"
            used_ports[p.node_port] = s.meta.key
        return ""

    def _fill(self, s: Service, used_ips: dict[str, str], used_ports: dict[int, str]) -> Service:
        """`s` with its clusterIP and nodePorts; the same object as last time when the parsed
        Service is (an unchanged file) and what it was given is still free: what _next_ip and
        _next_port would give it again, without the copies."""
        memo = self._memo.get(s.meta.key)
        if memo is not None and memo[0] is s and self._still_free(s, memo[1], used_ips, used_ports):
            return memo[1]
        out = self._filled(s, used_ips, used_ports)
        self._memo[s.meta.key] = (s, out)
        return out

    @staticmethod
    def _still_free(s: Service, out: Service, used_ips: dict[str, str], used_ports: dict[int, str]) -> bool:
        ip = out.cluster_ip if not s.cluster_ip and s.type != "ExternalName" else ""
        ports = [q.node_port for p, q in zip(s.ports, out.ports, strict=True) if q.node_port and not p.node_port]
        key = s.meta.key
        if (ip and used_ips.get(ip, key) != key) or any(used_ports.get(p, key) != key for p in ports):
            return False
        if ip:
            used_ips[ip] = s.meta.key
        for p in ports:
            used_ports[p] = s.meta.key
        return True

    def _filled(self, s: Service, used_ips: dict[str, str], used_ports: dict[int, str]) -> Service:
        changes: dict[str, object] = {}
        if not s.cluster_ip and s.type != "ExternalName":
            ip = self._next_ip(s.meta.key, used_ips)
            changes.update(cluster_ip=ip, cluster_ips=(ip,))
        if s.type in ("NodePort", "LoadBalancer") and any(not p.node_port for p in s.ports):
            ports = []
            for p in s.ports:
                if not p.node_port:
                    p = dataclasses.replace(p, node_port=self._next_port(s.meta.key, p.name, p.port, p.protocol,
                                                                         used_ports))
                ports.append(p)
            changes["ports"] = tuple(ports)
        return dataclasses.replace(s, **changes) if changes else s  # type: ignore[arg-type]

    def _next_ip(self, key: str, used: dict[str, str]) -> str:
        prior = self._ips.get(key)
        if prior and used.get(prior, key) == key:
            used[prior] = key
            return prior
        base, size = int(self.network.network_address), self.network.num_addresses
        while self._ip_cursor < size - 1:  # skip the network address, .1 and the broadcast
            ip = str(ipaddress.ip_address(base + self._ip_cursor))
            self._ip_cursor += 1
            if ip not in used:
                used[ip] = key
                self._ips[key] = ip
                return ip
        raise RuntimeError(f"service CIDR {self.network} is full")

    def _next_port(self, key: str, name: str, port: int, proto: str, used: dict[int, str]) -> int:
        pkey = (key, name, port, proto)
        prior = self._ports.get(pkey)
        if prior and used.get(prior, key) == key:
            used[prior] = key
            return prior
        lo, hi = self.node_ports
        for candidate in range(self._port_cursor, hi + 1):
            self._port_cursor = candidate + 1
            if candidate not in used:
                used[candidate] = key
                self._ports[pkey] = candidate
                return candidate
        raise RuntimeError(f"node port range {lo}-{hi} is full")
