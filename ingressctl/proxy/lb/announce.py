"""LoadBalancer addresses at work: pools loaded, statuses filled, addresses announced.

`LoadBalancerIPs` sits between the Store and the proxy's tracker. It loads the pools
(`--lb-pools FILE` or `configmap:NS/NAME`), runs the pure `ipam.allocate` on every
snapshot, and
- in local mode (`--manifests`, no API to write to) returns the snapshot with each
  Service's allocated address as its `status.loadBalancer.ingress`, so every backend
  serves it exactly as if a cloud had published it;
- in cluster mode, while this replica leads, patches `status.loadBalancer.ingress` of the
  Services whose address differs (the watch then brings it back) and reports Services that
  got no address (exhausted pool, unknown pool ...) as Warning Events.
`L2Announcer` makes the leader answer ARP for the addresses: it adds each as a /32 to an
interface (`--lb-announce-interface`), sends a gratuitous ARP so neighbours update their
caches at once, and removes them when leadership is lost or the proxy stops.

Design choice: leadership is a Protocol with `step() -> bool`; cluster mode uses the
Lease elector, local mode an flock on `--lb-leader-lock` (the kernel releases it when the
holder dies), so the failover path is the same code in both.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from typing import Any, Protocol

from ...objects import LoadBalancerIngress, Service
from ...store import Snapshot
from .ipam import Allocation, Pool, PoolError, allocate, parse_pools, takes_part

log = logging.getLogger(__name__)


def load_pools(spec: str, snapshot: Snapshot,
               fetch_configmap: Callable[[str, str], dict[str, str] | None] | None) -> list[Pool]:
    """Pools from a file path or `configmap:NS/NAME` (key `pools.yaml`); PoolError if unusable."""
    if spec.startswith("configmap:"):
        ns, _, name = spec[len("configmap:"):].partition("/")
        cm = snapshot.configmap(ns, name)
        data = dict(cm.data) if cm is not None else (fetch_configmap(ns, name) if fetch_configmap else None)
        if data is None:
            raise PoolError(f"--lb-pools: ConfigMap {ns}/{name} not found")
        if "pools.yaml" not in data:
            raise PoolError(f"--lb-pools: ConfigMap {ns}/{name} has no key pools.yaml")
        return parse_pools(data["pools.yaml"], f"ConfigMap {ns}/{name}")
    try:
        with open(spec, encoding="utf-8") as f:
            return parse_pools(f.read(), spec)
    except OSError as e:
        raise PoolError(f"--lb-pools {spec}: {e.strerror}") from None


class Leadership(Protocol):
    def step(self) -> bool: ...

    def release(self) -> None: ...


class AlwaysLeader:
    def step(self) -> bool:
        return True

    def release(self) -> None:
        pass


class FileLockLeader:
    """Local-mode leadership: whoever holds an exclusive flock on the file leads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def step(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def gratuitous_arp(interface: str, ip: str) -> None:
    """Broadcast an ARP request for `ip` from `ip` (neighbours refresh their cache entry)."""
    with open(f"/sys/class/net/{interface}/address", encoding="ascii") as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    addr = socket.inet_aton(ip)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + addr + b"\x00" * 6 + addr
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((interface, 0))
        s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)


class L2Announcer:
    """Holds exactly the wanted addresses (as /32) on one interface."""

    def __init__(self, interface: str, run: Callable[[list[str]], Any] | None = None,
                 garp: Callable[[str, str], None] = gratuitous_arp) -> None:
        self.interface = interface
        self.run = run or (lambda argv: subprocess.run(argv, check=True, capture_output=True, timeout=10))
        self.garp = garp
        self.held: set[str] = set()

    def update(self, wanted: set[str]) -> bool:
        """Add what is missing, remove what is not wanted; True when something changed."""
        wanted = {ip for ip in wanted if ":" not in ip}  # ARP is IPv4
        for ip in sorted(self.held - wanted):
            self._ip("del", ip)
            self.held.discard(ip)
            log.info("no longer announcing %s on %s", ip, self.interface)
        added = sorted(wanted - self.held)
        for ip in added:
            self._ip("replace", ip)
            self.held.add(ip)
            try:
                self.garp(self.interface, ip)
            except OSError as e:
                log.warning("gratuitous ARP for %s on %s: %s", ip, self.interface, e)
            log.info("announcing %s on %s", ip, self.interface)
        return bool(added) or bool(self.held - wanted)

    def _ip(self, op: str, ip: str) -> None:
        try:
            self.run(["ip", "addr", op, f"{ip}/32", "dev", self.interface])
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("ip addr %s %s dev %s: %s", op, ip, self.interface, e)

    def release(self) -> None:
        self.update(set())


