"""Benchmark: how long until the innocent Ingresses go live when some make nginx -t fail.

N generated Ingresses (default 10,000, 50 namespaces) of which 5 are culprits: a template
override adds an unknown directive to their servers, standing in for any input that
validation lets through and nginx refuses. Two scenarios, each with the real `nginx -t`:
- fresh start: every Ingress is a suspect;
- running: the configuration without culprits is live, then the 5 culprits arrive.
Prints the seconds until a configuration without them is live, the nginx -t runs the
search took, and the Ingresses left out. The old search (bisection, at most 5 culprits and
64 nginx -t runs per sync) gave up on this input; the stated bound is 2·d·log2(N) + 2 runs.

    .venv/bin/python bench/quarantine.py [--ingresses 10000] [--culprits 5]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_render import objects


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _controller(store, state: Path):  # type: ignore[no-untyped-def]
    from ingressctl.controller import Controller, ControllerOptions
    from ingressctl.nginx.defaultcert import ensure_default_certificate
    from ingressctl.nginx.process import Nginx
    from ingressctl.nginx.render import Renderer

    opts = ControllerOptions(state_dir=state, http_port=_port(), https_port=_port(), listen=("127.0.0.1:",))
    builtin = Renderer().builtin
    poisoned = builtin["server.j2"].replace(
        "{% for loc in server.locations %}",
        "{% if server.host.startswith('culprit') %}        no_such_directive on;\n{% endif %}"
        "{% for loc in server.locations %}", 1)
    nginx = Nginx(opts.prefix)
    ctl = Controller(store, opts, nginx)
    ctl.templates.builtin = Renderer(sources={"server.j2": poisoned})
    nginx.prepare()
    ensure_default_certificate(opts.prefix / "certs" / "default.pem")
    return ctl, nginx


def _culprits(n: int, culprits: int) -> list:
    from ingressctl.objects import parse_object

    return [parse_object({"kind": "Ingress", "metadata": {"name": f"culprit{k}", "namespace": f"ns{k * 7 % 50}",
                                                          "creationTimestamp": "2026-02-01T00:00:00Z"},
                          "spec": {"ingressClassName": "nginx", "rules": [{"host": f"culprit{k}.bench.example.com",
                                   "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {
                                       "name": f"app{k}", "port": {"number": 80}}}}]}}]}})
            for k in range(culprits)]


def run(n: int, culprits: int, fresh: bool) -> tuple[float, int, int]:
    import logging

    from ingressctl.store import Store

    tests = {"n": 0}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store()
        store.replace(None, objects(n) + (_culprits(n, culprits) if fresh else []))
        ctl, nginx = _controller(store, Path(tmp) / "state")
        check = nginx.check

        def counted(*a, **kw):  # type: ignore[no-untyped-def]
            tests["n"] += 1
            return check(*a, **kw)

        nginx.check = counted  # type: ignore[method-assign]
        logging.disable(logging.ERROR)
        try:
            if not fresh:
                assert ctl.sync().ok
                tests["n"] = 0
                for obj in _culprits(n, culprits):
                    store.apply(obj)
            started = time.monotonic()
            outcome = ctl.sync()
            seconds = time.monotonic() - started
            assert outcome.ok, outcome.message
            return seconds, tests["n"], len(ctl.quarantine.entries)
        finally:
            nginx.stop(graceful=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ingresses", type=int, default=10_000)
    ap.add_argument("--culprits", type=int, default=5)
    a = ap.parse_args()
    print(f"{a.culprits} culprits among {a.ingresses} Ingresses (real nginx -t)")
    print(f"{'scenario':<14}{'seconds to live':>17}{'nginx -t runs':>15}{'left out':>10}")
    for name, fresh in (("fresh start", True), ("running", False)):
        seconds, tests, left = run(a.ingresses, a.culprits, fresh)
        print(f"{name:<14}{seconds:>17.1f}{tests:>15}{left:>10}")


if __name__ == "__main__":
    main()
