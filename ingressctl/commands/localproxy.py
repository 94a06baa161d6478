"""`ingressctl run --proxy`: the userspace Service proxy next to nginx, on the same Store.

With `--proxy`, local mode also makes the directory's Services reachable the way a
cluster would: cluster IPs (in 127.96.0.0/16, bindable on loopback), nodePorts on
`--proxy-nodeport-addresses` (default 127.0.0.1/32), and LoadBalancer Services on the
addresses `--lb-pools` gives them. No root, no netfilter.

Design choice: the proxy shares the controller's Store and runs its own SyncLoop thread,
so a manifest edit reaches nginx and the proxy from one read of the directory.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable

from ..cli import UserError
from ..proxy.backends.base import ProxyOptions
from ..proxy.backends.userspace_backend import UserspaceBackend
from ..proxy.core.tracker import ServiceTracker
from ..proxy.lb.announce import LoadBalancerIPs
from ..proxy.lb.ipam import PoolError
from ..proxy.sync import SyncLoop
from ..store import Snapshot, Store


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proxy", action="store_true",
                   help="also run the userspace Service proxy (cluster IPs, nodePorts, LoadBalancer IPs)")
    p.add_argument("--proxy-nodeport-addresses", default="127.0.0.1/32", metavar="CIDR[,CIDR]",
                   help="with --proxy: where nodePorts listen (default 127.0.0.1/32)")
    p.add_argument("--lb-pools", default="", metavar="FILE",
                   help="with --proxy: LoadBalancer IP pools (see README), e.g. a range in 127.0.0.0/8")


def start(args: argparse.Namespace, store: Store) -> Callable[[], None]:
    """Start the proxy if --proxy was given; returns the function that stops it."""
    if not args.proxy:
        if args.lb_pools:
            raise UserError("--lb-pools needs --proxy")
        return lambda: None
    cidrs = tuple(c.strip() for c in args.proxy_nodeport_addresses.split(",") if c.strip())
    backend = UserspaceBackend(ProxyOptions(nodeport_addresses=cidrs))
    # local mode is a sandbox with no other load-balancer controller: every LoadBalancer Service takes part
    lb = LoadBalancerIPs(args.lb_pools, local_mode=True, claim_unclassed=True) if args.lb_pools else None
    snapshot: Callable[[], Snapshot] = (lambda: lb.snapshot(store.snapshot())) if lb else store.snapshot
    try:
        backend.check()
        if lb:
            lb.check(store.snapshot())
    except (PoolError, ValueError) as e:
        raise UserError(str(e)) from None
    loop = SyncLoop(backend, snapshot, ServiceTracker(), min_sync_period=0.2)
    loop.sync_once(full=True)
    store.subscribe(loop.notify)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), name="proxy-sync", daemon=True)
    thread.start()

    def stop_proxy() -> None:
        stop.set()
        thread.join(timeout=5)
        backend.cleanup()
    return stop_proxy
