"""LoadBalancer IP address management: pools in, one address per LoadBalancer Service out.

Pools come from a YAML file or a ConfigMap (`--lb-pools`):

    pools:
    - name: public
      addresses: [192.0.2.10-192.0.2.20, 198.51.100.0/28]
      priority: 10          # higher is tried first; equal priorities keep file order
      namespaces: [web]     # only Services in these namespaces (default: all)
      autoAssign: true      # false: only for Services that name the pool
      avoidBuggyIPs: true   # skip addresses ending in .0 and .255 (default true)

A Service takes part when it is `type: LoadBalancer` and opts in: its
`spec.loadBalancerClass` is ours (`ingressctl.io/lb`), or it has none and names a pool (the
annotations below). Services without a class take part only when the allocator is told to
claim them (`claim_unclassed`, `--lb-claim-unclassed`): in a cloud cluster they belong to the
cloud's load-balancer controller, whose status we must not rewrite. Another class belongs to
another implementation and is always left alone. It gets, in this order: the address it already has in its status (if still
valid, so allocations survive restarts), its `spec.loadBalancerIP`, or the first free
address of the pool it names (`ingressctl.io/lb-pool` or OpenELB's
`eip.openelb.kubesphere.io/v1alpha2` annotation) or of the auto-assign pools in pool order.

Design choice: `allocate` is pure and recomputes the whole assignment from the Services
(oldest first) every time; releasing an address is simply not assigning it again, so a
deleted Service or one that stops being a LoadBalancer frees its address with no state.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ...objects import Service

LB_CLASS = "ingressctl.io/lb"
POOL_ANNOTATIONS = ("ingressctl.io/lb-pool", "eip.openelb.kubesphere.io/v1alpha2")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PoolError(ValueError):
    """A pool definition that cannot be used; the message names the pool and the field."""


@dataclass(frozen=True)
class Pool:
    name: str
    ranges: tuple[tuple[IPAddress, IPAddress], ...]  # inclusive
    priority: int = 0
    namespaces: tuple[str, ...] = ()
    auto_assign: bool = True
    avoid_buggy_ips: bool = True

    def __contains__(self, ip: object) -> bool:
        try:
            addr = ipaddress.ip_address(str(ip))
        except ValueError:
            return False
        return any(lo.version == addr.version and int(lo) <= int(addr) <= int(hi) for lo, hi in self.ranges) \
            and not (self.avoid_buggy_ips and _buggy(addr))

    def allows(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    def addresses(self) -> Iterator[IPAddress]:
        for lo, hi in self.ranges:
            for n in range(int(lo), int(hi) + 1):
                addr = ipaddress.ip_address(n) if lo.version == 4 else ipaddress.IPv6Address(n)
                if not (self.avoid_buggy_ips and _buggy(addr)):
                    yield addr


def _buggy(addr: IPAddress) -> bool:
    return addr.version == 4 and int(addr) & 0xFF in (0, 255)


def _range(text: str, where: str) -> tuple[IPAddress, IPAddress]:
    try:
        if "-" in text:
            a, b = (ipaddress.ip_address(x.strip()) for x in text.split("-", 1))
        else:
            net = ipaddress.ip_network(text.strip(), strict=False)
            a, b = net[0], net[-1]
    except ValueError:
        raise PoolError(f"{where}: {text!r} is not an address range (a-b) or a CIDR") from None
    if a.version != b.version or int(a) > int(b):
        raise PoolError(f"{where}: {text!r} is not an ascending range of one IP family")
    return a, b


def _pool(raw: Any, i: int) -> Pool:
    if not isinstance(raw, Mapping):
        raise PoolError(f"pools[{i}]: expected a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise PoolError(f"pools[{i}].name: is required")
    where = f"pool {name}"
    addresses = raw.get("addresses")
    if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
        raise PoolError(f"{where}: addresses must be a non-empty list of ranges or CIDRs")
    priority, auto, avoid = raw.get("priority", 0), raw.get("autoAssign", True), raw.get("avoidBuggyIPs", True)
    namespaces = raw.get("namespaces", [])
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise PoolError(f"{where}: priority must be an integer")
    if not isinstance(auto, bool) or not isinstance(avoid, bool):
        raise PoolError(f"{where}: autoAssign and avoidBuggyIPs must be true or false")
    if not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces):
        raise PoolError(f"{where}: namespaces must be a list of names")
    unknown = sorted(set(raw) - {"name", "addresses", "priority", "namespaces", "autoAssign", "avoidBuggyIPs"})
    if unknown:
        raise PoolError(f"{where}: unknown field {unknown[0]!r}")
    return Pool(name, tuple(_range(a, where) for a in addresses), priority, tuple(namespaces), auto, avoid)


def parse_pools(text: str, source: str = "pools") -> list[Pool]:
    """YAML (`pools: [...]` or a bare list) -> pools in the order they are tried."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PoolError(f"{source}: not YAML: {str(e).splitlines()[0]}") from None
    items = doc.get("pools") if isinstance(doc, Mapping) else doc
    if not isinstance(items, list):
        raise PoolError(f"{source}: expected `pools:` with a list of pools")
    try:
        pools = [_pool(raw, i) for i, raw in enumerate(items)]
    except PoolError as e:
        raise PoolError(f"{source}: {e}") from None
    names = [p.name for p in pools]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise PoolError(f"{source}: pool {dup} is defined twice")
    order = sorted(range(len(pools)), key=lambda i: (-pools[i].priority, i))
    return [pools[i] for i in order]


