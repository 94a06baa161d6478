"""`ingressctl migrate check`: what changes for each ingress-nginx Ingress (see ingressctl/migrate/)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from ..cli import UserError
from ..migrate.check import check
from ..migrate.export import read_export, source_of
from ..migrate.report import format_text
from .inputs import list_raw_from_cluster, read_raw_inputs

WORKLOAD_PATHS = ("/apis/apps/v1/deployments", "/apis/apps/v1/daemonsets")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("migrate", help="compare ingress-nginx's Ingresses with how ingressctl would serve them",
                       description="Commands for leaving ingress-nginx.")
    steps = p.add_subparsers(dest="migrate_command", metavar="STEP", required=True)
    c = steps.add_parser(
        "check", help="same / differs / refused for every Ingress of the ingress-nginx class",
        description="Read ingress-nginx objects (files, directories, '-' for stdin: `kubectl get ingress,"
        "ingressclass,configmap,svc,endpointslices,secrets,deploy -A -o yaml` output, kind: List included; or "
        "--kubeconfig, read-only) and print, for every Ingress of the ingress-nginx class: same, differs (each "
        "difference with what ingress-nginx does and what ingressctl will do) or refused (the webhook's "
        "reasons); then the ConfigMap keys and controller flags ingressctl does not support. Exit 0: all "
        "same; 1: something differs; 2: some Ingress would be refused.")
    c.add_argument("inputs", nargs="*", metavar="FILE|DIR|-", help="exported objects (default: --kubeconfig)")
    c.add_argument("--kubeconfig", metavar="FILE", help="read the cluster instead (list requests only)")
    c.add_argument("--context", default="", metavar="NAME", help="kubeconfig context (default: the current one)")
    c.add_argument("--from-class", default="", metavar="NAME",
                   help="the IngressClass to migrate from (default: what ingress-nginx's flags say, else "
                        "controller k8s.io/ingress-nginx and class annotation 'nginx')")
    c.add_argument("--configmap", default="", metavar="NS/NAME",
                   help="ingress-nginx's ConfigMap (default: its --configmap flag, else ingress-nginx/ingress-nginx-controller)")
    c.add_argument("-o", "--output", choices=("text", "json"), default="text")
    c.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    if args.inputs and args.kubeconfig:
        raise UserError("give input files or --kubeconfig, not both")
    if args.inputs:
        docs, problems = read_raw_inputs(args.inputs)
    else:
        docs, problems = list_raw_from_cluster(args.kubeconfig, WORKLOAD_PATHS, args.context), []
    export = read_export(docs)
    if problems:
        export = export.__class__(export.objects, export.controllers, tuple(problems) + export.problems,
                                  export.skipped)
    source = source_of(export, args.from_class, args.configmap)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    report = check(export, source, now)
    if args.output == "json":
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(report))
    return report.exit_code
