"""`ingressctl controller`: cluster mode. The Kubernetes API fills the Store, the shared sync
loop (`ingressctl.controller.Controller`, the one `ingressctl run` uses) builds, renders and
reloads nginx, and the leader of a Lease publishes Ingress status and Events.

Design choice: startup is strict and the steady state is forgiving. Before nginx starts, the
API must answer with our credentials and every kind must list completely (one line and
exit 1 otherwise); afterwards an unreachable API only pauses updates while nginx keeps
serving the last configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cli import UserError
from ..controller import Controller, ControllerOptions
from ..debug import debug_pages
from ..health import StatusServer, all_of
from ..ingress.model import Problem
from ..kube.client import KubeUnavailable, connect
from ..kube.events import EventRecorder
from ..kube.gateway_status import GatewayStatusWriter
from ..kube.leader import LeaderElector
from ..kube.status import AddressSource, StatusPublisher
from ..nginx.process import Nginx, NginxError
from ..sources.kube import DEFAULT_SECRET_SELECTOR, RESYNC, KubeSource, default_specs
from ..store import Store
from .common import (
    add_class_flags,
    add_nginx_flags,
    check_port,
    check_ports_free,
    check_state_dir,
    controller_options,
    lock_state_dir,
    shut_down,
    wait_for_signal,
)

log = logging.getLogger("ingressctl")
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "controller", help="cluster mode: watch the Kubernetes API and serve its Ingresses with nginx",
        description="List and watch Ingress, IngressClass, Service, EndpointSlice, TLS Secret and the "
        "controller ConfigMap; run nginx with the configuration they describe; the replica holding the "
        "election Lease writes Ingress status and Events.")
    g = p.add_argument_group("cluster")
    g.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig file (default: $KUBECONFIG, else the in-cluster service account, else "
                   "~/.kube/config)")
    g.add_argument("--watch-namespace", default="", metavar="NS", help="only watch this namespace (default all)")
    g.add_argument("--resync-period", type=float, default=RESYNC, metavar="S",
                   help=f"relist every kind this often, whatever the watches said (default {RESYNC:g}; 0: never)")
    g.add_argument("--secret-selector", default=DEFAULT_SECRET_SELECTOR, metavar="FIELDS",
                   help="field selector for the Secrets we read (default: all but service-account tokens, "
                   "Helm releases and image pull secrets); 'type=kubernetes.io/tls' if no auth annotations are used")
    pub = g.add_mutually_exclusive_group()
    pub.add_argument("--publish-service", default="", metavar="NS/NAME",
                     help="publish this Service's load-balancer addresses in Ingress status")
    pub.add_argument("--publish-status-address", default="", metavar="ADDR[,ADDR]",
                     help="publish these IPs or hostnames in Ingress status")
    e = p.add_argument_group("leader election")
    e.add_argument("--election-id", default="ingressctl-leader", metavar="NAME", help="Lease name")
    e.add_argument("--election-namespace", default="", metavar="NS",
                   help="Lease namespace (default: $POD_NAMESPACE, else the service account's, else default)")
    e.add_argument("--lease-duration", type=float, default=15.0, metavar="S", help="seconds (default 15)")
    e.add_argument("--renew-deadline", type=float, default=10.0, metavar="S", help="seconds (default 10)")
    e.add_argument("--retry-period", type=float, default=2.0, metavar="S", help="seconds (default 2)")
    e.add_argument("--event-interval", type=float, default=600.0, metavar="S",
                   help="count a persisting problem's Event again at most every S seconds (default 600)")
    w = p.add_argument_group("admission webhook")
    w.add_argument("--webhook-port", type=int, default=0, help="serve the validating webhook on this port")
    w.add_argument("--webhook-cert", default="", metavar="FILE", help="webhook serving certificate (PEM)")
    w.add_argument("--webhook-key", default="", metavar="FILE", help="webhook serving key (PEM)")
    add_nginx_flags(p, http=80, https=443, listen="*")
    add_class_flags(p)
    p.add_argument("--status-port", type=int, default=10254, help="/healthz, /readyz, /metrics (default 10254)")
    p.add_argument("--status-address", default="0.0.0.0", help="address of the status port (default 0.0.0.0)")
    p.set_defaults(func=cmd_controller)


def _check_flags(args: argparse.Namespace) -> None:
    for port, what in ((args.http_port, "--http-port"), (args.https_port, "--https-port"),
                       (args.status_port, "--status-port")):
        check_port(port, what)
    for value, flag in ((args.publish_service, "--publish-service"), (args.configmap, "--configmap")):
        if value and (value.count("/") != 1 or value.startswith("/") or value.endswith("/")):
            raise UserError(f"{flag} {value!r}: expected NAMESPACE/NAME")
    if not args.lease_duration > args.renew_deadline > args.retry_period > 0:
        raise UserError("leader election needs --lease-duration > --renew-deadline > --retry-period > 0")
    if args.webhook_port:
        check_port(args.webhook_port, "--webhook-port")
        for f, flag in ((args.webhook_cert, "--webhook-cert"), (args.webhook_key, "--webhook-key")):
            if not f or not Path(f).is_file():
                raise UserError(f"--webhook-port needs {flag} naming a PEM file (got {f!r})")


def election_namespace(args: argparse.Namespace) -> str:
    if args.election_namespace:
        return str(args.election_namespace)
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def identity() -> str:
    """Unique per process, readable in the Lease: POD_NAME (or host name) plus a random suffix."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _webhook(args: argparse.Namespace, store: Store, opts: ControllerOptions,
             observe: Callable[[bool, float], None] | None = None) -> Any:
    """The admission webhook in this process, validating against the controller's own Store."""
    if not args.webhook_port:
        return None
    from ..admission.options import validate_options
    from ..admission.server import start_webhook

    try:
        return start_webhook(store, lambda snap: validate_options(opts, snap), args.webhook_port,
                             args.webhook_cert, args.webhook_key, observe=observe)
    except ssl.SSLError as e:
        raise UserError(f"--webhook-cert/--webhook-key: cannot load the certificate: {e.reason or e}") from None
    except OSError as e:
        raise UserError(f"--webhook-port {args.webhook_port}: {e.strerror or e}") from None


