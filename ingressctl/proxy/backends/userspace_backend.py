"""The `Backend` protocol over the asyncio userspace proxy, for `ingressctl proxy --mode userspace`.

The sync loop is synchronous and runs on the main thread; the proxy's sockets live on an
asyncio event loop in a daemon thread. `sync(table, changed)` hands the whole table to
that loop and waits for it (the proxy diffs listeners and endpoint lists itself, so a
partial sync costs no more than a full one). `render(table)` lists the listeners a sync
would open, for `--dry-run`.

Design choice: nodePort addresses are resolved once from `--nodeport-addresses` (the local
addresses inside those CIDRs); with none given, nodePorts listen on 0.0.0.0 like the
kube-proxy userspace mode did.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import subprocess
import threading
from collections.abc import Iterable

from ..core.model import ServicePortKey, ServiceTable
from ..core.relay import RelayLimits
from .base import BackendUnavailable, ProxyOptions, SyncResult
from .userspace import UserspaceProxy, plan_listeners

log = logging.getLogger(__name__)


def local_addresses() -> list[str]:
    """IPv4 addresses configured on this host's interfaces (from `ip -j addr`)."""
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise BackendUnavailable(f"cannot list local addresses with `ip -j addr`: {e}") from None
    return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])
            if a.get("family") == "inet"]


def nodeport_ips(cidrs: Iterable[str], addresses: Iterable[str]) -> tuple[str, ...]:
    """The local addresses inside `cidrs` (sorted); ("0.0.0.0",) when no CIDR is given."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    if not nets:
        return ("0.0.0.0",)
    return tuple(sorted({a for a in addresses if any(ipaddress.ip_address(a) in n for n in nets)},
                        key=ipaddress.ip_address))


class UserspaceBackend:
    mode = "userspace"

    def __init__(self, options: ProxyOptions, scheduler: str = "rr",
                 limits: RelayLimits | None = None) -> None:
        self.options, self.scheduler, self.limits = options, scheduler, limits
        self._ips: tuple[str, ...] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy: UserspaceProxy | None = None
        self._reported: set[str] = set()

    def _nodeport_ips(self) -> tuple[str, ...]:
        if self._ips is None:
            addrs = local_addresses() if self.options.nodeport_addresses else []
            self._ips = nodeport_ips(self.options.nodeport_addresses, addrs)
            if not self._ips:
                raise BackendUnavailable("no local address is inside --nodeport-addresses "
                                         f"{','.join(self.options.nodeport_addresses)}")
        return self._ips

    def check(self) -> None:
        self._nodeport_ips()

    def _start(self) -> tuple[asyncio.AbstractEventLoop, UserspaceProxy]:
        if self._loop is None or self._proxy is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="userspace-proxy", daemon=True).start()
            self._loop = loop
            self._proxy = UserspaceProxy(self._nodeport_ips(), self.limits, self.scheduler)
        return self._loop, self._proxy

    def sync(self, table: ServiceTable, changed: Iterable[ServicePortKey] | None) -> SyncResult:
        loop, proxy = self._start()
        future = asyncio.run_coroutine_threadsafe(proxy.apply(table), loop)
        problems = future.result(timeout=60)
        for p in sorted(set(problems) - self._reported):
            log.warning("userspace proxy: %s", p)
        self._reported = set(problems)  # a Service port that cannot listen does not fail the others
        return SyncResult(full=changed is None, rules_written=len(proxy.listeners),
                          services_changed=len(table.services))

    def render(self, table: ServiceTable) -> str:
        plans, problems = plan_listeners(table, self._nodeport_ips(), self.scheduler)
        lines = ["# ingressctl userspace proxy: listener -> Service port (scope) scheduler [endpoints]"]
        for lk, plan in sorted(plans.items(), key=lambda kv: (kv[0].protocol, kv[0].ip, kv[0].port)):
            affinity = f" affinity={plan.affinity_timeout}s" if plan.affinity_timeout else ""
            eps = " ".join(b.key for b in plan.backends) or "-"
            lines.append(f"{lk} -> {plan.balancer[0]} ({plan.balancer[1]}) {plan.scheduler}{affinity} [{eps}]")
        lines += [f"# skipped: {p}" for p in problems]
        return "\n".join(lines) + "\n"

    def cleanup(self) -> None:
        if self._loop is not None and self._proxy is not None:
            asyncio.run_coroutine_threadsafe(self._proxy.close(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = self._proxy = None
