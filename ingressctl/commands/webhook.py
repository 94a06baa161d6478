"""`ingressctl webhook`: the validating admission webhook on its own.

The Store comes from a manifest directory (`--manifests`, followed with watchdog) or from
the cluster (`--kubeconfig`, list + watch). Verdicts use the same class filter, ConfigMap
settings and templates as the controller would (`admission.options.validate_options`).
"""

from __future__ import annotations

import argparse
import logging
import ssl
from pathlib import Path
from typing import Any

from ..admission.options import validate_options
from ..admission.server import start_webhook
from ..cli import UserError
from ..store import Store
from .common import add_class_flags, check_port, controller_options, wait_for_signal

log = logging.getLogger("ingressctl")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "webhook", help="run the validating admission webhook alone (HTTPS, AdmissionReview v1)",
        description="Serve AdmissionReview v1 for Ingress CREATE/UPDATE at /networking/v1/ingresses over "
        "HTTPS (TLS 1.2+), and /healthz. Verdicts are computed in memory; nginx is never run. The certificate "
        "files are watched and reloaded when they change (a rotated Secret needs no restart).")
    p.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
    p.add_argument("--address", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    p.add_argument("--cert", required=True, type=Path, help="serving certificate (PEM, chain allowed)")
    p.add_argument("--key", required=True, type=Path, help="private key of --cert (PEM)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--kubeconfig", default=None, help="read objects from this cluster")
    src.add_argument("--manifests", type=Path, default=None, metavar="DIR", help="read objects from a directory")
    p.add_argument("--watch-namespace", default="", help="only Ingresses (and Services...) of this namespace")
    p.add_argument("--template-dir", type=Path, default=None, help="the controller's template overrides")
    add_class_flags(p)
    p.set_defaults(func=cmd_webhook)


def _source(args: argparse.Namespace, store: Store) -> Any:
    if args.manifests is not None:
        from ..sources.files import ManifestDirectory

        if not args.manifests.is_dir():
            raise UserError(f"--manifests {args.manifests}: not a directory")
        source = ManifestDirectory(args.manifests, store)
        source.load()
        source.watch()
        return source
    from ..kube.client import KubeUnavailable, connect
    from ..sources.kube import KubeSource, default_specs

    try:
        kube = KubeSource(connect(args.kubeconfig), store, default_specs(args.watch_namespace, args.configmap))
        kube.start(kube.initial_sync())
    except KubeUnavailable as e:
        raise UserError(str(e)) from None
    return kube


def cmd_webhook(args: argparse.Namespace) -> int:
    check_port(args.port, "--port")
    for f, what in ((args.cert, "--cert"), (args.key, "--key")):
        if not f.is_file():
            raise UserError(f"{what} {f}: no such file")
    store = Store()
    source = _source(args, store)
    copts = controller_options(args)
    try:
        hook = start_webhook(store, lambda snap: validate_options(copts, snap), args.port, args.cert, args.key,
                             args.address)
    except ssl.SSLError as e:
        raise UserError(f"--cert/--key: cannot load the certificate: {e.reason or e}") from None
    except OSError as e:
        raise UserError(f"cannot serve on {args.address}:{args.port}: {e.strerror or e}") from None
    log.warning("admission webhook on https://%s:%d/networking/v1/ingresses", args.address, hook.port)
    try:
        wait_for_signal()
    finally:
        hook.stop()
        source.stop()
    return 0