class LoadBalancerIPs:
    """Allocation on every snapshot; announcements and status writes in a background thread."""

    def __init__(self, pools_spec: str, local_mode: bool, leadership: Leadership | None = None,
                 announcer: L2Announcer | None = None,
                 fetch_configmap: Callable[[str, str], dict[str, str] | None] | None = None,
                 write_status: Callable[[Service, str], None] | None = None,
                 report: Callable[[list[tuple[str, str]]], None] | None = None,
                 period: float = 0.5, claim_unclassed: bool = False) -> None:
        self.pools_spec, self.local_mode = pools_spec, local_mode
        self.claim_unclassed = claim_unclassed  # also LoadBalancer Services without a loadBalancerClass
        self.leadership = leadership or AlwaysLeader()
        self.announcer = announcer
        self.fetch_configmap, self.write_status, self.report = fetch_configmap, write_status, report
        self.period = period
        self.allocation = Allocation()
        self.leading = False
        self._memo: dict[str, tuple[Service, str, Service]] = {}  # key -> (original, ip, filled)
        self._last_problems: tuple[tuple[str, str], ...] = ()
        self._services: dict[str, Service] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, snapshot: Snapshot) -> None:
        """Load the pools once now so a bad --lb-pools fails at start (PoolError)."""
        load_pools(self.pools_spec, snapshot, self.fetch_configmap)

    def snapshot(self, snap: Snapshot) -> Snapshot:
        """Allocate; in local mode return the snapshot with the addresses in the statuses."""
        try:
            pools = load_pools(self.pools_spec, snap, self.fetch_configmap)
        except PoolError as e:
            log.error("%s (keeping the last allocation)", e)
            return self._apply(snap) if self.local_mode else snap
        self.allocation = allocate(pools, snap.services.values(), self.claim_unclassed)
        self._services = {k: s for k, s in snap.services.items() if takes_part(s, self.claim_unclassed)}
        if self.allocation.problems != self._last_problems:
            for key, reason in self.allocation.problems:
                log.warning("Service %s: %s", key, reason)
            self._last_problems = self.allocation.problems
        return self._apply(snap) if self.local_mode else snap

    def _apply(self, snap: Snapshot) -> Snapshot:
        services = dict(snap.services)
        memo: dict[str, tuple[Service, str, Service]] = {}
        for key, svc in snap.services.items():
            if not takes_part(svc, self.claim_unclassed):
                continue
            ip = self.allocation.ip_of(key)
            prior = self._memo.get(key)
            if prior is not None and prior[0] is svc and prior[1] == ip:
                new = prior[2]  # the same object as last time: the tracker skips it
            else:
                new = dataclasses.replace(svc, status_ingress=(LoadBalancerIngress(ip=ip),) if ip else ())
            memo[key] = (svc, ip, new)
            services[key] = new
        self._memo = memo
        return dataclasses.replace(snap, services=services)

    def step(self) -> None:
        """One round: leadership, announcements, status writes and Events (cluster mode)."""
        leading = self.leadership.step()
        if leading != self.leading:
            log.info("LoadBalancer addresses: %s", "leading" if leading else "not leading")
            self.leading = leading
        wanted = {a.ip for a in self.allocation.assignments.values()} if leading else set()
        if self.announcer is not None:
            self.announcer.update(wanted)
        if leading and not self.local_mode:
            self._write_statuses()

    def _write_statuses(self) -> None:
        if self.write_status is not None:
            for key, svc in self._services.items():
                ip = self.allocation.ip_of(key)
                if tuple(a.ip for a in svc.status_ingress) != ((ip,) if ip else ()):
                    self.write_status(svc, ip)
        if self.report is not None:
            self.report(list(self.allocation.problems))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.step()
                except Exception as e:  # keep announcing whatever one round did
                    log.warning("LoadBalancer addresses: %s", e)
                self._stop.wait(self.period)
        self._thread = threading.Thread(target=loop, name="lb-addresses", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.announcer is not None:
            self.announcer.release()
        self.leadership.release()
