"""Debug pages of the status port: the live endpoint table and the live nginx.conf.

`kubectl ingressctl backends|conf` read them through a port-forward. They are answered only
to loopback clients (a port-forward arrives on the pod's loopback): the configuration names
every tenant's hosts, paths and backends, and any pod can reach the status port, which the
kubelet's probes need on the pod address.

Design choice: the pages read what the controller already holds (`live_model`, the file
nginx loaded); nothing is recomputed for a request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .ingress.model import Model

Page = Callable[[], tuple[int, str, str]]  # status, content type, body


def backends_table(model: Model | None) -> list[dict[str, object]]:
    if model is None:
        return []
    return [{"upstream": u.name, "service": u.service, "port": u.port,
             "endpoints": [e.hostport for e in u.endpoints],
             **({"externalName": f"{u.external_name}:{u.external_port}"} if u.external else {})}
            for u in model.upstreams]


def debug_pages(live_model: Callable[[], Model | None], conf: Path) -> dict[str, Page]:
    def backends() -> tuple[int, str, str]:
        return 200, "application/json", json.dumps(backends_table(live_model()), indent=2) + "\n"

    def nginx_conf() -> tuple[int, str, str]:
        try:
            return 200, "text/plain; charset=utf-8", conf.read_text()
        except OSError as e:
            return 503, "text/plain", f"no live configuration: {e.strerror}\n"

    return {"/debug/backends": backends, "/debug/nginx.conf": nginx_conf}
