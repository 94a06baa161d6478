"""Leader election on a `coordination.k8s.io/v1` Lease, the way client-go does it.

Every replica serves traffic; only the leader writes to the API (status, events). A
candidate takes the Lease when it is free (no holder) or when the holder has not renewed it
for `lease_duration` seconds *as measured on our own monotonic clock since we last saw the
record change* (so clock skew between nodes does not matter). The leader renews every
`retry_period`; if it cannot renew within `renew_deadline` it steps down. A stale write is
refused by the API server with 409 Conflict, and the next step re-reads the Lease.
On a clean stop the leader releases the Lease (empty holder) so another replica takes over
at once instead of after the lease duration.

Design choice: `step()` is one synchronous attempt that returns whether we lead; the thread
only calls it on a timer. Tests drive `step()` directly with a fake clock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from .client import RESOURCES, KubeClient, describe_failure

log = logging.getLogger(__name__)
LEASE = RESOURCES["Lease"]


def _micro_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: KubeClient, namespace: str, name: str, identity: str,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.on_change = on_change
        self.clock = clock
        self._leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    # -- one attempt --------------------------------------------------------------------------
    def step(self) -> bool:
        """Try to acquire or renew once; returns whether we lead afterwards."""
        now = self.clock()
        try:
            ok = self._try()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            log.warning("leader election %s/%s: %s", self.namespace, self.name, describe_failure(self.client.host, e))
            ok = False
        if ok:
            self._last_renew = now
            self._set(True)
        elif self._leader and (now - self._last_renew >= self.renew_deadline or self._held_by_other()):
            self._set(False)
        return self._leader

    def _held_by_other(self) -> bool:
        return self._observed is not None and self._observed[0] not in ("", self.identity)

    def _try(self) -> bool:
        path = LEASE.path(self.namespace, self.name)
        try:
            lease = self.client.request("GET", path)
        except ApiException as e:
            if e.status != 404:
                raise
            return self._create()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and self.clock() < self._observed_at + duration:
            return False  # held by someone else and not expired
        now = datetime.now(UTC)
        new_spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(max(1, round(self.lease_duration))),
            "acquireTime": spec.get("acquireTime") if holder == self.identity else _micro_time(now),
            "renewTime": _micro_time(now),
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1),
        }
        body = {**lease, "spec": new_spec}
        try:
            self.client.request("PUT", path, body=body)  # carries metadata.resourceVersion: 409 if stale
        except ApiException as e:
            if e.status == 409:
                log.info("leader election: lease %s/%s changed under us; re-reading", self.namespace, self.name)
                self._observed = None
                return False
            raise
        self._observed, self._observed_at = (self.identity, str(new_spec["renewTime"])), self.clock()
        return True

    def _create(self) -> bool:
        now = _micro_time(datetime.now(UTC))
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(max(1, round(self.lease_duration))),
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
        }
        try:
            self.client.request("POST", LEASE.path(self.namespace), body=body)
        except ApiException as e:
            if e.status == 409:  # someone created it first
                return False
            raise
        self._observed, self._observed_at = (self.identity, now), self.clock()
        return True

    def _set(self, leader: bool, how: str = "") -> None:
        if leader == self._leader:
            return
        self._leader = leader
        log.warning("%s %s leadership of %s/%s", self.identity, how or ("acquired" if leader else "lost"),
                    self.namespace, self.name)
        if self.on_change is not None:
            self.on_change(leader)

    # -- background loop ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            jitter = 0 if self._leader else random.uniform(0, 0.2 * self.retry_period)
            self._stop.wait(self.retry_period + jitter)

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if release and self._leader:
            self.release()
        self._set(False, "released" if release else "gave up")

    def release(self) -> None:
        """Give the Lease up (empty holder) so another replica can take it at once."""
        path = LEASE.path(self.namespace, self.name)
        try:
            lease = self.client.request("GET", path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            now = _micro_time(datetime.now(UTC))
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now}
            self.client.request("PUT", path, body={**lease, "spec": spec})
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, describe_failure(self.client.host, e))
