"""`ingressctl proxy`: the Service proxy (our kube-proxy) over a manifest directory or a cluster.

Fills a Store from `--manifests DIR` (clusterIPs and nodePorts assigned from
`--service-cidr` as the API server would) or from the API (`--kubeconfig`), tracks which
Service ports changed, and syncs the chosen backend: at most once per `--min-sync-period`,
fully every `--sync-period`. `--dry-run` prints the exact ruleset a fresh sync would apply,
`--once` syncs and exits, `--cleanup` removes everything the backend owns.

Design choice: modes are a dict from name to backend factory (`BACKEND_FACTORIES`); the
command knows nothing of any backend beyond the `Backend` protocol, so userspace and ipvs
plug in by filling their entry.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..cli import UserError
from ..proxy.backends.base import ApplyError, Backend, BackendUnavailable, ProxyOptions
from ..proxy.backends.iptables import IptablesBackend
from ..proxy.backends.nftables import NftablesBackend
from ..proxy.core.tracker import ServiceTracker
from ..proxy.sync import SyncLoop
from ..proxy.system.conntrack import ConntrackCleaner
from ..store import Snapshot, Store
from . import lbpools

log = logging.getLogger(__name__)

BackendFactory = Callable[[argparse.Namespace, ProxyOptions], Backend]

# Dispatch point: mode -> backend factory. None marks a mode this build does not have yet.
# The userspace and ipvs modes (issue 7) plug in here with a factory of the same shape.
BACKEND_FACTORIES: dict[str, BackendFactory | None] = {
    "iptables": lambda args, opts: IptablesBackend(opts),
    "nftables": lambda args, opts: NftablesBackend(opts),
    "userspace": lambda args, opts: _userspace(args, opts),
    "ipvs": lambda args, opts: _ipvs(args, opts),
}
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
CONNTRACK_MODES = ("iptables", "nftables")  # kernel NAT: stale UDP conntrack entries are deleted


def register(sub: Any) -> None:
    p = sub.add_parser("proxy", help="the Service proxy: ClusterIP, NodePort, LoadBalancer, externalIPs",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=sorted(BACKEND_FACTORIES), default="iptables",
                   help="how Services are made reachable (default iptables)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--kubeconfig", metavar="FILE", help="read Services and EndpointSlices from this cluster")
    src.add_argument("--manifests", metavar="DIR", help="read them from YAML files in DIR (watched)")
    p.add_argument("--once", action="store_true", help="sync once and exit")
    p.add_argument("--dry-run", action="store_true", help="print the ruleset instead of applying it")
    p.add_argument("--cleanup", action="store_true", help="remove every rule and chain this proxy owns, exit")
    p.add_argument("--node-name", default=socket.gethostname(),
                   help="this node's name, for endpoints' nodeName (default: the hostname)")
    p.add_argument("--cluster-cidr", default="", metavar="CIDR",
                   help="pod CIDR; traffic from outside it to a cluster IP is masqueraded")
    p.add_argument("--masquerade-all", action="store_true", help="masquerade all traffic to Services")
    p.add_argument("--service-cidr", default="", metavar="CIDR",
                   help=f"with --manifests: where clusterIPs are assigned (default {DEFAULT_SERVICE_CIDR}; "
                        "127.96.0.0/16 in userspace mode, bindable on loopback)")
    p.add_argument("--nodeport-addresses", default="", metavar="CIDR[,CIDR]",
                   help="node addresses nodePorts answer on (default: every local address but loopback)")
    p.add_argument("--min-sync-period", type=float, default=1.0, metavar="SECONDS",
                   help="at most one sync this often (default 1)")
    p.add_argument("--sync-period", type=float, default=30.0, metavar="SECONDS",
                   help="full resync this often (default 30)")
    p.add_argument("--status-port", type=int, default=10256, help="/healthz and /metrics port, 0 for none "
                   "(default 10256)")
    p.add_argument("--status-address", default="127.0.0.1", help="address of the status port (default 127.0.0.1)")
    p.add_argument("--scheduler", default="rr", metavar="NAME",
                   help="userspace/ipvs: default scheduler (rr wrr lc wlc sed nq sh dh mh); "
                        "per Service: annotation ingressctl.io/scheduler (default rr)")
    lbpools.add_arguments(p)
    p.add_argument("--chain-prefix", default="ICP", help="iptables chain name prefix (default ICP)")
    p.add_argument("--nft-table", default="ingressctl", help="nftables table name (default ingressctl)")
    p.set_defaults(func=run_proxy)


def _cidrs(text: str, flag: str) -> tuple[str, ...]:
    out = []
    for part in filter(None, (x.strip() for x in text.split(","))):
        try:
            net = ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise UserError(f"{flag}: {part!r} is not a CIDR") from None
        if net.version != 4:
            raise UserError(f"{flag}: {part} is IPv6; this build programs IPv4 only")
        out.append(str(net))
    return tuple(out)


def proxy_options(args: argparse.Namespace) -> ProxyOptions:
    cluster = _cidrs(args.cluster_cidr, "--cluster-cidr")
    if len(cluster) > 1:
        raise UserError("--cluster-cidr takes one CIDR")
    if not args.chain_prefix.isalnum() or len(args.chain_prefix) > 8:
        raise UserError("--chain-prefix must be 1-8 letters or digits")
    if args.min_sync_period < 0 or args.sync_period <= 0:
        raise UserError("--min-sync-period must be >= 0 and --sync-period > 0")
    return ProxyOptions(cluster_cidr=cluster[0] if cluster else "", masquerade_all=args.masquerade_all,
                        nodeport_addresses=_cidrs(args.nodeport_addresses, "--nodeport-addresses"),
                        chain_prefix=args.chain_prefix, nft_table=args.nft_table)


def _scheduler(args: argparse.Namespace) -> str:
    from ..proxy.core.schedulers import SchedulerError, parse_scheduler
    try:
        return str(parse_scheduler(args.scheduler))
    except SchedulerError as e:
        raise UserError(f"--scheduler: {e}") from None


def _userspace(args: argparse.Namespace, options: ProxyOptions) -> Backend:
    from ..proxy.backends.userspace_backend import UserspaceBackend
    return UserspaceBackend(options, _scheduler(args))


def _ipvs(args: argparse.Namespace, options: ProxyOptions) -> Backend:
    from ..proxy.backends.ipvs import IpvsBackend
    return IpvsBackend(options, _scheduler(args))


def make_backend(args: argparse.Namespace, options: ProxyOptions) -> Backend:
    factory = BACKEND_FACTORIES.get(args.mode)
    if factory is None:
        raise UserError(f"--mode {args.mode} is not available in this build (iptables and nftables are)")
    return factory(args, options)


def _default_cidr(args: argparse.Namespace) -> str:
    """userspace mode on manifests: cluster IPs on loopback, bindable without root."""
    if args.mode == "userspace":
        from ..sources.allocate import DEFAULT_SERVICE_CIDR as LOOPBACK_CIDR
        return LOOPBACK_CIDR
    return DEFAULT_SERVICE_CIDR


def _fill_store(args: argparse.Namespace, store: Store, watch: bool) -> Callable[[], None]:
    """Load the source into the store (and keep watching if asked); returns a stop function."""
    if args.manifests:
        from ..sources.allocate import AddressAllocator
        from ..sources.files import ManifestDirectory
        try:
            source = ManifestDirectory(args.manifests, store,
                                       AddressAllocator(service_cidr=args.service_cidr or _default_cidr(args)))
        except ValueError as e:
            raise UserError(f"--service-cidr: {e}") from None
        try:
            source.load()
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
        if watch:
            source.watch()
        return source.stop
    try:
        from ..kube.client import KubeClient, KubeUnavailable, load_configuration
        from ..sources.kube import KubeSource, WatchSpec
    except ImportError as e:
        raise UserError(f"--kubeconfig needs ingressctl.sources.kube, which this build lacks ({e})") from None
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # failures end in one line below
    try:  # no probe of other kinds: a proxy may only list/watch Services and EndpointSlices
        client = KubeClient(load_configuration(args.kubeconfig))
        kube = KubeSource(client, store, [WatchSpec("Service"), WatchSpec("EndpointSlice")])
        versions = kube.initial_sync()
    except KubeUnavailable as e:
        raise UserError(str(e)) from None
    if watch:
        kube.start(versions)
    return kube.stop


def run_proxy(args: argparse.Namespace) -> int:
    options = proxy_options(args)
    backend = make_backend(args, options)
    if args.cleanup:
        _check(backend)
        backend.cleanup()
        print(f"removed the {args.mode} rules of this proxy", file=sys.stderr)
        return 0
    store = Store()
    tracker = ServiceTracker(node_name=args.node_name)
    lb = lbpools.from_args(args)
    snapshot: Callable[[], Snapshot] = (lambda: lb.snapshot(store.snapshot())) if lb else store.snapshot
    if args.dry_run:
        _fill_store(args, store, watch=False)()
        if lb:
            lbpools.check(lb, store.snapshot())
        table, _ = tracker.update(snapshot())
        sys.stdout.write(backend.render(table))
        return 0
    _check(backend)
    stop_source = _fill_store(args, store, watch=not args.once)
    if lb:
        lbpools.check(lb, store.snapshot())
    cleaner = ConntrackCleaner() if args.mode in CONNTRACK_MODES else None
    loop = SyncLoop(backend, snapshot, tracker, args.min_sync_period, args.sync_period, cleaner=cleaner)
    try:
        if args.once:
            result = loop.sync_once(full=True)
            print(f"synced {len(tracker.table.services)} Service ports, {result.rules_written if result else 0} "
                  "rules", file=sys.stderr)
            return 0
        if lb:
            lb.start()
        try:
            return _serve(args, store, loop)
        finally:
            if lb:
                lb.stop()
    except ApplyError as e:
        raise UserError(str(e)) from None
    finally:
        stop_source()


def _check(backend: Backend) -> None:
    try:
        backend.check()
    except BackendUnavailable as e:
        raise UserError(str(e)) from None


def _serve(args: argparse.Namespace, store: Store, loop: SyncLoop) -> int:
    from ..health import StatusServer
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    status = None
    if args.status_port:
        try:
            status = StatusServer(args.status_address, args.status_port, loop.healthy,
                                  loop.healthy, loop.metrics.registry).start()
        except OSError as e:
            raise UserError(f"--status-port {args.status_port}: {e.strerror}") from None
    store.subscribe(loop.notify)
    log.info("proxy running in %s mode", args.mode)
    try:
        loop.run(stop)
    finally:
        if status is not None:
            status.stop()
    return 0
