"""Flags and wiring shared by the commands that run nginx (`run`, `controller`, `render`)."""

from __future__ import annotations

import argparse
import errno
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..controller import Controller, ControllerOptions
from ..gateway.build import DEFAULT_CONTROLLER as DEFAULT_GATEWAY_CONTROLLER
from ..gateway.build import GatewayOptions
from ..ingress.classes import CONTROLLER_NAME, ClassFilter
from ..metrics_requests import (
    LENGTH_BUCKETS,
    METRIC_NAMES,
    SIZE_BUCKETS,
    TIME_BUCKETS,
    RequestMetricsOptions,
    parse_buckets,
)

log = logging.getLogger(__name__)


def add_nginx_flags(p: argparse.ArgumentParser, http: int, https: int, listen: str) -> None:
    g = p.add_argument_group("nginx")
    g.add_argument("--http-port", type=int, default=http, help=f"HTTP listen port (default {http})")
    g.add_argument("--https-port", type=int, default=https, help=f"HTTPS listen port (default {https})")
    g.add_argument("--redirect-https-port", type=int, default=0, metavar="N",
                   help="name port N in HTTP to HTTPS redirects (local mode on a port other than 443); "
                        "by default redirects name no port, as ingress-nginx's")
    g.add_argument("--listen-address", action="append", default=None, metavar="ADDR",
                   help=f"address to listen on, repeatable; '*' for all IPv4, '::' for all IPv6 (default {listen})")
    g.add_argument("--state-dir", type=Path, default=None,
                   help="where nginx.conf, certificates and sockets live (default /tmp/ingressctl-<http port>)")
    g.add_argument("--template-dir", type=Path, default=None,
                   help="override templates (nginx.conf.j2, server.j2, location.j2, upstream.j2); watched")
    g.add_argument("--resolver", action="append", default=None, metavar="IP",
                   help="DNS resolver for ExternalName Services (default: nameservers of /etc/resolv.conf)")
    g.add_argument("--dynamic-endpoints", choices=("auto", "on", "off"), default="auto",
                   help="apply endpoint changes through nginx's Lua balancer without a reload "
                        "(auto: when nginx has the Lua module, as nginx-extras does)")
    g.add_argument("--shutdown-grace-period", type=float, default=5.0, metavar="S",
                   help="on SIGTERM, /readyz answers 503 at once and nginx keeps accepting new connections "
                        "for S seconds before it is told to drain (default 5)")
    g.add_argument("--stale-after", type=float, default=60.0, metavar="S",
                   help="/readyz answers 503 once the wanted configuration has failed to go live for longer "
                        "than S seconds (default 60)")
    g.add_argument("--enable-ssl-passthrough", action="store_true",
                   help="serve ssl-passthrough Ingresses: the HTTPS port reads the SNI and passes those hosts' "
                        "TLS to their backends; the rest reaches nginx's HTTPS servers (PROXY protocol)")
    g.add_argument("--tcp-services-configmap", default="", metavar="NS/NAME",
                   help='ConfigMap of TCP services: "PORT": "NAMESPACE/SERVICE:PORT[:PROXY][:PROXY]" (ingress-nginx\'s)')
    g.add_argument("--udp-services-configmap", default="", metavar="NS/NAME",
                   help="ConfigMap of UDP services, in the same form")
    m = p.add_argument_group("request metrics (ingress-nginx's names, measured in nginx's Lua log phase)")
    m.add_argument("--enable-metrics", choices=("true", "false"), default="true",
                   help="per-request metrics on /metrics (needs the Lua module; default true)")
    m.add_argument("--metrics-per-host", choices=("true", "false"), default="true",
                   help="a host label per served host (false: one empty host label; default true)")
    m.add_argument("--exclude-socket-metrics", default="", metavar="NAMES",
                   help="comma-separated request metrics not exposed, e.g. request_size,response_size")
    m.add_argument("--time-buckets", default="", metavar="LIST", help="buckets of the duration histograms "
                   "(default ingress-nginx's: 0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10)")
    m.add_argument("--length-buckets", default="", metavar="LIST",
                   help="buckets of request_size/response_size (default 10,20,...,100)")
    m.add_argument("--size-buckets", default="", metavar="LIST", help="buckets of bytes_sent (default 10,...,1e7)")
    p.set_defaults(default_listen=listen)


