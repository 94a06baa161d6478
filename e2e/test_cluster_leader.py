"""Cluster mode with several replicas: every replica serves traffic, one Lease holder writes
Ingress status and Events, and leadership moves when the leader stops (released at once) or
dies (after the lease duration). Each replica has its own bearer token, so the API server
double can tell who wrote what.
"""

# ruff: noqa: F811 - the fixtures `api` and `cluster_controllers` are imported from .cluster
from __future__ import annotations

import re
from pathlib import Path

from .cluster import (
    CLASS,
    ApiServer,
    ClusterController,
    api,  # noqa: F401 - fixture
    cluster_controllers,  # noqa: F401 - fixture
    endpoint_slice,
    ingress,
    ingress_status,
    lease_holder,
    service,
    start_controller,
)
from .harness import Backends, wait_until

ADDRESS = "192.0.2.10"  # TEST-NET-1: only ever written into status, never connected to


def _writers(api: ApiServer, resource: str, verbs: tuple[str, ...] = ("patch", "create")) -> set[str]:
    return {r[0] for r in api.requests if r[3] == resource and r[1] in verbs}


def _leader(api: ApiServer, replicas: list[ClusterController]) -> ClusterController:
    holder = lease_holder(api)
    matches = [c for c in replicas if holder.startswith(f"{c.name}_")]
    assert len(matches) == 1, f"lease holder {holder!r} is not exactly one of the replicas"
    return matches[0]


def _leading(replica: ClusterController) -> float:
    m = re.search(r"^nginx_ingress_controller_leader_election_status\{[^}]*\} (\S+)$", replica.status("/metrics")[1],
                  re.M)
    return float(m.group(1)) if m else -1.0


def test_one_leader_writes_status_and_events_and_leadership_moves(
        tmp_path: Path, api: ApiServer, backends: Backends, cluster_controllers: list[ClusterController]) -> None:
    a = backends.start("a")
    api.apply(CLASS, service("web"), endpoint_slice("web", [a]), ingress("app", "app.example.com", "web"))
    flags = ("--publish-status-address", ADDRESS, "--event-interval", "1")
    r1 = start_controller(cluster_controllers, tmp_path, api, "r1", *flags)
    r2 = start_controller(cluster_controllers, tmp_path, api, "r2", *flags)
    for r in (r1, r2):  # every replica serves, leader or not
        wait_until(lambda r=r: r.get("app.example.com").backend == "a", 5, f"{r.name} serves")

    wait_until(lambda: ingress_status(api, "default", "app") == [{"ip": ADDRESS}], 10, "status written")
    leader = _leader(api, [r1, r2])
    follower = r2 if leader is r1 else r1
    assert _writers(api, "ingresses/status") == {leader.token}

    # a broken Ingress: one Warning Event on it, counted again (not duplicated) while it persists
    api.apply(ingress("broken", "broken.example.com", "missing"))
    wait_until(lambda: _events_for(api, "broken"), 5, "Event for the broken Ingress")
    api.apply(service("other"))  # more syncs with the problem still there
    wait_until(lambda: _events_for(api, "broken")[0].get("count", 1) >= 2, 5, "Event counted again")
    events = _events_for(api, "broken")
    assert len(events) == 1 and events[0]["reason"] == "ServiceNotFound", events
    assert events[0]["involvedObject"]["uid"] == api.get("Ingress", "default", "broken")["metadata"]["uid"]
    assert _writers(api, "events") == {leader.token}
    # ingress-nginx's metric names: who leads, and the Ingress whose Service is missing
    assert _leading(leader) == 1.0 and _leading(follower) == 0.0
    assert re.search(r'^nginx_ingress_controller_orphan_ingress\{[^}]*ingress="broken"[^}]*type="no-service"'
                     r'[^}]*\} 1\.0$', leader.status("/metrics")[1], re.M)

    # the leader stops cleanly: it releases the Lease and the follower takes over at once
    leader.stop()
    wait_until(lambda: lease_holder(api).startswith(f"{follower.name}_"), 5, "follower takes the Lease")
    api.apply(ingress("app2", "app2.example.com", "web"))
    wait_until(lambda: ingress_status(api, "default", "app2") == [{"ip": ADDRESS}], 5, "new leader writes")
    assert follower.token in _writers(api, "ingresses/status")

    # a replica dies without releasing: another takes over once the lease expires
    r3 = start_controller(cluster_controllers, tmp_path, api, "r3", *flags)
    follower.kill()
    wait_until(lambda: lease_holder(api).startswith("r3_"), 10, "r3 takes the expired Lease")
    api.apply(ingress("app3", "app3.example.com", "web"))
    wait_until(lambda: ingress_status(api, "default", "app3") == [{"ip": ADDRESS}], 5, "r3 writes status")
    assert r3.get("app3.example.com").backend == "a"
    lease = api.get("Lease", "ingressctl", "ingressctl-leader")["spec"]
    assert lease["leaseTransitions"] >= 2, lease


def _events_for(api: ApiServer, name: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in api.list("Event", "default") if e["involvedObject"]["name"] == name]
