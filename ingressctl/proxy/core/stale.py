"""Which UDP conntrack entries a sync made stale, computed from the previous and current table.

UDP has no connection to end: the kernel keeps a conntrack entry (and with it the DNAT
decision) while a client keeps sending from the same source port, so after an endpoint is
removed its clients keep reaching it until the entry times out. After every successful sync
kube-proxy deletes the entries that point the wrong way, and so do we, from two cases:

* an endpoint IP no longer serves a frontend (cluster IP:port, external or load-balancer
  IP:port, *:nodePort) it served before, or the frontend is gone: delete the frontend's
  entries whose reply comes from that IP (`--reply-src`, i.e. they were DNATed to it);
* a frontend had no serving endpoint (or did not exist) and now has one: delete all of its
  entries, which were made while nothing DNATed the traffic and would keep bypassing the
  new rules.

An endpoint counts while it is *serving* (ready, or terminating but still serving), whatever
the traffic policies say: policies decide where new flows go, not which existing flows
survive (the rule kube-proxy's conntrack reconciler follows too).

Design choice: this module only computes `StaleFlow` values (data, no I/O) from two
ServiceTables; `proxy.system.conntrack` runs them. The first sync has no previous table and
deletes nothing, so a restart of the proxy does not cut every UDP flow on the node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .model import ServiceInfo, ServicePortKey, ServiceTable

STALE_PROTOCOLS = ("UDP",)


@dataclass(frozen=True, order=True)
class StaleFlow:
    """One conntrack deletion filter: frontend (orig destination) and, optionally, endpoint."""

    orig_port: int
    orig_dst: str = ""  # "" for a nodePort: every node address
    reply_src: str = ""  # the endpoint IP the entries were DNATed to; "": every entry
    protocol: str = "udp"

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.orig_dst + self.reply_src else "ipv4"

    def argv(self) -> list[str]:
        """Arguments of `conntrack` that delete exactly the matching entries."""
        out = ["-D", "-f", self.family, "-p", self.protocol]
        if self.orig_dst:
            out += ["--orig-dst", self.orig_dst]
        out += ["--orig-port-dst", str(self.orig_port)]
        if self.reply_src:
            out += ["--reply-src", self.reply_src]
        return out

    def __str__(self) -> str:
        dst = f"{self.orig_dst or '*'}:{self.orig_port}"
        return f"{self.protocol} {dst} -> {self.reply_src or 'any'}"


class StaleFlowCleaner(Protocol):
    """What the sync loop calls after a successful sync (`proxy.system.conntrack.ConntrackCleaner`)."""

    def clean(self, flows: Sequence[StaleFlow]) -> int: ...


Frontend = tuple[str, int]  # (address or "" for a nodePort, port)


def frontends(info: ServiceInfo) -> dict[Frontend, frozenset[str]]:
    """Every frontend of a stale-prone Service port, with the IPs of its serving endpoints."""
    if info.protocol not in STALE_PROTOCOLS:
        return {}
    serving = frozenset(e.ip for e in info.endpoints if e.serving)
    out: dict[Frontend, frozenset[str]] = {}
    for ip in (*info.cluster_ips, *info.external_ips, *info.load_balancer_ips):
        out[(ip, info.port)] = serving
    if info.node_port:
        out[("", info.node_port)] = serving
    return out


def service_stale_flows(old: ServiceInfo | None, new: ServiceInfo | None) -> list[StaleFlow]:
    """The deletions one Service port's change calls for (empty for TCP and SCTP)."""
    before = frontends(old) if old else {}
    after = frontends(new) if new else {}
    info = new or old
    if info is None or not (before or after):
        return []
    protocol = info.protocol.lower()
    flows = []
    for (ip, port), ips in before.items():
        now = after.get((ip, port), frozenset())
        flows += [StaleFlow(port, ip, gone, protocol) for gone in ips - now]
    for (ip, port), ips in after.items():
        if ips and not before.get((ip, port)):
            flows.append(StaleFlow(port, ip, "", protocol))
    return flows


def stale_flows(old: ServiceTable | None, new: ServiceTable,
                changed: Iterable[ServicePortKey] | None = None) -> list[StaleFlow]:
    """Deletions after a sync from `old` (None: first sync, nothing) to `new`; `changed`
    limits the work to those keys (None: compare every key of both tables)."""
    if old is None:
        return []
    keys = set(old.services) | set(new.services) if changed is None else set(changed)
    flows: set[StaleFlow] = set()
    for key in keys:
        before, after = old.services.get(key), new.services.get(key)
        if before is not after:
            flows.update(service_stale_flows(before, after))
    return sorted(flows)
