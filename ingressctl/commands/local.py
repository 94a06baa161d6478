"""`ingressctl run`, `render` and `validate`: local mode on a directory of manifests."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..admission.options import validate_options
from ..admission.validate import validate_snapshot
from ..cli import UserError
from ..controller import Controller, settings_from
from ..debug import debug_pages
from ..gateway.build import route_invalid
from ..health import StatusServer, all_of
from ..ingress.model import Problem
from ..nginx.process import Nginx, NginxError
from ..nginx.render import RenderError
from ..sources.allocate import DEFAULT_SERVICE_CIDR, AddressAllocator
from ..sources.files import ManifestDirectory
from ..store import Snapshot, Store
from . import localproxy
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


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser(
        "run", help="local mode: serve a directory of manifests with nginx, reloading on every change",
        description="Read Ingress, IngressClass, Service, EndpointSlice, Secret and ConfigMap objects from a "
        "directory of YAML files, run nginx with the configuration they describe, and follow every edit "
        "(no restart). /readyz on the status port answers 200 once the first configuration is live.")
    _manifest_flags(run)
    add_nginx_flags(run, http=8080, https=8443, listen="127.0.0.1")
    add_class_flags(run)
    run.add_argument("--status-port", type=int, default=10254, help="/healthz, /readyz, /metrics (default 10254)")
    run.add_argument("--status-address", default="127.0.0.1", help="address of the status port (default 127.0.0.1)")
    localproxy.add_arguments(run)
    run.set_defaults(func=cmd_run)

    render = sub.add_parser("render", help="print the nginx.conf for a directory of manifests",
                            description="Build and render the configuration without starting nginx. The files "
                            "it refers to (certificates, the default certificate, Lua, the endpoint table, temp "
                            "directories) are written under the state dir, so `nginx -t -p STATE/nginx -c FILE` "
                            "passes; without --state-dir a fresh temporary one is used (never a running "
                            "instance's).")
    _manifest_flags(render)
    add_nginx_flags(render, http=8080, https=8443, listen="127.0.0.1")
    add_class_flags(render)
    render.set_defaults(func=cmd_render)

    validate = sub.add_parser("validate", help="check manifests offline (exit 1 with reasons)",
                              description="Run the admission checks on every Ingress of a directory, a file or "
                              "stdin; print one line per problem (ConfigMap keys included); exit 1 if any "
                              "Ingress would be refused or a ConfigMap value is invalid.")
    _manifest_flags(validate, required=False)
    validate.add_argument("-f", "--filename", type=Path, default=None, metavar="FILE",
                          help="a manifest file instead of --manifests ('-': stdin)")
    validate.add_argument("--enable-ssl-passthrough", action="store_true",
                          help="judge as a controller running with --enable-ssl-passthrough")
    add_class_flags(validate)
    validate.set_defaults(func=cmd_validate)


def _manifest_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--manifests", required=required, type=Path, metavar="DIR", help="directory of YAML manifests")
    p.add_argument("--service-cidr", default=DEFAULT_SERVICE_CIDR,
                   help=f"range for clusterIPs assigned to Services without one (default {DEFAULT_SERVICE_CIDR})")


def load_store(args: argparse.Namespace, log_reads: bool = False) -> tuple[Store, ManifestDirectory]:
    if not args.manifests.is_dir():
        raise UserError(f"--manifests {args.manifests}: not a directory")
    store = Store()
    try:
        source = ManifestDirectory(args.manifests, store, AddressAllocator(service_cidr=args.service_cidr),
                                   log_reads=log_reads)
    except ValueError as e:
        raise UserError(f"--service-cidr: {e}") from None
    source.load()
    return store, source


def cmd_run(args: argparse.Namespace) -> int:
    for port, what in ((args.http_port, "--http-port"), (args.https_port, "--https-port"),
                       (args.status_port, "--status-port")):
        check_port(port, what)
    if not args.manifests.is_dir():
        raise UserError(f"--manifests {args.manifests}: not a directory")
    opts = controller_options(args)
    check_state_dir(opts.state_dir)
    lock = lock_state_dir(opts.state_dir)  # noqa: F841 - held until we exit
    check_ports_free(opts)
    store, source = load_store(args, log_reads=True)
    try:
        nginx = Nginx(opts.prefix)
    except NginxError as e:
        raise UserError(str(e)) from None
    ctl = Controller(store, opts, nginx)
    try:
        status = StatusServer(args.status_address, args.status_port, healthy=all_of(ctl.health, source.health),
                              ready=ctl.readiness,
                              registry=ctl.metrics.registry,
                              pages=debug_pages(lambda: ctl.live_model, opts.prefix / "nginx.conf"))
    except OSError as e:
        raise UserError(f"status port {args.status_address}:{args.status_port}: {e.strerror}") from None
    status.start()
    ctl.start()
    stop_proxy = localproxy.start(args, store)
    source.watch()
    log.info("serving %s on http://%s:%d and https port %d (state %s); status on :%d",
                args.manifests, (args.listen_address or ["127.0.0.1"])[0], args.http_port, args.https_port,
                opts.state_dir, status.port)
    signum = 0
    try:
        signum = wait_for_signal()
    finally:
        def stop_inputs() -> None:
            source.stop()
            stop_proxy()

        shut_down(signum, ctl, args.shutdown_grace_period, stop_inputs)
        status.stop()
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    store, _ = load_store(args)
    fresh = args.state_dir is None
    if fresh:  # never the default state dir of a running `ingressctl run`
        args.state_dir = Path(tempfile.mkdtemp(prefix="ingressctl-render-"))
        os.chmod(args.state_dir, 0o755)
    opts = controller_options(args)
    ctl = Controller(store, opts)
    try:
        rendered = ctl.render_snapshot(store.snapshot())
    except RenderError as e:
        raise UserError(str(e)) from None
    try:
        ctl.prepare_state(rendered)
    except OSError as e:
        raise UserError(f"state dir {opts.state_dir}: {e.strerror or e}") from None
    sys.stdout.write(rendered.text)
    if fresh:
        print(f"ingressctl render: files under {opts.state_dir}; test with: nginx -t -p {opts.prefix} -c FILE",
              file=sys.stderr)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """The admission checks (admission.validate), offline: the same verdicts the webhook gives."""
    if (args.filename is None) == (args.manifests is None):
        raise UserError("give --manifests DIR or -f FILE (or -f - for stdin)")
    if args.filename is not None:
        with tempfile.TemporaryDirectory(prefix="ingressctl-validate-") as tmp:
            args.manifests = Path(tmp)
            shown = "stdin" if str(args.filename) == "-" else str(args.filename)
            try:
                text = sys.stdin.read() if shown == "stdin" else args.filename.read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise UserError(f"-f {shown}: {e}") from None
            (Path(tmp) / "manifests.yaml").write_text(text)
            return _validate(args, lambda m: m.replace(str(Path(tmp) / "manifests.yaml"), shown))
    return _validate(args, lambda m: m)


def _validate(args: argparse.Namespace, name: Callable[[str], str]) -> int:
    store, source = load_store(args)
    snap = store.snapshot()
    settings_problems = _configmap_problems(snap, args.configmap)
    verdicts = validate_snapshot(snap, validate_options(controller_options(args), snap))
    errors = [name(str(p)) for p in source.problems]
    errors += [str(p) for p in settings_problems if p.reason != "UnknownConfigMapKey"]
    errors += [f"{v.kind} {v.ingress}: {r}" for v in verdicts for r in v.reasons]
    # a route whose Gateway is not among the manifests: its values are still checked
    unattached = {(v.kind, v.ingress) for v in verdicts if v.kind != "Ingress" and v.allowed and v.warnings}
    errors += [f"{route.meta.kind} {key}: {why}"
               for key, route in sorted([*snap.http_routes.items(), *snap.grpc_routes.items()])
               if (route.meta.kind, key) in unattached and (why := route_invalid(route))]
    warnings = [str(p) for p in settings_problems if p.reason == "UnknownConfigMapKey"]
    warnings += list(dict.fromkeys(f"{v.kind} {v.ingress}: {w}" for v in verdicts for w in v.warnings))
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    valid = sum(1 for v in verdicts if v.allowed and v.kind == "Ingress")
    routes = f", {sum(1 for v in verdicts if v.allowed and v.kind != 'Ingress')} route(s) valid" \
        if snap.http_routes or snap.grpc_routes else ""
    print(f"{valid} Ingress(es) valid{routes}, {len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors else 0


def _configmap_problems(snap: Snapshot, configmap: str) -> list[Problem]:
    """The controller ConfigMap's problems as the controller reports them (not found, bad
    values kept at their defaults, unknown keys)."""
    _, problems = settings_from(snap, configmap)
    return problems
