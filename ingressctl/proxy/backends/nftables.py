"""nftables backend: one table of our own, static chains, dynamic maps, one transaction per sync.

Table `ip <name>` holds base chains at nat prerouting/output/postrouting and at filter
input/forward/output (after DNAT), and maps: `service-ips` (address . protocol . port ->
verdict), `service-nodeports` (protocol . port, consulted only for local destinations),
the `no-endpoint-*` maps the filter hooks use to reject (no endpoints) or drop (Local
policy, no local endpoint), a `hairpin` set and a `masquerade-cluster-ips` set (traffic to
a cluster IP from outside `--cluster-cidr` is marked by one rule over it).

A plain Service port (no ClientIP affinity, Cluster traffic policies, no source ranges,
1-16 endpoints) owns no chain at all, only map elements: `service-ips` sends it to the
shared chain `dnat-N` (N = its endpoint count), which DNATs with
`ip daddr . meta l4proto . th dport . numgen random mod N map @endpoints-N`; `ext-dnat-N`
and `nodeport-dnat-N` masquerade first. Any other Service port gets chains of its own:
`svc-` (inline `numgen random mod (n-i) == 0` DNAT rules; with affinity, a timed set per
endpoint and a `numgen random mod N vmap` over `ep-` chains), `ext-` (external traffic
policy), `svl-` (local endpoints), `fw-` (loadBalancerSourceRanges).

Why maps and not a chain and a vmap per Service: the kernel names each anonymous vmap by
scanning every set of the table (quadratic: 3,000 Services took 4.5 s with vmaps), and
every transaction first reads all chains of the table into nft's cache; with maps a full
sync of 10,000 Services is ~1 s and one change ~40 ms.

Transactions go through libnftables in this process when it is installed (see libnft.py),
else through `nft -f -`.

Design choice: names carry a hash plus the readable Service port, and an affinity set's
name carries its timeout, so a change never alters an object other rules still reference:
it writes new chains, moves map elements and deletes what is unused, in one transaction.
"""

from __future__ import annotations

from ..core.model import EndpointInfo, ServiceInfo
from ..core.rules import ChainId, Delta, Fragment, ipv4_only, stable_hash
from . import libnft
from .base import ApplyError, BackendUnavailable, CommandRunner, FragmentBackend, require_tools
from .libnft import LibNftables

MAPS = {
    "service-ips": "ipv4_addr . inet_proto . inet_service : verdict",
    "service-nodeports": "inet_proto . inet_service : verdict",
    "no-endpoint-services": "ipv4_addr . inet_proto . inet_service : verdict",
    "no-endpoint-nodeports": "inet_proto . inet_service : verdict",
    "hairpin": "ipv4_addr . ipv4_addr",  # endpoint . endpoint: a pod reaching itself via a Service
    "masquerade-cluster-ips": "ipv4_addr . inet_proto . inet_service",
}
BASE_CHAINS = {
    "nat-prerouting": "type nat hook prerouting priority dstnat ;",
    "nat-output": "type nat hook output priority -100 ;",
    "nat-postrouting": "type nat hook postrouting priority srcnat ;",
    "filter-input": "type filter hook input priority -1 ;",
    "filter-forward": "type filter hook forward priority -1 ;",
    "filter-output": "type filter hook output priority -1 ;",
}
ELEMENT_BATCH = 2000
SPREAD_MAPS = 16  # a Service with 1..16 endpoints and no per-Service policy needs no chain