@dataclass(frozen=True)
class Assignment:
    service: str  # namespace/name
    ip: str
    pool: str


@dataclass(frozen=True)
class Allocation:
    assignments: Mapping[str, Assignment] = field(default_factory=dict)
    problems: tuple[tuple[str, str], ...] = ()  # (namespace/name, reason)

    def ip_of(self, key: str) -> str:
        a = self.assignments.get(key)
        return a.ip if a else ""


def takes_part(svc: Service, claim_unclassed: bool = False) -> bool:
    if svc.type != "LoadBalancer":
        return False
    if svc.load_balancer_class:
        return svc.load_balancer_class == LB_CLASS
    return claim_unclassed or bool(requested_pool(svc))


def requested_pool(svc: Service) -> str:
    for name in POOL_ANNOTATIONS:
        value = svc.meta.annotations.get(name, "").strip()
        if value:
            return value
    return ""


def allocate(pools: Sequence[Pool], services: Iterable[Service], claim_unclassed: bool = False) -> Allocation:
    """The address of every taking-part Service (oldest first), and why others got none."""
    eligible = sorted((s for s in services if takes_part(s, claim_unclassed)), key=lambda s: s.meta.age_key)
    used: dict[IPAddress, str] = {}
    out: dict[str, Assignment] = {}
    problems: list[tuple[str, str]] = []
    candidates: dict[str, list[Pool]] = {}
    for svc in eligible:
        allowed, err = _candidate_pools(pools, svc)
        if err:
            problems.append((svc.meta.key, err))
        candidates[svc.meta.key] = allowed
    for svc in eligible:  # 1. addresses already published: claims, oldest first
        for lb in svc.status_ingress:
            pool = _pool_of(candidates[svc.meta.key], lb.ip)
            if pool and (not svc.load_balancer_ip or svc.load_balancer_ip == lb.ip):
                addr = ipaddress.ip_address(lb.ip)
                if addr not in used:
                    used[addr] = svc.meta.key
                    out[svc.meta.key] = Assignment(svc.meta.key, str(addr), pool.name)
                    break
    for svc in eligible:  # 2. new requests
        key = svc.meta.key
        if key in out or not candidates[key]:
            continue
        a, err = _assign(svc, candidates[key], used)
        if a:
            out[key] = a
        else:
            problems.append((key, err))
    return Allocation(out, tuple(problems))


def _candidate_pools(pools: Sequence[Pool], svc: Service) -> tuple[list[Pool], str]:
    ns, wanted = svc.meta.namespace, requested_pool(svc)
    if wanted:
        match = [p for p in pools if p.name == wanted]
        if not match:
            return [], f"LoadBalancer pool {wanted!r} does not exist"
        if not match[0].allows(ns):
            return [], f"LoadBalancer pool {wanted!r} is not open to namespace {ns}"
        return match, ""
    allowed = [p for p in pools if p.allows(ns) and (p.auto_assign or svc.load_balancer_ip)]
    if not allowed:
        return [], f"no LoadBalancer pool assigns addresses to namespace {ns}"
    return allowed, ""


def _pool_of(pools: Sequence[Pool], ip: str) -> Pool | None:
    return next((p for p in pools if ip and ip in p), None)


def _assign(svc: Service, pools: Sequence[Pool], used: dict[IPAddress, str]) -> tuple[Assignment | None, str]:
    key = svc.meta.key
    if svc.load_balancer_ip:
        pool = _pool_of(pools, svc.load_balancer_ip)
        if pool is None:
            return None, f"spec.loadBalancerIP {svc.load_balancer_ip} is not in a pool this Service may use"
        addr = ipaddress.ip_address(svc.load_balancer_ip)
        if addr in used:
            return None, f"spec.loadBalancerIP {addr} is already used by Service {used[addr]}"
        used[addr] = key
        return Assignment(key, str(addr), pool.name), ""
    for pool in pools:
        for addr in pool.addresses():
            if addr not in used:
                used[addr] = key
                return Assignment(key, str(addr), pool.name), ""
    names = ", ".join(p.name for p in pools)
    return None, f"LoadBalancer pool {names} exhausted: no free address"