def request_metrics_options(args: argparse.Namespace) -> RequestMetricsOptions | None:
    """--enable-metrics and friends; None when request metrics are off."""
    from ..cli import UserError

    if getattr(args, "enable_metrics", "false") != "true":
        return None
    kinds = {"time": TIME_BUCKETS, "length": LENGTH_BUCKETS, "size": SIZE_BUCKETS}
    buckets = {}
    for kind, default in kinds.items():
        text = getattr(args, f"{kind}_buckets", "")
        try:
            buckets[kind] = parse_buckets(text) if text else default
        except ValueError as e:
            raise UserError(f"--{kind}-buckets {e}") from None
    exclude = frozenset(x.strip() for x in getattr(args, "exclude_socket_metrics", "").split(",") if x.strip())
    unknown = {x.removeprefix("nginx_ingress_controller_") for x in exclude} - set(METRIC_NAMES)
    if unknown:
        raise UserError(f"--exclude-socket-metrics: unknown metric(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(METRIC_NAMES)}")
    return RequestMetricsOptions(per_host=getattr(args, "metrics_per_host", "true") == "true", exclude=exclude,
                                 buckets=buckets)


def add_class_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ingress selection")
    g.add_argument("--ingress-class", default="nginx",
                   help="class name matched by the legacy kubernetes.io/ingress.class annotation (default nginx)")
    g.add_argument("--controller-class", default=CONTROLLER_NAME,
                   help=f"IngressClass spec.controller value we serve (default {CONTROLLER_NAME})")
    g.add_argument("--watch-ingress-without-class", action="store_true",
                   help="also serve Ingresses with no class when no default IngressClass exists")
    g.add_argument("--gateway-controller-name", default=DEFAULT_GATEWAY_CONTROLLER, metavar="NAME",
                   help=f"Gateway API: serve GatewayClasses with this controllerName (default {DEFAULT_GATEWAY_CONTROLLER})")
    g.add_argument("--configmap", default="", metavar="NS/NAME", help="controller ConfigMap with global settings")
    g.add_argument("--default-backend-service", default="", metavar="NS/NAME:PORT",
                   help="Service for requests no rule matches (default: answer 404)")
    g.add_argument("--default-ssl-certificate", default="", metavar="NS/NAME",
                   help="TLS Secret served to hosts without a certificate of their own and by the default "
                        "server (default: a generated self-signed one)")


def _listen(addresses: list[str] | None, default: str) -> tuple[str, ...]:
    out = []
    for a in addresses or [default]:
        if a in ("*", "0.0.0.0", ""):
            out.append("")
        elif ":" in a:
            out.append(f"[{a.strip('[]')}]:")
        else:
            out.append(f"{a}:")
    return tuple(dict.fromkeys(out))


def system_resolvers(path: str = "/etc/resolv.conf") -> tuple[str, ...]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return ()
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(f"[{parts[1]}]" if ":" in parts[1] else parts[1])
    return tuple(out)


def controller_options(args: argparse.Namespace) -> ControllerOptions:
    """Options from parsed flags; commands without the nginx flags get the local defaults."""
    http, https = getattr(args, "http_port", 8080), getattr(args, "https_port", 8443)
    state = getattr(args, "state_dir", None) or Path(f"/tmp/ingressctl-{http}")
    template_dir, resolver = getattr(args, "template_dir", None), getattr(args, "resolver", None)
    dynamic = _dynamic(getattr(args, "dynamic_endpoints", "off"))
    return ControllerOptions(
        state_dir=Path(state).resolve(),
        http_port=http,
        https_port=https,
        listen=_listen(getattr(args, "listen_address", None), getattr(args, "default_listen", "127.0.0.1")),
        classes=ClassFilter(controller=args.controller_class, ingress_class=args.ingress_class,
                            watch_without_class=args.watch_ingress_without_class),
        configmap=args.configmap,
        default_backend=args.default_backend_service,
        template_dir=template_dir.resolve() if template_dir else None,
        resolver=tuple(resolver) if resolver else system_resolvers(),
        dynamic_endpoints=dynamic,
        lazy_default_certificate=_workers_reach(Path(state)),
        stale_after=getattr(args, "stale_after", 60.0),
        redirect_https_port=getattr(args, "redirect_https_port", 0),
        default_certificate=_secret_ref(getattr(args, "default_ssl_certificate", "")),
        request_metrics=request_metrics_options(args),
        ssl_passthrough=getattr(args, "enable_ssl_passthrough", False),
        tcp_services=_ref(getattr(args, "tcp_services_configmap", ""), "--tcp-services-configmap"),
        udp_services=_ref(getattr(args, "udp_services_configmap", ""), "--udp-services-configmap"),
        # offline tools (no --dynamic-endpoints) judge routes as a default `run` serves them
        gateway=GatewayOptions(controller_name=getattr(args, "gateway_controller_name", DEFAULT_GATEWAY_CONTROLLER),
                               ingress_http_port=http, ingress_https_port=https,
                               balancer=dynamic or not hasattr(args, "dynamic_endpoints")),
    )


