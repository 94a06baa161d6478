"""The proxy's sync loop: store changes in, at most one backend sync per min-sync-period out.

Store notifications only set a flag. The loop wakes on the flag or when the periodic full
resync is due, waits out `min_sync_period` since the last sync began (so a burst of 500
endpoint updates becomes one sync), asks the tracker what changed and hands the backend
either the changed keys (partial) or None (full, every `sync_period`, and after any
failure). `/healthz` is healthy while a sync succeeded within 2 x sync_period.

Design choice: the clock and the wait are injected, so tests drive the loop step by step
with a fake clock and no sleeping.

After a successful sync of a NAT backend (iptables, nftables) the optional `cleaner`
deletes the UDP conntrack entries the change made stale (`proxy.core.stale` computes them from
the last applied table and this one; `proxy.system.conntrack` runs them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..store import Snapshot
from .backends.base import Backend, SyncResult
from .core.model import ServicePortKey, ServiceTable
from .core.stale import StaleFlowCleaner, stale_flows
from .core.tracker import ServiceTracker

log = logging.getLogger(__name__)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.sync_duration = Histogram(
            "ingressctl_proxy_sync_duration_seconds", "build + render + apply time of one sync",
            ["kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.syncs = Counter("ingressctl_proxy_syncs", "syncs by kind (full, partial) and result",
                             ["kind", "result"], registry=r)
        self.last_success = Gauge("ingressctl_proxy_last_successful_sync_timestamp_seconds",
                                  "wall-clock time of the last successful sync", registry=r)
        self.rules_written = Counter("ingressctl_proxy_rules_written",
                                     "rules and map elements written by syncs", ["kind"], registry=r)
        self.service_ports = Gauge("ingressctl_proxy_service_ports", "Service ports programmed", registry=r)
        self.conntrack_deleted = Counter("ingressctl_proxy_conntrack_entries_deleted",
                                         "stale UDP conntrack entries deleted after syncs", registry=r)


@dataclass
class SyncStatus:
    last_success: float = -1.0  # monotonic; -1: never
    last_error: str = ""
    syncs: int = 0


class SyncLoop:
    def __init__(self, backend: Backend, snapshot: Callable[[], Snapshot], tracker: ServiceTracker,
                 min_sync_period: float = 1.0, sync_period: float = 30.0,
                 metrics: ProxyMetrics | None = None, clock: Callable[[], float] = time.monotonic,
                 cleaner: StaleFlowCleaner | None = None) -> None:
        self.backend = backend
        self.snapshot = snapshot
        self.tracker = tracker
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self.metrics = metrics or ProxyMetrics()
        self.clock = clock
        self.status = SyncStatus()
        self.cleaner = cleaner
        self._applied: ServiceTable | None = None  # the table of the last successful sync
        self._wake = threading.Event()
        self._next_full = 0.0
        self._last_start = float("-inf")

    def notify(self, *_: object) -> None:
        """Store listener: something changed; sync soon."""
        self._wake.set()

    def healthy(self) -> tuple[bool, str]:
        if self.status.last_success < 0:
            return False, f"no successful sync yet {self.status.last_error}".strip()
        age = self.clock() - self.status.last_success
        if age > 2 * self.sync_period:
            return False, f"last successful sync {age:.0f}s ago: {self.status.last_error}"
        return True, f"ok, last sync {age:.1f}s ago"

    def sync_once(self, full: bool) -> SyncResult | None:
        """One sync now; None when nothing changed and no full sync was asked for."""
        start = self.clock()
        self._last_start = start
        kind = "full" if full else "partial"
        try:
            table, changed = self.tracker.update(self.snapshot())
            if not full and not changed:
                return None
            result = self.backend.sync(table, None if full else changed)
        except Exception as e:
            self.metrics.syncs.labels(kind, "error").inc()
            self.status.last_error = str(e)
            self._next_full = start  # backends also force a full sync after a failure
            raise
        kind = "full" if result.full else "partial"
        self.metrics.sync_duration.labels(kind).observe(self.clock() - start)
        self.metrics.syncs.labels(kind, "ok").inc()
        self.metrics.rules_written.labels(kind).inc(result.rules_written)
        self.metrics.last_success.set(time.time())
        self.metrics.service_ports.set(len(table.services))
        self.status.last_success = self.clock()
        self.status.last_error = ""
        self.status.syncs += 1
        if result.full:
            self._next_full = start + self.sync_period
        self._clean_stale(table, None if result.full else changed)
        return result

    def _clean_stale(self, table: ServiceTable, changed: frozenset[ServicePortKey] | None) -> None:
        """Delete conntrack entries the sync made stale; never fails the sync."""
        previous, self._applied = self._applied, table
        if self.cleaner is None:
            return
        try:
            flows = stale_flows(previous, table, changed)
            if flows:
                self.metrics.conntrack_deleted.inc(self.cleaner.clean(flows))
        except Exception as e:  # best effort: the rules are applied, entries expire anyway
            log.warning("conntrack cleanup failed: %s", e)

    def step(self, stop: threading.Event) -> None:
        """Wait for a change or the periodic resync, honour min_sync_period, sync once."""
        self._wake.wait(timeout=max(0.0, self._next_full - self.clock()))
        if stop.is_set():
            return
        pause = self._last_start + self.min_sync_period - self.clock()
        if pause > 0 and stop.wait(pause):
            return
        self._wake.clear()
        try:
            self.sync_once(full=self.clock() >= self._next_full)
        except Exception as e:  # the loop must outlive any failed sync
            log.error("proxy sync failed (next one is a full sync): %s", e)
            self._wake.set()

    def run(self, stop: threading.Event) -> None:
        def wake_on_stop() -> None:
            stop.wait()
            self._wake.set()

        stopper = threading.Thread(target=wake_on_stop, daemon=True)
        stopper.start()
        while not stop.is_set():
            self.step(stop)
