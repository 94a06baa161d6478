"""`ingressctl explain URL`: why a request goes where it goes (see ingressctl/explain/)."""

from __future__ import annotations

import argparse
import json
import sys

from ..cli import UserError
from ..explain import Explanation, RequestError, explain, parse_request
from ..explain.text import format_text
from .inputs import add_source_flags, build_like_controller, class_filter, load_snapshot


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "explain", help="which server, location, Ingress and backend serve a request, and why",
        description="Build the configuration exactly as the controller does and replay nginx's matching "
        "for one request: server (exact, wildcard, default), every candidate location in nginx's order, "
        "the Ingress rule and path, annotations, redirects/auth/canary decisions, the upstream and its "
        "endpoints. -o json prints status, ingress, backend, location and reasons.")
    p.add_argument("url", metavar="URL", help="e.g. http://shop.example.com/cart?x=1 (https:// for TLS)")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'",
                   help="request header, repeatable (Host: overrides the URL's host)")
    p.add_argument("--method", "-X", default="GET", help="request method (default GET)")
    p.add_argument("--client-ip", default="127.0.0.1", help="client address for allow/deny lists")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--http-port", type=int, default=None,
                   help="the controller's HTTP port, for redirect URLs (default 8080 with --manifests, else 80)")
    p.add_argument("--https-port", type=int, default=None, help="(default 8443 with --manifests, else 443)")
    add_source_flags(p)
    p.set_defaults(func=cmd_explain)


def run_explain(args: argparse.Namespace) -> Explanation:
    local = args.manifests is not None
    args.http_port = args.http_port or (8080 if local else 80)
    args.https_port = args.https_port or (8443 if local else 443)
    try:
        req = parse_request(args.url, args.header, args.method, args.client_ip)
    except RequestError as e:
        raise UserError(str(e)) from None
    snap, _ = load_snapshot(args)
    result = build_like_controller(args, snap)
    return explain(snap, result, req, class_filter(args), args.http_port, args.https_port)


def cmd_explain(args: argparse.Namespace) -> int:
    e = run_explain(args)
    if args.output == "json":
        json.dump(e.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(e))
    return 0