def _secret_ref(value: str) -> str:
    return _ref(value, "--default-ssl-certificate")


def _ref(value: str, flag: str) -> str:
    from ..cli import UserError

    if value and (value.count("/") != 1 or not all(value.split("/"))):
        raise UserError(f"{flag} {value!r}: expected NAMESPACE/NAME")
    return value


def _workers_reach(state: Path) -> bool:
    from ..nginx.process import workers_can_reach

    return workers_can_reach(state / "nginx")


def check_state_dir(state: Path) -> None:
    """Refuse a state dir nginx's workers (user nobody) cannot reach: they open htpasswd files
    and write request bodies there, so basic auth and large uploads would answer 500. And one
    line, not a traceback, for a state dir we may not write (a root-owned leftover)."""
    from ..cli import UserError
    from ..nginx.process import workers_can_reach

    if not workers_can_reach(state / "nginx"):
        closed = next(p for p in (state / "nginx").resolve().parents if p.exists() and not os.stat(p).st_mode & 0o001)
        raise UserError(f"--state-dir {state}: nginx workers (user nobody) cannot traverse {closed} (no o+x), so "
                        "basic auth and request bodies would fail; use a state dir whose parents are "
                        "world-traversable (the default, /tmp/ingressctl-<port>, is)")
    try:
        state.mkdir(parents=True, exist_ok=True)
        probe = state / ".ingressctl-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"--state-dir {state}: {e.strerror or e} (a leftover of another user? remove it or "
                        "choose another --state-dir)") from None


def _dynamic(choice: str) -> bool:
    from ..cli import UserError
    from ..nginx.dynamic import lua_available
    from ..nginx.render import LUA_MODULES

    if choice == "on" and not lua_available():
        raise UserError(f"--dynamic-endpoints on needs nginx's Lua module ({LUA_MODULES[1]}); "
                        "install nginx-extras or use --dynamic-endpoints off")
    return choice == "on" or (choice == "auto" and lua_available())


def wait_for_signal() -> int:
    """Block until SIGTERM or SIGINT; returns the signal number."""
    got: list[int] = []
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        got.append(signum)
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    while not done.wait(timeout=1.0):
        pass
    return got[0] if got else 0


def check_port(port: int, what: str) -> None:
    from ..cli import UserError

    if not 0 < port < 65536:
        raise UserError(f"{what} {port} is not a TCP port")


def lock_state_dir(state_dir: Path) -> IO[str]:
    """One instance per state dir: an exclusive flock held for the life of the process.

    The returned file must stay open (the lock goes with it)."""
    from ..cli import UserError

    state_dir.mkdir(parents=True, exist_ok=True)
    f = open(state_dir / "ingressctl.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise UserError(f"state dir {state_dir} is in use by another ingressctl (pid {holder}); "
                        "give each instance its own --state-dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def check_ports_free(options: ControllerOptions) -> None:
    """Refuse to start when another process listens on one of nginx's ports (nginx would retry
    forever). A listening socket refuses a bind even with SO_REUSEADDR, which nginx sets too."""
    from ..cli import UserError

    for listen in options.listen:
        host = listen.rstrip(":").strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for port in (options.http_port, options.https_port):
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        raise UserError(f"port {port} on {host} is in use") from None
                    if e.errno != errno.EADDRNOTAVAIL:  # an address that comes later (a VIP) is nginx's to report
                        raise UserError(f"port {port} on {host}: {e.strerror}") from None


def shut_down(signum: int, ctl: Controller, grace: float, stop_inputs: Callable[[], None]) -> None:
    """The drain sequence: /readyz 503 at once; on SIGTERM nginx keeps accepting new connections
    for `grace` seconds (load balancers stop sending meanwhile); then the inputs stop, nginx gets
    SIGQUIT and in-flight requests finish within worker-shutdown-timeout."""
    ctl.begin_drain()
    if signum == signal.SIGTERM and grace > 0:
        log.warning("SIGTERM: /readyz answers 503; nginx keeps serving for %gs, then drains", grace)
        time.sleep(grace)
    stop_inputs()
    ctl.stop()
