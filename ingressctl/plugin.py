"""`kubectl ingressctl ...`: the read-only commands against the current kubeconfig context.

kubectl runs `kubectl-ingressctl` (installed with the package) for `kubectl ingressctl`.
`explain`, `diff` and `migrate` are the ingressctl commands, which read the cluster when
no `--manifests` or input files are given. `render`, `validate` and `certs` build the
cluster's objects with the controller's code (list requests only). `backends` and `conf`
ask a running controller pod for what it holds (the endpoint table, the live nginx.conf)
through `kubectl port-forward` to its status port: those pages answer loopback only.

Design choice: no second client and no new API access: objects come from the same list
calls as `ingressctl explain --kubeconfig`, and the pod is reached with the user's kubectl.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
from collections.abc import Sequence

from .cli import UserError
from .cli import main as ingressctl_main

PASS_THROUGH = ("explain", "diff", "migrate")
USAGE = "kubectl ingressctl explain|diff|migrate|render|validate|backends|certs|conf [flags]"


def _parser() -> argparse.ArgumentParser:
    from .commands.inputs import add_source_flags

    p = argparse.ArgumentParser(prog="kubectl ingressctl", usage=USAGE,
                                description="ingressctl against the current kubeconfig context.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in (("render", "the nginx.conf the controller builds from the cluster's objects"),
                       ("validate", "the admission checks on every Ingress of the cluster"),
                       ("certs", "which certificate each TLS host gets, and until when")):
        c = sub.add_parser(name, help=text, description=text)
        add_source_flags(c)
    for name, text in (("backends", "the endpoint table a running controller holds"),
                       ("conf", "the live nginx.conf of a running controller")):
        c = sub.add_parser(name, help=text, description=text + " (through kubectl port-forward)")
        c.add_argument("-n", "--namespace", default="ingressctl", help="the controller's namespace (default ingressctl)")
        c.add_argument("--pod", default="", help="the pod (default: the first ready controller pod)")
        c.add_argument("--selector", default="app.kubernetes.io/name=ingressctl,app.kubernetes.io/component=controller")
        c.add_argument("--status-port", type=int, default=10254)
        c.add_argument("--kubeconfig", default=None)
        c.add_argument("--context", default="", help="kubeconfig context (default: the current one)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: {USAGE}")
        return 0 if args else 2
    if args[0] in PASS_THROUGH:
        return ingressctl_main(args)
    ns = _parser().parse_args(args)
    try:
        return {"render": _render, "validate": _validate, "certs": _certs,
                "backends": _backends, "conf": _conf}[ns.command](ns)
    except UserError as e:
        print(f"kubectl ingressctl {ns.command}: {e}", file=sys.stderr)
        return e.code


def _built(ns: argparse.Namespace) -> tuple[object, object]:
    from .commands.inputs import build_like_controller, load_snapshot

    snap, _ = load_snapshot(ns)
    return snap, build_like_controller(ns, snap)


def _render(ns: argparse.Namespace) -> int:
    from .commands.common import controller_options
    from .controller import Controller
    from .store import Store

    snap, _ = _built(ns)
    rendered = Controller(Store(), controller_options(ns)).render_snapshot(snap)  # type: ignore[arg-type]
    sys.stdout.write(rendered.text)
    return 0


def _validate(ns: argparse.Namespace) -> int:
    from .admission.options import validate_options
    from .admission.validate import validate_snapshot
    from .commands.common import controller_options

    snap, _ = _built(ns)
    verdicts = validate_snapshot(snap, validate_options(controller_options(ns), snap))  # type: ignore[arg-type]
    for v in verdicts:
        for w in v.warnings:
            print(f"warning: Ingress {v.ingress}: {w}")
        for r in v.reasons:
            print(f"error: Ingress {v.ingress}: {r}")
    refused = sum(1 for v in verdicts if not v.allowed)
    print(f"{len(verdicts) - refused} Ingress(es) valid, {refused} refused")
    return 1 if refused else 0


def _certs(ns: argparse.Namespace) -> int:
    from .ingress.build import BuildResult

    _, result = _built(ns)
    assert isinstance(result, BuildResult)
    by_file = {c.file_name: c for c in result.model.certificates}
    for s in result.model.servers:
        if not s.tls:
            continue
        cert = by_file.get(s.certificate)
        what = f"{cert.name} (valid until {cert.not_after})" if cert else "the default certificate (self-signed)"
        print(f"{s.host}\t{what}")
    for p in result.problems:
        if p.reason in ("SecretNotFound", "InvalidCertificate", "TLSConflict"):
            print(f"warning: {p}")
    return 0


def _backends(ns: argparse.Namespace) -> int:
    text = _from_pod(ns, "/debug/backends")
    for u in json.loads(text):
        eps = ", ".join(u["endpoints"]) or u.get("externalName", "") or "(none: 503)"
        print(f"{u['upstream']}\t{u['service']}:{u['port']}\t{eps}")
    return 0


def _conf(ns: argparse.Namespace) -> int:
    sys.stdout.write(_from_pod(ns, "/debug/nginx.conf"))
    return 0


def _kubectl(ns: argparse.Namespace, *words: str) -> list[str]:
    return ["kubectl", *(["--kubeconfig", ns.kubeconfig] if ns.kubeconfig else []),
            *(["--context", ns.context] if ns.context else []), "-n", ns.namespace, *words]


def _pick_pod(ns: argparse.Namespace) -> str:
    if ns.pod:
        return str(ns.pod)
    out = subprocess.run(_kubectl(ns, "get", "pods", "-l", ns.selector, "-o", "json"), capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0:
        raise UserError(f"kubectl get pods: {out.stderr.strip()}")
    for pod in json.loads(out.stdout).get("items", []):
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            return str(pod["metadata"]["name"])
    raise UserError(f"no ready controller pod in namespace {ns.namespace} (selector {ns.selector}); use --pod")


def _from_pod(ns: argparse.Namespace, path: str) -> str:
    pod = _pick_pod(ns)
    proc = subprocess.Popen(_kubectl(ns, "port-forward", f"pod/{pod}", f":{ns.status_port}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"Forwarding from (?:127\.0\.0\.1|\[::1\]):(\d+)", line)
        if not m:
            raise UserError(f"kubectl port-forward pod/{pod}: {line.strip() or (proc.stderr.read() if proc.stderr else '')}")
        conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
        if resp.status != 200:
            raise UserError(f"pod {pod} {path}: {resp.status} {body.strip()}")
        return body
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
