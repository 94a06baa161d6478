"""iptables backend: kube-proxy's chain structure, applied with one `iptables-restore --noflush`.

nat table: PREROUTING/OUTPUT jump to P-SERVICES, which dispatches cluster IPs to a
per-Service P-SVC chain and external/LB IPs to P-EXT (or P-FW with loadBalancerSourceRanges),
and ends with the jump to P-NODEPORTS for local destinations. P-SVC spreads with
`-m statistic --mode random --probability 1/(n-i)` (after `-m recent` checks for ClientIP
affinity) over per-endpoint P-SEP chains, which mark hairpin traffic for masquerade and
DNAT. P-EXT masquerades (Cluster policy) or keeps the source and uses the local endpoints
in P-SVL (Local policy). Traffic that found no endpoint is never DNATed, so the filter
table's P-SERVICES sees its original destination and REJECTs it (no endpoints) or DROPs it
(Local policy without a local endpoint, source not allowed by a firewall chain).

Design choice: per-Service chains are named prefix + hash of the Service port (and
endpoint), and the dispatch rules are a set, so a partial sync touches only the changed
Services' chains plus `-I`/`-D` of their own dispatch rules. Only jumps from the built-in
chains live outside our chains, and `cleanup()` removes them and every chain we own.
"""

from __future__ import annotations

import re

from ..core.model import EndpointInfo, ServiceInfo, ServiceTable
from ..core.rules import ChainId, Delta, Fragment, ipv4_only, random_probabilities, stable_hash
from .base import ApplyError, BackendUnavailable, FragmentBackend, require_tools

NAT, FILTER = "nat", "filter"


