"""Prometheus metrics of the controller, in a registry of their own (one per controller)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from .ingress.model import Problem


class ControllerMetrics:
    """Ours; `record_apply` and `record_problems` are what a sync reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        for default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # process_* and python_*
            r.register(default)
        self.reloads = Counter("ingressctl_nginx_reloads", "nginx reloads (and first starts) that went live", registry=r)
        self.reload_failures = Counter("ingressctl_nginx_reload_failures",
                                       "configurations refused by nginx -t or not confirmed live", registry=r)
        self.last_reload_success = Gauge("ingressctl_nginx_last_reload_successful",
                                         "1 if the last reload attempt went live, else 0", registry=r)
        self.last_reload_timestamp = Gauge("ingressctl_nginx_last_reload_success_timestamp_seconds",
                                           "when the last successful reload went live", registry=r)
        self.config_hash = Gauge("ingressctl_config_hash", "hash of the live configuration (as a number)",
                                 registry=r)
        self.sync_duration = Histogram("ingressctl_sync_duration_seconds", "build + render + apply time",
                                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.problems = Gauge("ingressctl_problems", "problems found by the last build, by reason",
                              ["reason"], registry=r)
        self.invalid_ingresses = Gauge("ingressctl_invalid_ingresses", "Ingresses skipped as invalid", registry=r)
        self.endpoint_updates = Counter("ingressctl_endpoint_updates",
                                        "endpoint changes applied through the Lua balancer, without a reload",
                                        registry=r)
        self.nginx_restarts = Counter("ingressctl_nginx_restarts", "times nginx died and was restarted", registry=r)

    def record_apply(self, ok: bool, changed: bool, config_id: str, seconds: float) -> None:
        """One sync's outcome: its duration, and for a reload attempt whether it went live."""
        self.sync_duration.observe(seconds)
        if not changed:
            return
        self.last_reload_success.set(1 if ok else 0)
        if ok:
            self.reloads.inc()
            self.last_reload_timestamp.set(time.time())
            self.config_hash.set(int(config_id[:12], 16))

    def record_problems(self, problems: Iterable[Problem]) -> None:
        """The last build's problems by reason, and the Ingresses refused."""
        problems = list(problems)
        self.problems.clear()
        counts: dict[str, int] = {}
        for p in problems:
            counts[p.reason] = counts.get(p.reason, 0) + 1
        for reason, n in counts.items():
            self.problems.labels(reason).set(n)
        self.invalid_ingresses.set(len({(p.namespace, p.name) for p in problems if not p.warning}))
