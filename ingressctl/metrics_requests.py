"""Request and nginx process metrics under ingress-nginx's names, so its dashboards and alerts
read ingressctl unchanged: nginx_ingress_controller_requests and the request/response
histograms (measured per request in nginx's log phase, templates/ingressctl_metrics.lua),
and the connection counters of nginx's stub_status.

Design choice: nginx keeps the numbers (a shared dict survives reloads); the controller
turns them into Prometheus families only when /metrics is scraped, so there is no second
copy to keep in step. `request_families` and `stub_status_families` are pure functions of
the text nginx answers; `NginxCollector` is the effect (two requests on the private socket).
Counters are exposed with ingress-nginx's exact names (no `_total` added).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .nginx.workers import ProcessSample

log = logging.getLogger(__name__)

P = "nginx_ingress_controller_"
LABELS = ("host", "status", "method", "path", "namespace", "ingress", "service", "canary")
CONTROLLER_LABELS = ("controller_namespace", "controller_class", "controller_pod")
# ingress-nginx's defaults (its --time-buckets, --length-buckets, --size-buckets)
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LENGTH_BUCKETS = tuple(float(x) for x in range(10, 101, 10))
SIZE_BUCKETS = tuple(float(10 ** x) for x in range(1, 8))
# histogram -> (bucket kind, help)
HISTOGRAMS = {
    "request_duration_seconds": ("time", "The request processing time in seconds"),
    "response_duration_seconds": ("time", "The time spent receiving the response from the upstream server"),
    "connect_duration_seconds": ("time", "The time spent establishing a connection with the upstream server"),
    "header_duration_seconds": ("time", "The time spent receiving the first header from the upstream server"),
    "request_size": ("length", "The request length (including request line, header, and request body)"),
    "response_size": ("length", "The response length (including request line, header, and request body)"),
    "bytes_sent": ("size", "The number of bytes sent to a client"),
}
METRIC_NAMES = ("requests", *HISTOGRAMS)


@dataclass(frozen=True)
class RequestMetricsOptions:
    per_host: bool = True  # --metrics-per-host
    exclude: frozenset[str] = frozenset()  # --exclude-socket-metrics (names with or without the prefix)
    buckets: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "time": TIME_BUCKETS, "length": LENGTH_BUCKETS, "size": SIZE_BUCKETS})

    def lua_bounds(self, kind: str) -> str:
        """The bounds of one kind as nginx's init_by_lua takes them."""
        return ",".join(repr(b) for b in self.buckets[kind])

    def wanted(self, name: str) -> bool:
        return name not in self.exclude and P + name not in self.exclude


def parse_buckets(text: str) -> tuple[float, ...]:
    """A bucket flag: comma-separated increasing positive numbers."""
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{text!r}: buckets are comma-separated numbers") from None
    if not values or len(values) > 40 or any(b <= 0 for b in values) or list(values) != sorted(set(values)):
        raise ValueError(f"{text!r}: 1-40 increasing positive numbers")
    return values


def _counter(name: str, doc: str) -> Metric:
    """A counter whose samples carry exactly `name`, as client_golang exposes it (untyped in
    the TYPE line: see metrics_compat.ExactCounter)."""
    return Metric(name, doc, "unknown")


def request_families(dump: str, opts: RequestMetricsOptions, controller: tuple[str, str, str]) -> list[Metric]:
    """The `key<TAB>value` lines of /ingressctl/metrics -> Prometheus families."""
    counts: dict[tuple[str, ...], float] = {}
    buckets: dict[tuple[str, tuple[str, ...]], dict[int, float]] = {}
    sums: dict[tuple[str, tuple[str, ...]], float] = {}
    for line in dump.splitlines():
        parts = line.split("\t")
        static = parts[6].split(" ") if len(parts) == 8 else []
        if len(static) != 4:
            continue
        name, slot, host, status, method, canary, raw = *parts[:6], parts[7]
        labels = (host, status, method, *static, canary)  # the order of LABELS
        try:
            value = float(raw)
        except ValueError:
            continue
        if not opts.per_host:
            labels = ("", *labels[1:])
        if name == "requests":
            counts[labels] = counts.get(labels, 0.0) + value
        elif name in HISTOGRAMS and slot == "s":
            sums[(name, labels)] = sums.get((name, labels), 0.0) + value
        elif name in HISTOGRAMS and slot.isdigit():
            per = buckets.setdefault((name, labels), {})
            per[int(slot)] = per.get(int(slot), 0.0) + value
    out: list[Metric] = []
    label_names = [*CONTROLLER_LABELS, *LABELS]
    if opts.wanted("requests"):
        fam = _counter(P + "requests", "The total number of client requests")
        for labels, value in sorted(counts.items()):
            fam.add_sample(P + "requests", dict(zip(label_names, (*controller, *labels), strict=True)), value)
        out.append(fam)
    for name, (kind, doc) in HISTOGRAMS.items():
        if not opts.wanted(name):
            continue
        bounds = opts.buckets[kind]
        hist = HistogramMetricFamily(P + name, doc, labels=label_names)
        for (hname, labels), per in sorted(buckets.items()):
            if hname != name:
                continue
            running, cumulative = 0.0, []
            for i, bound in enumerate(bounds, start=1):
                running += per.get(i, 0.0)
                cumulative.append((repr(bound), running))
            total = running + sum(v for i, v in per.items() if i > len(bounds))
            cumulative.append(("+Inf", total))
            hist.add_metric([*controller, *labels], cumulative, sums.get((name, labels), 0.0))
        out.append(hist)
    return out


