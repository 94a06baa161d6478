"""Kubernetes Events (core/v1) for the problems the build reports.

Every `Problem` in a `BuildResult` (invalid annotation, missing Service or Secret, a lost
path conflict, ...) becomes a Warning Event on the object it is about, so
`kubectl describe ingress` shows why a rule is not served. The build runs on every change,
so the same problem is seen again and again: an Event is created once, then only its
`count` and `lastTimestamp` are patched, at most once per `repeat_seconds`; each object
has a token bucket (`burst` Events, one more every `refill_seconds`), as client-go's
EventCorrelator does, so a flapping object cannot flood the API server.

Design choice: the recorder is an observer of build results that works in its own thread
and writes only while this replica leads, so N replicas do not post N copies.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from ..ingress.build import BuildResult
from ..ingress.model import Problem
from ..store import Store
from .client import MERGE_PATCH, RESOURCES, KubeClient, describe_failure
from .worker import PeriodicWorker

log = logging.getLogger(__name__)
COMPONENT = "ingressctl"
API_VERSIONS = {"Ingress": "networking.k8s.io/v1", "IngressClass": "networking.k8s.io/v1",
                "EndpointSlice": "discovery.k8s.io/v1"}


@dataclass
class _Sent:
    name: str  # Event object name
    count: int
    last: float  # monotonic time of the last write


@dataclass
class _Bucket:
    tokens: float
    at: float


class EventRecorder:
    def __init__(self, client: KubeClient, store: Store, is_leader: Callable[[], bool],
                 instance: str = "", burst: int = 10, refill_seconds: float = 60.0,
                 repeat_seconds: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 extra: Callable[[], tuple[Problem, ...]] | None = None) -> None:
        self.client, self.store, self.is_leader = client, store, is_leader
        self.instance = instance or socket.gethostname()
        self.burst, self.refill_seconds, self.repeat_seconds = burst, refill_seconds, repeat_seconds
        self.clock = clock
        self.extra = extra  # problems found outside the build (objects that did not parse)
        self.sent: dict[tuple[str, ...], _Sent] = {}
        self.dropped = 0
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._pending: tuple[Problem, ...] = ()
        self._worker = PeriodicWorker("events", repeat_seconds, lambda: self.report(self._pending),
                                      lambda e: describe_failure(self.client.host, e),
                                      (urllib3.exceptions.HTTPError, OSError))

    def observe(self, result: BuildResult) -> None:
        self._pending = result.problems + (self.extra() if self.extra is not None else ())
        self._worker.poke()

    def poke(self) -> None:
        """Report again now (leadership changed)."""
        self._worker.poke()

    def report(self, problems: tuple[Problem, ...]) -> None:
        """Post (or count again) Events for these problems now; forget those that are gone."""
        if not self.is_leader():
            return
        current = {self._key(p) for p in problems}
        for key in [k for k in self.sent if k not in current]:
            del self.sent[key]
        for p in problems:
            try:
                self._record(p)
            except ApiException as e:
                log.warning("event for %s: %s", p.object, describe_failure(self.client.host, e))

    @staticmethod
    def _key(p: Problem) -> tuple[str, ...]:
        return (p.kind, p.namespace, p.name, p.reason, p.message)

    def _allow(self, p: Problem) -> bool:
        now = self.clock()
        b = self._buckets.setdefault((p.kind, p.namespace, p.name), _Bucket(float(self.burst), now))
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) / self.refill_seconds)
        b.at = now
        if b.tokens < 1:
            self.dropped += 1
            return False
        b.tokens -= 1
        return True

    def _record(self, p: Problem) -> None:
        key, now = self._key(p), self.clock()
        prior = self.sent.get(key)
        if prior is not None and now - prior.last < self.repeat_seconds:
            return
        if not self._allow(p):
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        events = RESOURCES["Event"]
        if prior is not None:
            try:
                self.client.request("PATCH", events.path(p.namespace or "default", prior.name),
                                    body={"count": prior.count + 1, "lastTimestamp": stamp}, content_type=MERGE_PATCH)
                prior.count, prior.last = prior.count + 1, now
                return
            except ApiException as e:
                if e.status != 404:  # the Event expired (TTL): create a new one
                    raise
        body = self._event(p, stamp)
        self.client.request("POST", events.path(body["metadata"]["namespace"]), body=body)
        self.sent[key] = _Sent(body["metadata"]["name"], 1, now)

    def _event(self, p: Problem, stamp: str) -> dict[str, Any]:
        involved: dict[str, Any] = {"kind": p.kind, "name": p.name,
                                    "apiVersion": API_VERSIONS.get(p.kind, "v1")}
        if p.namespace:
            involved["namespace"] = p.namespace
        obj = self.store.get(p.kind, p.namespace, p.name)
        if obj is not None:
            involved.update(uid=obj.meta.uid, resourceVersion=obj.meta.resource_version)
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{p.name}.{time.time_ns():x}", "namespace": p.namespace or "default"},
            "involvedObject": involved,
            "reason": p.reason, "message": p.message[:1024], "type": "Warning",
            "source": {"component": COMPONENT, "host": self.instance},
            "reportingComponent": COMPONENT, "reportingInstance": self.instance,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }

    # -- background --------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()
