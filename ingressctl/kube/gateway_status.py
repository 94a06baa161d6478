"""Writing the Gateway API status `gateway.build` computed: GatewayClass, Gateway, HTTPRoute.

Design choice: the build computes every condition as data (gateway/status.py); this module
only copies it into the status subresources (JSON merge patch), in its own thread, only
while `is_leader()` is true, and only when the body differs from the one it last wrote.
An HTTPRoute's entries of other controllers are kept as they were read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from ..gateway.build import GatewayResult
from ..gateway.status import object_status_body, route_status_body
from ..ingress.build import BuildResult
from ..store import Store
from .client import MERGE_PATCH, RESOURCES, KubeClient, describe_failure
from .worker import PeriodicWorker

log = logging.getLogger(__name__)

Key = tuple[str, str, str]


class GatewayStatusWriter:
    def __init__(self, client: KubeClient, store: Store, controller: str, is_leader: Callable[[], bool],
                 resync_seconds: float = 30.0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client, self.store, self.controller = client, store, controller
        self.is_leader, self.clock = is_leader, clock
        self.result: GatewayResult | None = None
        self.written: dict[Key, str] = {}  # body without timestamps, as last written
        self.writes = 0
        self._worker = PeriodicWorker("gateway-status", resync_seconds, self.sync,
                                      lambda e: describe_failure(self.client.host, e),
                                      (ApiException, urllib3.exceptions.HTTPError, OSError))

    def observe(self, result: BuildResult) -> None:
        if isinstance(result.gateway, GatewayResult):
            self.result = result.gateway
            self._worker.poke()

    def poke(self) -> None:
        self.written.clear()  # a new leader writes everything once
        self._worker.poke()

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def desired(self, now: str) -> dict[Key, dict[str, Any]]:
        assert self.result is not None
        out: dict[Key, dict[str, Any]] = {}
        for s in self.result.statuses:
            out[(s.kind, s.namespace, s.name)] = object_status_body(s, now)
        snap = self.store.snapshot()
        routes = {"HTTPRoute": snap.http_routes, "GRPCRoute": snap.grpc_routes}
        for kind, key in sorted({(p.kind, p.route) for p in self.result.parents}):
            route = routes[kind].get(key)
            if route is not None:
                parents = [p for p in self.result.parents if (p.kind, p.route) == (kind, key)]
                out[(kind, route.meta.namespace, route.meta.name)] = route_status_body(
                    parents, route.status_parents, self.controller, now)
        return out

    def sync(self) -> int:
        if not self.is_leader() or self.result is None:
            return 0
        now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        n = 0
        for key, body in self.desired(now).items():
            stamp = json.dumps(body, sort_keys=True).replace(now, "")
            if self.written.get(key) == stamp or not self.is_leader():
                continue
            self._patch(key, body)
            self.written[key] = stamp
            n += 1
        self.writes += n
        return n

    def _patch(self, key: Key, body: dict[str, Any]) -> None:
        kind, namespace, name = key
        try:
            self.client.request("PATCH", RESOURCES[kind].path(namespace, name, "status"), body={"status": body},
                                content_type=MERGE_PATCH)
            log.info("status of %s %s written", kind, f"{namespace}/{name}" if namespace else name)
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile
                raise