class IptablesBackend(FragmentBackend):
    mode = "iptables"
    _present_jumps: set[tuple[str, str, str]] = set()  # replaced by existing_chains, never mutated

    # -- names --------------------------------------------------------------------------
    def chain(self, kind: str, text: str = "") -> str:
        p = self.options.chain_prefix
        return f"{p}-{kind}-{stable_hash(text)}" if text else f"{p}-{kind}"

    def _proto(self, s: ServiceInfo, port: int) -> str:
        proto = s.protocol.lower()
        return f"-p {proto} -m {proto} --dport {port}"

    # -- static structure ----------------------------------------------------------------
    def static_chains(self) -> dict[ChainId, list[str]]:
        mark = f"{self.options.masquerade_mark:#x}"
        if self.options.nodeport_addresses:
            to_nodeports = [f"-d {c} -j {self.chain('NODEPORTS')}" for c in self.options.nodeport_addresses]
        else:
            to_nodeports = [f"! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {self.chain('NODEPORTS')}"]
        return {
            (NAT, self.chain("SERVICES")): [],  # entries, then to_nodeports (appended last)
            (NAT, self.chain("NODEPORTS")): [],
            (NAT, self.chain("MARK-MASQ")): [f"-j MARK --or-mark {mark}"],
            (NAT, self.chain("POSTROUTING")): [
                f"-m mark ! --mark {mark}/{mark} -j RETURN",
                f"-j MARK --xor-mark {mark}",
                "-j MASQUERADE --random-fully",
            ],
            (FILTER, self.chain("SERVICES")): [],
            (FILTER, self.chain("FORWARD")): [
                f"-m mark --mark {mark}/{mark} -j ACCEPT",
                "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ],
            ("nodeports-jump", ""): to_nodeports,
        }

    def static_chain_ids(self) -> set[ChainId]:
        return {c for c in self.static_chains() if c[0] in (NAT, FILTER)}

    def jumps(self) -> list[tuple[str, str, str]]:
        """(table, built-in chain, rule) that hook our chains in; kept exactly once."""
        new = "-m conntrack --ctstate NEW"
        return [
            (NAT, "PREROUTING", f"-j {self.chain('SERVICES')}"),
            (NAT, "OUTPUT", f"-j {self.chain('SERVICES')}"),
            (NAT, "POSTROUTING", f"-j {self.chain('POSTROUTING')}"),
            (FILTER, "INPUT", f"{new} -j {self.chain('SERVICES')}"),
            (FILTER, "FORWARD", f"{new} -j {self.chain('SERVICES')}"),
            (FILTER, "OUTPUT", f"{new} -j {self.chain('SERVICES')}"),
            (FILTER, "FORWARD", f"-j {self.chain('FORWARD')}"),
        ]

    # -- per Service ---------------------------------------------------------------------
    def fragment(self, s: ServiceInfo) -> Fragment:
        key = str(s.key)
        names = {k: self.chain(k, key) for k in ("SVC", "EXT", "FW", "SVL")}
        externals = [(ip, names["EXT"], "external IP") for ip in ipv4_only(s.external_ips)]
        externals += [(ip, names["FW" if s.load_balancer_source_ranges else "EXT"], "load-balancer IP")
                      for ip in ipv4_only(s.load_balancer_ips)]
        cluster_eps, local_eps = _v4(s.cluster_endpoints()), _v4(s.local_endpoints())
        return Fragment(chains=self._chains(s, names, externals, cluster_eps, local_eps),
                        entries=self._entries(s, names, externals, bool(cluster_eps), bool(local_eps)))

    def _entries(self, s: ServiceInfo, names: dict[str, str], externals: list[tuple[str, str, str]],
                 has_cluster: bool, has_local: bool) -> dict[ChainId, frozenset[str]]:
        """Dispatch rules (nat) and REJECT/DROP rules (filter) this Service adds."""
        any_eps = s.has_endpoints
        nat: set[str] = set()
        nodeports: set[str] = set()
        filt: set[str] = set()
        name = f'-m comment --comment "{s.key}'
        for ip in ipv4_only(s.cluster_ips):
            match = f"-d {ip}/32 {self._proto(s, s.port)}"
            if has_cluster:
                nat.add(f'{match} {name} cluster IP" -j {names["SVC"]}')
            elif any_eps:
                filt.add(f'{match} {name} has no local endpoints" -j DROP')
            else:
                filt.add(f'{match} {name} has no endpoints" -j REJECT')
        ext_reachable = any_eps and (not s.external_local or has_local)
        verdict = "REJECT" if not any_eps else "DROP"
        for ip, target, label in externals:
            match = f"-d {ip}/32 {self._proto(s, s.port)}"
            if any_eps:
                nat.add(f'{match} {name} {label}" -j {target}')
            if not ext_reachable or target == names["FW"]:
                filt.add(f'{match} {name} not reachable from this source" -j {verdict}')
        if s.node_port:
            if any_eps:
                nodeports.add(f'{self._proto(s, s.node_port)} {name} node port" -j {names["EXT"]}')
            if not ext_reachable:
                filt.add(f'-m addrtype --dst-type LOCAL {self._proto(s, s.node_port)} '
                         f'{name} node port unreachable" -j {verdict}')
        entries = {(NAT, self.chain("SERVICES")): frozenset(nat),
                   (NAT, self.chain("NODEPORTS")): frozenset(nodeports),
                   (FILTER, self.chain("SERVICES")): frozenset(filt)}
        return {k: v for k, v in entries.items() if v}

    def _chains(self, s: ServiceInfo, names: dict[str, str], externals: list[tuple[str, str, str]],
                cluster_eps: list[EndpointInfo], local_eps: list[EndpointInfo]) -> dict[ChainId, tuple[str, ...]]:
        """The chains this Service owns: SVC, EXT, SVL, FW and one SEP per endpoint."""
        chains: dict[ChainId, tuple[str, ...]] = {}
        svc, ext, fw, svl = names["SVC"], names["EXT"], names["FW"], names["SVL"]
        external = s.has_endpoints and bool(externals or s.node_port)
        if cluster_eps or external:
            chains[(NAT, svc)] = self._svc_rules(s, cluster_eps, masquerade=True)
        if external:
            chains[(NAT, ext)] = self._ext_rules(s, svc, svl, local_eps)
            if s.external_local and local_eps:
                chains[(NAT, svl)] = self._svc_rules(s, local_eps, masquerade=False)
            if any(t == fw for _, t, _ in externals):
                chains[(NAT, fw)] = tuple(f"-s {r} -j {ext}" for r in s.load_balancer_source_ranges)
        for e in _v4(s.all_usable_endpoints()):
            chains[(NAT, self._sep(s, e))] = self._sep_rules(s, e)
        return chains

    def _sep(self, s: ServiceInfo, e: EndpointInfo) -> str:
        return self.chain("SEP", f"{s.key} {e.address}")

    def _svc_rules(self, s: ServiceInfo, eps: list[EndpointInfo], masquerade: bool) -> tuple[str, ...]:
        rules = []
        masq = self.chain("MARK-MASQ")
        if masquerade and self.options.masquerade_all:
            rules.append(f"-j {masq}")
        elif masquerade and self.options.cluster_cidr:
            rules.append(f"! -s {self.options.cluster_cidr} -j {masq}")
        if s.uses_affinity:
            for e in eps:
                sep = self._sep(s, e)
                rules.append(f"-m recent --name {sep} --rcheck --seconds {s.affinity_timeout} --reap -j {sep}")
        for e, p in zip(eps, random_probabilities(len(eps)), strict=True):
            prob = f"-m statistic --mode random --probability {p:.11f} " if p is not None else ""
            rules.append(f"{prob}-j {self._sep(s, e)}")
        return tuple(rules)

    def _ext_rules(self, s: ServiceInfo, svc: str, svl: str, local_eps: list[EndpointInfo]) -> tuple[str, ...]:
        masq = self.chain("MARK-MASQ")
        if not s.external_local:
            return (f"-j {masq}", f"-j {svc}")
        rules = []
        if self.options.cluster_cidr:
            rules.append(f"-s {self.options.cluster_cidr} -j {svc}")
        rules += [f"-m addrtype --src-type LOCAL -j {masq}", f"-m addrtype --src-type LOCAL -j {svc}"]
        if local_eps:
            rules.append(f"-j {svl}")
        return tuple(rules)

    def _sep_rules(self, s: ServiceInfo, e: EndpointInfo) -> tuple[str, ...]:
        proto = s.protocol.lower()
        recent = f"-m recent --set --name {self._sep(s, e)} " if s.uses_affinity else ""
        return (f"-s {e.ip}/32 -j {self.chain('MARK-MASQ')}",
                f"-p {proto} {recent}-m {proto} -j DNAT --to-destination {e.ip}:{e.port}")

    # -- text ----------------------------------------------------------------------------
    def serialize(self, delta: Delta, full: bool, first: bool) -> str:
        out: list[str] = []
        static = self.static_chains() if full else {}
        for table in (FILTER, NAT):
            lines = [f"*{table}"]
            declared = sorted({c for t, c in static if t == table}
                              | {c for t, c in delta.write_chains if t == table}
                              | {c for t, c in delta.delete_chains if t == table})
            lines += [f":{c} - [0:0]" for c in declared]
            for (t, c), entries in sorted(delta.remove_entries.items()):
                if t == table and not full:
                    lines += [f"-D {c} {r}" for r in sorted(entries)]
            for (t, c), static_rules in sorted(static.items()):
                if t == table:
                    lines += [f"-A {c} {r}" for r in static_rules]
            for (t, c), entries in sorted(delta.add_entries.items()):
                if t == table:
                    op = "-A" if full or c != self.chain("SERVICES") or t != NAT else "-I"
                    pos = " 1" if op == "-I" else ""
                    lines += [f"{op} {c}{pos} {r}" for r in sorted(entries)]
            if full and table == NAT:
                lines += [f"-A {self.chain('SERVICES')} {r}" for r in static[("nodeports-jump", "")]]
            for (t, c), rules in sorted(delta.write_chains.items()):
                if t == table:
                    lines += [f"-A {c} {r}" for r in rules]
            lines += [f"-X {c}" for t, c in sorted(delta.delete_chains) if t == table]
            if first:
                lines += [f"-I {chain} 1 {rule}" for t, chain, rule in self.jumps()
                          if t == table and (t, chain, rule) not in self._present_jumps]
            if len(lines) > 1:
                out += lines + ["COMMIT"]
        return "\n".join(out) + "\n"

    # -- effects -------------------------------------------------------------------------
    def check(self) -> None:
        require_tools(["iptables", "iptables-restore", "iptables-save"], self.mode, self.runner)
        try:
            self.runner(["iptables", "-w", "5", "-t", "nat", "-S", "POSTROUTING"])
        except ApplyError as e:
            raise BackendUnavailable(f"iptables cannot read the nat table: {e}") from None

    def existing_chains(self) -> set[ChainId]:
        """Our chains in the kernel, from one iptables-save; also notes which jumps exist."""
        found: set[ChainId] = set()
        pattern = re.compile(rf"^:({re.escape(self.options.chain_prefix)}-\S+)")
        ours, table = set(self.jumps()), ""
        self._present_jumps = set()
        for line in self.runner(["iptables-save"]).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif (m := pattern.match(line)) and table in (NAT, FILTER):
                found.add((table, m.group(1)))
            elif line.startswith("-A ") and (jump := (table, *line[3:].split(" ", 1))) in ours:
                self._present_jumps.add(jump)
        return found

    def render(self, table: ServiceTable) -> str:
        """The rules for a fresh node: with every jump from the built-in chains."""
        present, self._present_jumps = self._present_jumps, set()
        try:
            return super().render(table)
        finally:
            self._present_jumps = present

    def ensure_jumps(self) -> None:
        for table, chain, rule in self.jumps():
            argv = ["iptables", "-w", "5", "-t", table]
            try:
                self.runner(argv + ["-C", chain] + rule.split())
            except ApplyError:
                self.runner(argv + ["-I", chain, "1"] + rule.split())

    def apply(self, text: str, full: bool) -> None:
        self.runner(["iptables-restore", "-w", "5", "--noflush"], text)
        if full and not self._first:  # the first sync inserted the missing jumps itself
            self.ensure_jumps()

    def cleanup(self) -> None:
        for table, chain, rule in self.jumps():
            argv = ["iptables", "-w", "5", "-t", table]
            for _ in range(10):  # every copy, bounded
                try:
                    self.runner(argv + ["-D", chain] + rule.split())
                except ApplyError:
                    break
        ours = self.existing_chains()
        if ours:
            text = []
            for table in (FILTER, NAT):
                chains = sorted(c for t, c in ours if t == table)
                if chains:
                    text += [f"*{table}"] + [f":{c} - [0:0]" for c in chains] + [f"-X {c}" for c in chains]
                    text.append("COMMIT")
            self.runner(["iptables-restore", "-w", "5", "--noflush"], "\n".join(text) + "\n")
        self._applied.clear()
        self._need_full = self._first = True


def _v4(endpoints: tuple[EndpointInfo, ...]) -> list[EndpointInfo]:
    return [e for e in endpoints if ":" not in e.ip]
