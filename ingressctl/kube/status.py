"""Publishing `status.loadBalancer.ingress` on the Ingresses we serve.

The addresses come from, in order: `--publish-status-address` (IPs or hostnames),
`--publish-service NS/NAME` (that Service's load-balancer status, else its externalIPs), or
the Node this replica runs on (`NODE_NAME`; ExternalIP addresses, else InternalIP) for
hostNetwork DaemonSets. Ingresses in `BuildResult.statuses` (ours, valid) get exactly those
addresses; from every other Ingress we remove the addresses we published, so an Ingress
that leaves our class stops advertising us, and other controllers' entries stay.

Design choice: the build only *says* which Ingresses are ours (`statuses`); this module
does the writes, in its own thread, and only while `is_leader()` is true. Writes are JSON
merge patches of the status subresource, sent only when the status differs.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from ..ingress.build import BuildResult
from ..objects import LoadBalancerIngress
from ..store import Store
from .client import MERGE_PATCH, RESOURCES, KubeClient, describe_failure
from .worker import PeriodicWorker

log = logging.getLogger(__name__)


def parse_addresses(text: str) -> tuple[LoadBalancerIngress, ...]:
    """'1.2.3.4,lb.example.com' -> typed entries (an IP goes to .ip, anything else .hostname)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(LoadBalancerIngress(ip=str(ipaddress.ip_address(part))))
        except ValueError:
            out.append(LoadBalancerIngress(hostname=part))
    return _sorted(out)


def _sorted(items: Any) -> tuple[LoadBalancerIngress, ...]:
    return tuple(sorted(set(items), key=lambda a: (a.ip, a.hostname)))


def service_addresses(raw: dict[str, Any]) -> tuple[LoadBalancerIngress, ...]:
    lb = ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    found = [LoadBalancerIngress(ip=i.get("ip", ""), hostname=i.get("hostname", "")) for i in lb]
    if not found:
        found = [LoadBalancerIngress(ip=ip) for ip in (raw.get("spec") or {}).get("externalIPs") or []]
    return _sorted(found)


def node_addresses(raw: dict[str, Any]) -> tuple[LoadBalancerIngress, ...]:
    addrs = (raw.get("status") or {}).get("addresses") or []
    for wanted in ("ExternalIP", "InternalIP"):
        found = [LoadBalancerIngress(ip=a["address"]) for a in addrs if a.get("type") == wanted and a.get("address")]
        if found:
            return _sorted(found)
    return ()


@dataclass(frozen=True)
class AddressSource:
    """Where our published address comes from; exactly one field is set (or none)."""

    status_address: str = ""  # --publish-status-address
    service: str = ""  # --publish-service ns/name
    node_name: str = ""  # $NODE_NAME

    def resolve(self, client: KubeClient) -> tuple[LoadBalancerIngress, ...] | None:
        """Our addresses now; None (or empty) when they cannot be known: no status is touched then."""
        if self.status_address:
            return parse_addresses(self.status_address)
        if self.service:
            ns, _, name = self.service.partition("/")
            return service_addresses(client.request("GET", RESOURCES["Service"].path(ns, name)))
        if self.node_name:
            return node_addresses(client.request("GET", RESOURCES["Node"].path("", self.node_name)))
        return None


def desired_status(current: tuple[LoadBalancerIngress, ...], ours: bool, addresses: tuple[LoadBalancerIngress, ...],
                   published: set[LoadBalancerIngress]) -> tuple[LoadBalancerIngress, ...]:
    """The status an Ingress should have (pure)."""
    if ours:
        return addresses
    return _sorted(a for a in current if a not in published)


class StatusPublisher:
    def __init__(self, client: KubeClient, store: Store, source: AddressSource,
                 is_leader: Callable[[], bool], resync_seconds: float = 30.0) -> None:
        self.client, self.store, self.source = client, store, source
        self.is_leader = is_leader
        self.resync_seconds = resync_seconds
        self.published: set[LoadBalancerIngress] = set()
        self.writes = 0
        self._ours: set[tuple[str, str]] | None = None
        self._worker = PeriodicWorker("status", resync_seconds, self.sync,
                                      lambda e: describe_failure(self.client.host, e),
                                      (ApiException, urllib3.exceptions.HTTPError, OSError))

    def observe(self, result: BuildResult) -> None:
        """Controller observer: remember which Ingresses are ours and sync soon."""
        self._ours = {(s.namespace, s.name) for s in result.statuses}
        self._worker.poke()

    def poke(self) -> None:
        """Sync again now (leadership changed)."""
        self._worker.poke()

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def sync(self) -> int:
        """Write every status that differs; returns how many writes were made."""
        if not self.is_leader() or self._ours is None:
            return 0
        addresses = self.source.resolve(self.client)
        if not addresses:  # unknown, or the published Service has no address yet: keep what is there
            return 0
        self.published |= set(addresses)
        n = 0
        for ing in list(self.store.snapshot().ingresses.values()):
            key = (ing.meta.namespace, ing.meta.name)
            want = desired_status(ing.status, key in self._ours, addresses, self.published)
            if _sorted(ing.status) != want and self.is_leader():
                self._patch(ing.meta.namespace, ing.meta.name, want)
                n += 1
        self.writes += n
        return n

    def _patch(self, namespace: str, name: str, addresses: tuple[LoadBalancerIngress, ...]) -> None:
        entries = [{"ip": a.ip} if a.ip else {"hostname": a.hostname} for a in addresses]
        body = {"status": {"loadBalancer": {"ingress": entries or None}}}
        try:
            self.client.request("PATCH", RESOURCES["Ingress"].path(namespace, name, "status"), body=body,
                                content_type=MERGE_PATCH)
            log.info("status of Ingress %s/%s: %s", namespace, name,
                     ", ".join(a.ip or a.hostname for a in addresses) or "(none)")
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile: nothing to do
                raise
