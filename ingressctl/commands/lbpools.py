"""`ingressctl proxy` flags for LoadBalancer IP pools and layer-2 announcement.

Kept out of commands/proxy.py so the proxy command only asks `from_args` for an optional
`LoadBalancerIPs` and wraps its snapshot function with it. In local mode (`--manifests`)
addresses go straight into the Services' statuses; with `--kubeconfig` they are written
to the API by the leader of the `--lb-lease` Lease, which also posts Events for Services
that got no address.

Design choice: one leader announces every address (a Lease in cluster mode, an flock on
`--lb-leader-lock` in local mode); spreading addresses over nodes is left for later.
"""

from __future__ import annotations

import argparse
import logging
import socket
import time
from typing import Any

from ..cli import UserError
from ..proxy.lb.announce import (
    AlwaysLeader,
    FileLockLeader,
    L2Announcer,
    Leadership,
    LoadBalancerIPs,
)
from ..proxy.lb.ipam import PoolError
from ..store import Snapshot

log = logging.getLogger(__name__)
CONFIGMAP_TTL = 10.0  # seconds between reads of a --lb-pools ConfigMap


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lb-pools", default="", metavar="FILE|configmap:NS/NAME",
                   help="LoadBalancer IP pools (YAML, see README); enables LoadBalancer address allocation")
    p.add_argument("--lb-claim-unclassed", action="store_true",
                   help="also give addresses to LoadBalancer Services without spec.loadBalancerClass (default: only "
                        "loadBalancerClass ingressctl.io/lb or an ingressctl.io/lb-pool annotation; leave off where "
                        "a cloud or another load-balancer controller serves unclassed Services)")
    p.add_argument("--lb-announce-interface", default="", metavar="IFACE",
                   help="while leading, hold the LoadBalancer addresses on IFACE and answer ARP for them")
    p.add_argument("--lb-leader-lock", default="", metavar="FILE",
                   help="local mode: lead only while holding an flock on FILE (default: always lead)")
    p.add_argument("--lb-lease", default="kube-system/ingressctl-lb", metavar="NS/NAME",
                   help="cluster mode: the Lease electing the allocating and announcing node "
                        "(default kube-system/ingressctl-lb)")


def from_args(args: argparse.Namespace) -> LoadBalancerIPs | None:
    if not args.lb_pools:
        if args.lb_announce_interface:
            raise UserError("--lb-announce-interface needs --lb-pools")
        return None
    announcer = L2Announcer(args.lb_announce_interface) if args.lb_announce_interface else None
    if args.manifests or not args.kubeconfig and args.dry_run:
        leader: Leadership = FileLockLeader(args.lb_leader_lock) if args.lb_leader_lock else AlwaysLeader()
        return LoadBalancerIPs(args.lb_pools, local_mode=True, leadership=leader, announcer=announcer,
                               claim_unclassed=args.lb_claim_unclassed)
    return _cluster(args, announcer)


def _cluster(args: argparse.Namespace, announcer: L2Announcer | None) -> LoadBalancerIPs:
    from kubernetes.client.exceptions import ApiException

    from ..ingress.model import Problem
    from ..kube.client import MERGE_PATCH, RESOURCES, KubeUnavailable, connect, describe_failure
    from ..kube.events import EventRecorder
    from ..kube.leader import LeaderElector
    from ..store import Store

    ns, _, name = args.lb_lease.partition("/")
    if not ns or not name:
        raise UserError("--lb-lease must be NAMESPACE/NAME")
    try:
        client = connect(args.kubeconfig)
    except KubeUnavailable as e:
        raise UserError(str(e)) from None
    elector = LeaderElector(client, ns, name, f"{args.node_name}-{socket.gethostname()}")
    events = EventRecorder(client, Store(), lambda: elector.is_leader)

    cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}

    def fetch(cm_ns: str, cm_name: str) -> dict[str, str] | None:
        """The ConfigMap's data (None: no such ConfigMap), read at most every CONFIGMAP_TTL s."""
        hit = cache.get((cm_ns, cm_name))
        if hit is not None and time.monotonic() - hit[0] < CONFIGMAP_TTL:
            return hit[1]
        try:
            raw: Any = client.request("GET", RESOURCES["ConfigMap"].path(cm_ns, cm_name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise PoolError(f"--lb-pools: reading ConfigMap {cm_ns}/{cm_name}: {describe_failure(client.host, e)}"
                            ) from None
        data = dict((raw or {}).get("data") or {})
        cache[(cm_ns, cm_name)] = (time.monotonic(), data)
        return data

    def write_status(svc: Any, ip: str) -> None:
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else None}}}
        client.request("PATCH", RESOURCES["Service"].path(svc.meta.namespace, svc.meta.name, "status"),
                       body=body, content_type=MERGE_PATCH)
        log.info("status of Service %s: %s", svc.meta.key, ip or "(none)")

    def report(problems: list[tuple[str, str]]) -> None:
        events.report(tuple(Problem("Service", key.partition("/")[0], key.partition("/")[2],
                                    "LoadBalancerAddress", reason) for key, reason in problems))

    return LoadBalancerIPs(args.lb_pools, local_mode=False, leadership=elector, announcer=announcer,
                           fetch_configmap=fetch, write_status=write_status, report=report,
                           claim_unclassed=args.lb_claim_unclassed)


def check(lb: LoadBalancerIPs, snapshot: Snapshot) -> None:
    try:
        lb.check(snapshot)
    except PoolError as e:
        raise UserError(str(e)) from None