def cmd_controller(args: argparse.Namespace) -> int:
    _check_flags(args)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # per-request and retry chatter; our errors are one line
    opts = controller_options(args)
    try:
        client = connect(args.kubeconfig)
        source = KubeSource(client, Store(), default_specs(args.watch_namespace, args.configmap,
                                                          args.secret_selector, gateway=True,
                                                          configmaps=(opts.tcp_services, opts.udp_services)),
                            resync=args.resync_period)
        versions = source.initial_sync()
    except KubeUnavailable as e:
        raise UserError(str(e)) from None
    check_state_dir(opts.state_dir)
    lock = lock_state_dir(opts.state_dir)  # noqa: F841 - held until we exit
    check_ports_free(opts)
    try:
        nginx = Nginx(opts.prefix)
    except NginxError as e:
        raise UserError(str(e)) from None
    ctl = Controller(source.store, opts, nginx)
    me = identity()
    elector = LeaderElector(client, election_namespace(args), args.election_id, me, args.lease_duration,
                            args.renew_deadline, args.retry_period)
    status = StatusPublisher(client, source.store, AddressSource(
        args.publish_status_address, args.publish_service, os.environ.get("NODE_NAME", "")),
        lambda: elector.is_leader)
    events = EventRecorder(client, source.store, lambda: elector.is_leader, instance=me,
                           repeat_seconds=args.event_interval,
                           extra=lambda: tuple(Problem(k, ns, n, "InvalidIngress", msg)
                                               for k, ns, n, msg in source.invalid_objects() if k == "Ingress"))

    gateway_status = GatewayStatusWriter(client, source.store, opts.gateway.controller_name, lambda: elector.is_leader)

    def leadership_changed(leader: bool) -> None:
        ctl.compat.leadership(me, leader)
        status.poke()
        gateway_status.poke()
        events.poke()

    elector.on_change = leadership_changed
    ctl.compat.leadership(me, False)
    ctl.observers += [status.observe, events.observe, gateway_status.observe]
    try:
        health = StatusServer(args.status_address, args.status_port, healthy=all_of(ctl.health), ready=ctl.readiness,
                              registry=ctl.metrics.registry,
                              pages=debug_pages(lambda: ctl.live_model, opts.prefix / "nginx.conf"))
    except OSError as e:
        raise UserError(f"status port {args.status_address}:{args.status_port}: {e.strerror}") from None
    webhook = _webhook(args, source.store, opts, ctl.compat.admission)
    health.start()
    ctl.start()
    source.start(versions)
    for part in (elector, status, events, gateway_status):
        part.start()
    log.info("controller %s watching %s at %s; status on :%d", me, args.watch_namespace or "all namespaces",
                client.host, health.port)
    signum = 0
    try:
        signum = wait_for_signal()
    finally:
        def stop_inputs() -> None:
            source.stop()
            for part in (status, events, gateway_status):
                part.stop()
            elector.stop(release=True)
            if webhook is not None:
                webhook.stop()

        shut_down(signum, ctl, args.shutdown_grace_period, stop_inputs)
        health.stop()
        client.close()
    return 0

