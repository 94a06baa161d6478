"""`ingressctl diff`: what applying FILES would change (routes, nginx.conf, the webhook's verdict).

With FILES, the current objects (`--manifests DIR` or the cluster) are compared with the same
objects after FILES are applied (an object in FILES replaces the one of the same kind,
namespace and name, or is added). Without FILES, `--manifests DIR` is compared with the live
nginx.conf of the instance serving it (`--state-dir`). Exit 0 when nothing changes, else 1.

Design choice: both sides are built and rendered by the controller's own code path
(`Controller.build`, `Controller.render_snapshot`), and route changes are read from the two
models, so the diff shows what the controller would do, not what a second implementation
thinks it would.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys

from ..admission.options import validate_options
from ..admission.validate import Validator
from ..cli import UserError
from ..controller import Controller
from ..explain.routes import diff_routes
from ..nginx.render import RenderError
from ..objects import Ingress, KubeObject, ObjectError, parse_object
from ..store import Snapshot, Store
from .common import add_nginx_flags, controller_options
from .inputs import add_source_flags, load_snapshot, read_raw_inputs


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "diff", help="what applying manifests would change: routes, nginx.conf, the webhook's verdict",
        description="Compare the current objects (--manifests DIR or the cluster) with the same objects after "
        "FILES are applied: routes added/removed/changed (host, location, backend), then the unified diff of "
        "nginx.conf, then the admission webhook's verdict for each Ingress in FILES. Without FILES, compare "
        "--manifests DIR with the live nginx.conf of the instance using --state-dir. Exit 0 when nothing "
        "changes, 1 otherwise.")
    p.add_argument("files", nargs="*", metavar="FILE|DIR|-", help="manifests to apply")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                   help="manifests to apply (repeatable; as in kubectl diff -f)")
    add_nginx_flags(p, http=8080, https=8443, listen="127.0.0.1")  # as the instance runs: the live config's shape
    add_source_flags(p)
    p.set_defaults(func=cmd_diff)


def snapshot_objects(snap: Snapshot) -> list[KubeObject]:
    out: list[KubeObject] = [*snap.ingresses.values(), *snap.classes.values(), *snap.services.values(),
                             *snap.secrets.values(), *snap.configmaps.values(), *snap.nodes.values()]
    out += [s for slices in snap.slices_by_service.values() for s in slices]
    return out


def _apply(snap: Snapshot, paths: list[str]) -> tuple[Snapshot, list[Ingress]]:
    docs, problems = read_raw_inputs(paths)
    if problems:
        raise UserError("; ".join(problems))
    changed: dict[tuple[str, str, str], KubeObject] = {}
    for where, raw in docs:
        try:
            obj = parse_object(raw)
        except ObjectError as e:
            raise UserError(f"{where}: {e}") from None
        changed[(obj.meta.kind, obj.meta.namespace, obj.meta.name)] = obj
    kept = [o for o in snapshot_objects(snap) if (o.meta.kind, o.meta.namespace, o.meta.name) not in changed]
    return Snapshot.of([*kept, *changed.values()]), [o for o in changed.values() if isinstance(o, Ingress)]


def _render(ctl: Controller, snap: Snapshot) -> str:
    try:
        rendered = ctl.render_snapshot(snap)
    except RenderError as e:
        raise UserError(str(e)) from None
    return rendered.text.replace(rendered.config_id, "<config-id>")


def cmd_diff(args: argparse.Namespace) -> int:
    local = args.manifests is not None
    files = [*args.files, *args.filename]
    if not files and not local:
        raise UserError("give the manifests to apply (FILES or -f), or --manifests DIR to compare with its live nginx.conf")
    current, _ = load_snapshot(args)
    ctl = Controller(Store(), controller_options(args))
    out: list[str] = []
    if files:
        proposed, ingresses = _apply(current, files)
        routes = diff_routes(ctl.build(current).model, ctl.build(proposed).model)
        before, after, labels = _render(ctl, current), _render(ctl, proposed), ("current", "proposed")
        out += ["routes:"] + [f"  {r}" for r in routes] if routes else ["routes: no change"]
    else:
        live = ctl.options.prefix / "nginx.conf"
        try:
            text = live.read_text()
        except OSError as e:
            raise UserError(f"live configuration {live}: {e.strerror} (is `ingressctl run` using --state-dir "
                            f"{ctl.options.state_dir}?)") from None
        cid = _config_id_of(text)
        before = text.replace(cid, "<config-id>") if cid else text
        after, labels, routes, ingresses = _render(ctl, current), (str(live), "proposed"), [], []
        proposed = current
    conf = list(difflib.unified_diff(before.splitlines(), after.splitlines(), *labels, lineterm=""))
    out += ["", "nginx.conf:"] + conf if conf else ["", "nginx.conf: no change"]
    refused = _verdicts(args, proposed, ingresses, out)
    sys.stdout.write("\n".join(out) + "\n")
    return 1 if routes or conf or refused else 0


def _config_id_of(text: str) -> str:
    m = re.search(r"^# Generated by ingressctl.* config-id (\S+)$", text, re.MULTILINE)
    return m.group(1) if m else ""


def _verdicts(args: argparse.Namespace, snap: Snapshot, ingresses: list[Ingress], out: list[str]) -> bool:
    if not ingresses:
        return False
    validator = Validator(validate_options(controller_options(args), snap))
    out += ["", "validation:"]
    refused = False
    for ing in sorted(ingresses, key=lambda i: i.meta.key):
        v = validator.check(snap, ing)
        refused |= not v.allowed
        out.append(f"  Ingress {v.ingress}: " + ("allowed" if v.allowed else "refused: " + "; ".join(v.reasons)))
        out += [f"    warning: {w}" for w in v.warnings]
    return refused