class NftablesBackend(FragmentBackend):
    mode = "nftables"
    _lib: LibNftables | None = None

    @property
    def table(self) -> str:
        return f"ip {self.options.nft_table}"

    # -- static structure ----------------------------------------------------------------
    def _local_dst(self) -> str:
        if self.options.nodeport_addresses:
            return f"ip daddr {{ {', '.join(self.options.nodeport_addresses)} }}"
        return "ip daddr != 127.0.0.0/8 fib daddr type local"

    def _masquerade_rules(self) -> list[str]:
        """Traffic to a cluster IP from outside the cluster CIDR (or all, with
        --masquerade-all) is masqueraded: one rule over a set, not one per Service."""
        match = "ip daddr . meta l4proto . th dport @masquerade-cluster-ips jump mark-for-masquerade"
        if self.options.masquerade_all:
            return [match]
        if self.options.cluster_cidr:
            return [f"ip saddr != {self.options.cluster_cidr} {match}"]
        return []

    @staticmethod
    def static_maps() -> dict[str, str]:
        """name -> declaration of every set and map the first sync creates. Later syncs only
        flush them and leave the dnat-N chains alone: nft 1.0.6 cannot read back a map whose
        typeof data reads `th dport` ("conflicting protocols"), so a later transaction may
        neither re-declare it nor add a rule naming it (`tcp dport` would limit it to TCP).
        A failed sync makes the next one recreate the whole table."""
        maps = {k: f"type {v}" for k, v in MAPS.items()}
        for n in range(1, SPREAD_MAPS + 1):
            maps[f"endpoints-{n}"] = (f"typeof ip daddr . meta l4proto . th dport . numgen random mod {n}"
                                      " : ip daddr . th dport")
            maps[f"nodeport-endpoints-{n}"] = (f"typeof meta l4proto . th dport . numgen random mod {n}"
                                               " : ip daddr . th dport")
        return maps

    @staticmethod
    def spread_chains() -> dict[str, list[str]]:
        """Shared DNAT chains: pick endpoint i of n from a map keyed by destination . i."""
        chains = {}
        for n in range(1, SPREAD_MAPS + 1):
            chains[f"dnat-{n}"] = [f"dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {n} "
                                   f"map @endpoints-{n}"]
            chains[f"ext-dnat-{n}"] = ["jump mark-for-masquerade", f"goto dnat-{n}"]
            chains[f"nodeport-dnat-{n}"] = ["jump mark-for-masquerade",
                                            f"dnat ip to meta l4proto . th dport . numgen random mod {n} "
                                            f"map @nodeport-endpoints-{n}"]
        return chains

    def static_chains(self) -> dict[str, list[str]]:
        mark = f"{self.options.masquerade_mark:#x}"
        check = ["ct state new jump endpoints-check"]
        return self.spread_chains() | {
            "nat-prerouting": ["jump services"],
            "nat-output": ["jump services"],
            "nat-postrouting": ["jump masquerading"],
            "filter-input": check,
            "filter-forward": check,
            "filter-output": check,
            "services": self._masquerade_rules() + [
                "ip daddr . meta l4proto . th dport vmap @service-ips",
                f"{self._local_dst()} meta l4proto . th dport vmap @service-nodeports"],
            "endpoints-check": ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
                                f"{self._local_dst()} meta l4proto . th dport vmap @no-endpoint-nodeports"],
            "mark-for-masquerade": [f"meta mark set meta mark | {mark}"],
            "masquerading": ["ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random",
                             f"meta mark & {mark} == 0 return",
                             f"meta mark set meta mark ^ {mark}",
                             "masquerade fully-random"],
            "reject-chain": ["reject"],
        }

    # -- per Service ---------------------------------------------------------------------
    def _base(self, s: ServiceInfo) -> str:
        k = s.key
        return f"{stable_hash(str(k), 8)}-{k.namespace}/{k.name}/{k.protocol.lower()}/{k.port_name or s.port}"

    def _ep(self, s: ServiceInfo, e: EndpointInfo) -> str:
        return f"ep-{self._base(s)}__{e.ip}/{e.port}"

    def _aff(self, s: ServiceInfo, e: EndpointInfo) -> str:
        return f"aff-{self._base(s)}__{e.ip}/{e.port}/{s.affinity_timeout}s"

    def fragment(self, s: ServiceInfo) -> Fragment:
        cluster = _v4(s.cluster_endpoints())
        if (not s.uses_affinity and not s.external_local and not s.internal_local
                and not s.load_balancer_source_ranges and 1 <= len(cluster) <= SPREAD_MAPS):
            return self._map_fragment(s, cluster)
        return self._chain_fragment(s)

    def _map_fragment(self, s: ServiceInfo, eps: list[EndpointInfo]) -> Fragment:
        """Map elements only: the shared dnat-N chains do the rest."""
        n, proto = len(eps), s.protocol.lower()
        cluster = [f"{ip} . {proto} . {s.port}" for ip in ipv4_only(s.cluster_ips)]
        external = [f"{ip} . {proto} . {s.port}" for ip in ipv4_only(s.external_ips + s.load_balancer_ips)]
        targets = [f"{e.ip} . {e.port}" for e in eps]
        entries = {
            ("", "service-ips"): {f"{k} : goto dnat-{n}" for k in cluster}
            | {f"{k} : goto ext-dnat-{n}" for k in external},
            ("", f"endpoints-{n}"): {f"{k} . {i} : {t}" for k in cluster + external for i, t in enumerate(targets)},
            ("", "hairpin"): {f"{e.ip} . {e.ip}" for e in eps},
        }
        if s.node_port:
            entries[("", "service-nodeports")] = {f"{proto} . {s.node_port} : goto nodeport-dnat-{n}"}
            entries[("", f"nodeport-endpoints-{n}")] = {f"{proto} . {s.node_port} . {i} : {t}"
                                                        for i, t in enumerate(targets)}
        if self.options.masquerade_all or self.options.cluster_cidr:
            entries[("", "masquerade-cluster-ips")] = set(cluster)
        return Fragment(entries={k: frozenset(v) for k, v in entries.items() if v})

    def _chain_fragment(self, s: ServiceInfo) -> Fragment:
        """Chains of its own: ClientIP affinity, Local policies, source ranges, > 16 endpoints."""
        base = self._base(s)
        names = {k: f"{k}-{base}" for k in ("svc", "ext", "fw", "svl")}
        externals = [(ip, names["ext"]) for ip in ipv4_only(s.external_ips)]
        externals += [(ip, names["fw" if s.load_balancer_source_ranges else "ext"])
                      for ip in ipv4_only(s.load_balancer_ips)]
        cluster_eps, local_eps, usable = (_v4(s.cluster_endpoints()), _v4(s.local_endpoints()),
                                          _v4(s.all_usable_endpoints()))
        svc, ext, fw, svl = names["svc"], names["ext"], names["fw"], names["svl"]
        chains: dict[ChainId, tuple[str, ...]] = {}
        objects: dict[str, str] = {}
        external = s.has_endpoints and bool(externals or s.node_port)
        if cluster_eps or external:
            chains[("", svc)] = self._spread(s, cluster_eps)
        if external:
            chains[("", ext)] = self._ext_rules(s, svc, svl, local_eps)
            if s.external_local and local_eps:
                chains[("", svl)] = self._spread(s, local_eps)
            if any(t == fw for _, t in externals):
                ranges = ", ".join(s.load_balancer_source_ranges)
                chains[("", fw)] = (f"ip saddr {{ {ranges} }} goto {ext}", "drop")
        for e in usable if s.uses_affinity else ():
            chains[("", self._ep(s, e))] = self._ep_rules(s, e)
            objects[self._aff(s, e)] = ("{ type ipv4_addr ; flags dynamic,timeout ; "
                                        f"timeout {s.affinity_timeout}s ; }}")
        entries = self._entries(s, names, externals, bool(cluster_eps))
        entries[("", "hairpin")] = {f"{e.ip} . {e.ip}" for e in usable}
        return Fragment(chains=chains, entries={k: frozenset(v) for k, v in entries.items() if v},
                        objects=objects)

    def _entries(self, s: ServiceInfo, names: dict[str, str], externals: list[tuple[str, str]],
                 has_cluster: bool) -> dict[ChainId, set[str]]:
        """This Service's elements of the dispatch maps and sets."""
        proto, any_eps, reject = s.protocol.lower(), s.has_endpoints, "goto reject-chain"
        ips: set[str] = set()
        no_ep: set[str] = set()
        masq = self.options.masquerade_all or bool(self.options.cluster_cidr)
        for ip in ipv4_only(s.cluster_ips):
            target = f"goto {names['svc']}" if has_cluster else ("drop" if any_eps else reject)
            (ips if has_cluster else no_ep).add(f"{ip} . {proto} . {s.port} : {target}")
        for ip, target in externals:
            if any_eps:
                ips.add(f"{ip} . {proto} . {s.port} : goto {target}")
            else:
                no_ep.add(f"{ip} . {proto} . {s.port} : {reject}")
        nodeport = f"{proto} . {s.node_port} : " + (f"goto {names['ext']}" if any_eps else reject)
        return {
            ("", "service-ips"): ips,
            ("", "no-endpoint-services"): no_ep,
            ("", "service-nodeports" if any_eps else "no-endpoint-nodeports"): {nodeport} if s.node_port else set(),
            ("", "masquerade-cluster-ips"): {f"{ip} . {proto} . {s.port}" for ip in ipv4_only(s.cluster_ips)}
            if masq and has_cluster else set(),
        }

    def _spread(self, s: ServiceInfo, eps: list[EndpointInfo]) -> tuple[str, ...]:
        rules: list[str] = []
        if not s.uses_affinity:  # DNAT inline, one fresh random draw per rule: 1/(n-i)
            for i, e in enumerate(eps):
                draw = f"numgen random mod {len(eps) - i} == 0 " if i < len(eps) - 1 else ""
                rules.append(f"{draw}{self._dnat(s, e)}")
            return tuple(rules)
        rules += [f"ip saddr @{self._aff(s, e)} goto {self._ep(s, e)}" for e in eps]
        if len(eps) == 1:
            rules.append(f"goto {self._ep(s, eps[0])}")
        elif eps:
            vmap = ", ".join(f"{i} : goto {self._ep(s, e)}" for i, e in enumerate(eps))
            rules.append(f"numgen random mod {len(eps)} vmap {{ {vmap} }}")
        return tuple(rules)

    @staticmethod
    def _dnat(s: ServiceInfo, e: EndpointInfo) -> str:
        return f"meta l4proto {s.protocol.lower()} dnat to {e.ip}:{e.port}"

    def _ext_rules(self, s: ServiceInfo, svc: str, svl: str, local_eps: list[EndpointInfo]) -> tuple[str, ...]:
        if not s.external_local:
            return ("jump mark-for-masquerade", f"goto {svc}")
        rules = []
        if self.options.cluster_cidr:
            rules.append(f"ip saddr {self.options.cluster_cidr} goto {svc}")
        rules += ["fib saddr type local jump mark-for-masquerade", f"fib saddr type local goto {svc}"]
        rules.append(f"goto {svl}" if local_eps else "drop")
        return tuple(rules)

    def _ep_rules(self, s: ServiceInfo, e: EndpointInfo) -> tuple[str, ...]:
        return (f"update @{self._aff(s, e)} {{ ip saddr }}", self._dnat(s, e))

    # -- text ----------------------------------------------------------------------------
    def serialize(self, delta: Delta, full: bool, first: bool) -> str:
        t = self.table
        out = [f"add table {t}"]
        if first:
            out += [f"delete table {t}", f"add table {t}"]
        static = self.static_chains() if full else {}
        if not first:  # the dnat-N chains never change; and see static_maps for why not rewrite
            static = {c: r for c, r in static.items() if c not in self.spread_chains()}
        if first:
            out += [f"add {_kind(spec)} {t} {m} {{ {spec} ; }}" for m, spec in self.static_maps().items()]
        if full:
            out += [f"add chain {t} {c} {{ {spec} }}" for c, spec in BASE_CHAINS.items()]
        chains = sorted(set(static) | {c for _, c in delta.write_chains} | {c for _, c in delta.delete_chains})
        out += [f"add chain {t} {c}" for c in chains if c not in BASE_CHAINS]
        if not first:
            out += [f"flush chain {t} {c}" for c in chains]
        if full and not first:
            out += [f"flush {_kind(spec)} {t} {m}" for m, spec in self.static_maps().items()]
        for (_, m), elements in sorted(delta.remove_entries.items()):
            if not full:
                out += self._elements("delete", m, sorted(e.split(" : ")[0] for e in elements))
        out += [f"delete chain {t} {c}" for _, c in sorted(delta.delete_chains)]
        out += [f"delete set {t} {o}" for o in sorted(delta.delete_objects)]
        out += [f"add set {t} {o} {decl}" for o, decl in sorted(delta.add_objects.items())]
        for c, static_rules in sorted(static.items()):
            out += [f"add rule {t} {c} {r}" for r in static_rules]
        for (_, c), rules in sorted(delta.write_chains.items()):
            out += [f"add rule {t} {c} {r}" for r in rules]
        for (_, m), elements in sorted(delta.add_entries.items()):
            out += self._elements("add", m, sorted(elements))
        return "\n".join(out) + "\n"

    def _elements(self, verb: str, m: str, elements: list[str]) -> list[str]:
        return [f"{verb} element {self.table} {m} {{ {', '.join(elements[i:i + ELEMENT_BATCH])} }}"
                for i in range(0, len(elements), ELEMENT_BATCH)]

    # -- effects -------------------------------------------------------------------------
    def check(self) -> None:
        require_tools(["nft"], self.mode, self.runner)
        try:
            self.runner(["nft", "list", "tables"])
        except ApplyError as e:
            raise BackendUnavailable(f"nft cannot list tables: {e}") from None

    def apply(self, text: str, full: bool) -> None:
        lib = self._library()
        if lib is not None:
            lib.run(text)
        else:
            self.runner(["nft", "-f", "-"], text)

    def _library(self) -> LibNftables | None:
        """libnftables in-process when we really execute (not with a recording runner)."""
        if not isinstance(self.runner, CommandRunner) or not libnft.available():
            return None
        if self._lib is None:
            self._lib = LibNftables(self.runner.netns)
        return self._lib

    def cleanup(self) -> None:
        self.apply(f"add table {self.table}\ndelete table {self.table}\n", full=True)
        self._applied.clear()
        self._need_full = self._first = True


def _kind(spec: str) -> str:
    return "map" if " : " in spec else "set"


def _v4(endpoints: tuple[EndpointInfo, ...]) -> list[EndpointInfo]:
    return [e for e in endpoints if ":" not in e.ip]
