"""Benchmark: how long nginx takes to load the configuration (`nginx -t`), by size and
template variant, side by side in one run (issue 18 §1-2: ~90% of a change's time at
10,000 Ingresses is nginx loading the configuration).

Each size renders N Ingresses (one host, one Prefix path, own Service with 3 endpoints,
every 4th host with its own TLS Secret) exactly as `ingressctl run` does with the Lua
balancer, then times `nginx -t` (median of --runs) for each variant:

  before   the templates as of the commit given with --before (default: HEAD~1)
  now      the working tree's templates

Measured while trying to drop the http-level default certificate (the issue's suspect for
one SSL context per server): 1,000 0.52 -> 0.51 s, 3,000 1.53 -> 1.52 s, no gain with the
certificate given through a variable as we do; the change was not kept. The cost is the Lua
module's context per location (bench/nginx_lua_contexts.py).

With --before at the commit before the shared balancer block (one `upstream` for every
Lua-balanced Service that plain locations name): 1,000 0.61 -> 0.58 s, 3,000 1.81 -> 1.77 s,
10,000 8.84 -> 5.87 s (0.66; nginx finds upstream blocks by a linear scan).

    .venv/bin/python bench/nginx_load.py [--sizes 1000,3000] [--runs 3] [--before REV]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_render import objects


def _tls_objects(n: int) -> list:
    from ingressctl.objects import parse_object
    from tests.factory import tls_secret

    secret = tls_secret("t", "bench.example.com")
    data = {k: base64.b64encode(v).decode() for k, v in secret.data.items()}  # type: ignore[attr-defined]
    out = []
    for i in range(0, n, 4):
        ns, name = f"ns{i % 50}", f"app{i}"
        out.append(parse_object({"kind": "Secret", "type": "kubernetes.io/tls",
                                 "metadata": {"name": f"{name}-tls", "namespace": ns}, "data": data}))
    return out


def _with_tls(objs: list, n: int) -> list:
    import dataclasses

    from ingressctl.objects import Ingress, IngressTLS
    out = []
    for o in objs:
        if isinstance(o, Ingress) and int(o.meta.name[3:]) % 4 == 0:
            o = dataclasses.replace(o, tls=(IngressTLS((o.rules[0].host,), f"{o.meta.name}-tls"),))
        out.append(o)
    return out + _tls_objects(n)


def _templates_at(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, "templates/"],
                           capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if name.endswith(".j2"):
            text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{name}"], capture_output=True,
                                  text=True, check=True).stdout
            (into / Path(name).name).write_text(text)
    return into


def load_seconds(n: int, template_dir: Path | None, runs: int, work: Path) -> float:
    from ingressctl.controller import Controller, ControllerOptions
    from ingressctl.nginx.process import Nginx
    from ingressctl.store import Store

    store = Store()
    store.replace(None, _with_tls(objects(n), n))
    state = work / f"state-{n}-{'before' if template_dir else 'now'}"
    opts = ControllerOptions(state_dir=state, http_port=18080, https_port=18443, dynamic_endpoints=True,
                             template_dir=template_dir)
    ctl = Controller(store, opts)
    rendered = ctl.render_snapshot(store.snapshot())
    ctl.prepare_state(rendered)
    nginx = Nginx(opts.prefix)
    nginx.prepare()
    conf = opts.prefix / "bench.conf"
    conf.write_text(rendered.text)
    times = []
    for _ in range(runs):
        started = time.monotonic()
        ok, err = nginx.test(conf)
        times.append(time.monotonic() - started)
        assert ok, err
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,3000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", default="HEAD~1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressctl-bench-") as tmp:
        work = Path(tmp)
        before = _templates_at(args.before, work / "before-templates")
        print(f"{'Ingresses':>9} | {'nginx -t before':>15} | {'nginx -t now':>12} | ratio")
        for n in (int(x) for x in args.sizes.split(",")):
            b = load_seconds(n, before, args.runs, work)
            a = load_seconds(n, None, args.runs, work)
            print(f"{n:>9} | {b:>14.2f}s | {a:>11.2f}s | {a / b:.2f}")


if __name__ == "__main__":
    main()
