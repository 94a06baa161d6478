"""TCP and UDP services from ConfigMaps (`--tcp-services-configmap`, `--udp-services-configmap`),
as ingress-nginx reads them: each key is a port nginx listens on, each value
`namespace/service:port[:PROXY][:PROXY]` — the Service port (number or name) whose endpoints
get the connections; the first PROXY expects the PROXY protocol from clients, the second
sends it to the endpoints.

Design choice: a pure function of the snapshot, like the HTTP build: every entry is parsed
and validated here, a bad one is reported on its ConfigMap and left out, and the rest is
served. The ConfigMaps are the operator's (they name Services of any namespace, as in
ingress-nginx); a port the HTTP or HTTPS listener already uses is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..objects import ServiceBackend
from ..store import Snapshot
from . import values as v
from .backends import BackendResolver
from .model import Problem, StreamService

_VALUE_RE = re.compile(r"^([a-z0-9][-a-z0-9.]{0,252})/([a-z0-9][-a-z0-9]{0,62}):([A-Za-z0-9][-A-Za-z0-9]{0,62})"
                       r"((?::PROXY){0,2})\Z")
MAX_ENTRIES = 1000


class StreamError(ValueError):
    """An entry that cannot be served."""


def parse_entry(port: str, value: str) -> tuple[int, str, ServiceBackend, bool, bool]:
    """One ConfigMap entry -> (listen port, namespace, Service backend, decode PROXY, encode PROXY)."""
    try:
        listen = v.integer(port, 1, 65535)
    except v.InvalidValue as e:
        raise StreamError(f"port {port!r}: {e}") from None
    m = _VALUE_RE.match(value.strip())
    if not m:
        raise StreamError(f"{value[:100]!r} is not NAMESPACE/SERVICE:PORT[:PROXY][:PROXY]")
    ns, svc, svc_port, proxy = m.groups()
    target: int | str = int(svc_port) if svc_port.isdigit() else svc_port
    if isinstance(target, int) and not 1 <= target <= 65535:
        raise StreamError(f"Service port {target} is out of range")
    flags = proxy.count(":PROXY")
    return listen, ns, ServiceBackend(svc, target), flags >= 1, flags == 2


def stream_services(snap: Snapshot, tcp: str, udp: str, reserved: frozenset[int]
                    ) -> tuple[tuple[StreamService, ...], tuple[Problem, ...]]:
    """The TCP and UDP services of the ConfigMaps named "ns/name" ("" = none)."""
    backends = BackendResolver(snap)
    services: list[StreamService] = []
    problems: list[Problem] = []
    for protocol, ref in (("TCP", tcp), ("UDP", udp)):
        if not ref:
            continue
        cm_ns, _, cm_name = ref.partition("/")
        cm = snap.configmap(cm_ns, cm_name)
        if cm is None:
            problems.append(Problem("ConfigMap", cm_ns, cm_name, "ConfigMapNotFound",
                                    f"{protocol} services ConfigMap not found; no {protocol} services", True))
            continue
        services += _entries(protocol, cm.data, backends, reserved, cm_ns, cm_name, problems)
    return tuple(sorted(services, key=lambda s: (s.protocol, s.port))), tuple(problems)


def _entries(protocol: str, data: Mapping[str, str], backends: BackendResolver, reserved: frozenset[int],
             cm_ns: str, cm_name: str, problems: list[Problem]) -> list[StreamService]:
    out = []
    for port in sorted(data)[:MAX_ENTRIES]:
        def report(reason: str, message: str, warning: bool = False, port: str = port) -> None:
            problems.append(Problem("ConfigMap", cm_ns, cm_name, reason, f"{protocol} port {port}: {message}", warning))
        try:
            listen, ns, backend, decode, encode = parse_entry(port, data[port])
        except StreamError as e:
            report("InvalidStreamService", f"{e}; left out")
            continue
        if listen in reserved:
            report("StreamPortInUse", f"port {listen} is an HTTP, HTTPS or Gateway listener port; left out")
            continue
        res = backends.resolve(ns, backend)
        for reason, message, _ in res.problems:
            report(reason, f"{message.removesuffix('; answering 503')}; not listening", True)
        up = res.upstream
        if up is None:
            continue
        if up.external_name:
            report("StreamExternalName", "ExternalName Services are not supported for TCP/UDP services; left out")
            continue
        name = f"{protocol.lower()}-{listen}-{ns}-{backend.name}-{up.port}"
        out.append(StreamService(listen, protocol, name, f"{ns}/{backend.name}", up.endpoints, decode, encode))
    if len(data) > MAX_ENTRIES:
        problems.append(Problem("ConfigMap", cm_ns, cm_name, "TooManyStreamServices",
                                f"{len(data)} entries: the first {MAX_ENTRIES} by port are served"))
    return out
