"""`ingressctl migrate check`: what changes for each ingress-nginx Ingress; `ingressctl migrate
to-gateway`: Ingresses to Gateway API routes, proven by replaying requests (see ingressctl/migrate/)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..cli import UserError
from ..migrate.check import check
from ..migrate.export import read_export, source_of
from ..migrate.report import format_text
from .inputs import (
    add_source_flags,
    build_like_controller,
    class_filter,
    list_raw_from_cluster,
    load_snapshot,
    read_raw_inputs,
)

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
    t = steps.add_parser(
        "to-gateway", help="convert the Ingresses ingressctl serves into a Gateway and HTTPRoutes, and prove it",
        description="Write a GatewayClass, a Gateway (an HTTP listener, one HTTPS listener per TLS host), "
        "ReferenceGrants for the TLS Secrets and one HTTPRoute per Ingress host (canary header/cookie/weight, "
        "use-regex, redirects, ssl-redirect, upstream-vhost and rewrite-target '/' converted) to stdout or -o "
        "FILE. Then prove it: build the Ingresses and the routes with ingressctl's own model and replay every "
        "host x path form x scheme x canary header/cookie through both; every request routed differently is "
        "printed. Exit 0: no difference; 1: differences (listed on stderr).")
    add_source_flags(t)
    t.add_argument("--gateway-name", default="ingressctl", metavar="NAME")
    t.add_argument("--gateway-namespace", default="ingressctl", metavar="NS")
    t.add_argument("--gateway-class", default="ingressctl", metavar="NAME", help="GatewayClass to create and use")
    t.add_argument("--http-port", type=int, default=None,
                   help="the HTTP listener's port: the controller's --http-port (default 8080 with --manifests, else 80)")
    t.add_argument("--https-port", type=int, default=None, help="(default 8443 with --manifests, else 443)")
    t.add_argument("-o", "--output", type=Path, default=None, metavar="FILE", help="write the objects here")
    t.set_defaults(func=cmd_to_gateway)


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


def cmd_to_gateway(args: argparse.Namespace) -> int:
    import yaml

    from ..migrate.to_gateway import ConvertOptions, convert, prove, requests_for, without_ingresses

    local = args.manifests is not None
    args.http_port = args.http_port or (8080 if local else 80)
    args.https_port = args.https_port or (8443 if local else 443)
    snap, problems = load_snapshot(args)
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    before = build_like_controller(args, snap)
    served_keys = {f"{s.namespace}/{s.name}" for s in before.statuses}
    served = [i for k, i in sorted(snap.ingresses.items()) if k in served_keys]
    opts = ConvertOptions(args.gateway_name, args.gateway_namespace, args.gateway_class,
                          args.gateway_controller_name, args.http_port, args.https_port)
    conversion = convert(snap, served, opts)
    text = yaml.safe_dump_all(conversion.objects, sort_keys=False)
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    after_snap = without_ingresses(snap, conversion.converted, conversion)
    after = build_like_controller(args, after_snap)
    refused = [p for p in after.problems if p.kind in ("HTTPRoute", "Gateway") and not p.warning]
    requests = requests_for(served)
    differences = prove((snap, before), (after_snap, after), class_filter(args), requests,
                        args.http_port, args.https_port)
    err = sys.stderr
    for note in conversion.notes:
        print(f"note: {note}", file=err)
    for p in refused:
        print(f"error: the generated {p.kind} {p.namespace}/{p.name} is not served: {p.reason}: {p.message}", file=err)
    for d in differences:
        print(f"differs: {d.request}: Ingress -> {d.ingress}; Gateway -> {d.gateway}", file=err)
    others = sorted(set(snap.ingresses) - served_keys)
    if others:
        print(f"not converted: {len(others)} Ingress(es) ingressctl does not serve: {', '.join(others[:10])}", file=err)
    print(f"{len(conversion.converted)} Ingress(es) converted into {len(conversion.objects)} object(s); "
          f"{len(requests)} request(s) replayed, {len(differences)} routed differently", file=err)
    return 1 if differences or refused else 0