_STUB = re.compile(r"Active connections:\s*(\d+).*?\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n"
                   r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)", re.S)


def stub_status_families(text: str, controller: tuple[str, str, str]) -> list[Metric]:
    """nginx's stub_status page -> ingress-nginx's nginx_process_* connection metrics."""
    m = _STUB.search(text)
    if not m:
        return []
    active, accepted, handled, requests, reading, writing, waiting = (float(x) for x in m.groups())
    names = [*CONTROLLER_LABELS, "state"]
    current = GaugeMetricFamily(P + "nginx_process_connections", "current number of client connections with state",
                                labels=names)
    for state, value in (("active", active), ("reading", reading), ("writing", writing), ("waiting", waiting)):
        current.add_metric([*controller, state], value)
    total = _counter(P + "nginx_process_connections_total", "total number of connections with state")
    for state, value in (("accepted", accepted), ("handled", handled)):
        total.add_sample(P + "nginx_process_connections_total", dict(zip(names, (*controller, state), strict=True)),
                         value)
    reqs = _counter(P + "nginx_process_requests_total", "total number of client requests")
    reqs.add_sample(P + "nginx_process_requests_total", dict(zip(CONTROLLER_LABELS, controller, strict=True)),
                    requests)
    return [current, total, reqs]


def process_families(samples: list[ProcessSample], controller: tuple[str, str, str]) -> list[Metric]:
    """nginx's master and workers -> ingress-nginx's nginx_process_* resource metrics."""
    if not samples:
        return []
    labels = dict(zip(CONTROLLER_LABELS, controller, strict=True))
    out = []
    for name, typ, doc, value in (
            ("nginx_process_num_procs", "gauge", "number of nginx processes", float(len(samples))),
            ("nginx_process_cpu_seconds_total", "unknown", "CPU seconds of the nginx processes now running",
             sum(s.cpu_seconds for s in samples)),
            ("nginx_process_resident_memory_bytes", "gauge", "resident memory of the nginx processes",
             sum(s.resident_bytes for s in samples)),
            ("nginx_process_virtual_memory_bytes", "gauge", "virtual memory of the nginx processes",
             sum(s.virtual_bytes for s in samples)),
            ("nginx_process_oldest_start_time_seconds", "gauge", "start time of the oldest nginx process",
             min(s.start_time for s in samples))):
        fam = Metric(P + name, doc, typ)
        fam.add_sample(P + name, labels, value)
        out.append(fam)
    return out


class NginxCollector(Collector):
    """Reads nginx's numbers at scrape time; nothing when nginx does not answer."""

    def __init__(self, fetch: Callable[[str], str], opts: RequestMetricsOptions, controller: tuple[str, str, str],
                 request_metrics: bool, processes: Callable[[], list[ProcessSample]] = list) -> None:
        self.fetch, self.opts, self.controller, self.request_metrics = fetch, opts, controller, request_metrics
        self.processes = processes

    def collect(self) -> Iterator[Metric]:
        yield from process_families(self.processes(), self.controller)
        yield from self._safely("/ingressctl/nginx_status", lambda text: stub_status_families(text, self.controller))
        if self.request_metrics:
            yield from self._safely("/ingressctl/metrics",
                                    lambda text: request_families(text, self.opts, self.controller))

    def _safely(self, path: str, make: Callable[[str], Iterable[Metric]]) -> Iterable[Metric]:
        try:
            return make(self.fetch(path))
        except OSError as e:
            log.debug("nginx metrics %s: %s", path, e)
            return []
