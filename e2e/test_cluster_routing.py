"""Cluster mode end to end: `ingressctl controller` with real nginx, fed by the API server
double over HTTPS with the RBAC rules of deploy/base/rbac.yaml (any other request fails the
test). Traffic must follow creates, updates and deletes, and survive a dropped watch, a
410 Gone and an API server restart without ever serving a wrong backend.
"""

# ruff: noqa: F811 - the fixtures `api` and `cluster_controllers` are imported from .cluster
from __future__ import annotations

import time
from pathlib import Path

from .cluster import (
    CLASS,
    ApiServer,
    ClusterController,
    api,  # noqa: F401 - fixture
    cluster_controllers,  # noqa: F401 - fixture
    endpoint_slice,
    ingress,
    service,
    start_controller,
)
from .harness import Backends, wait_until

HOST = "app.example.com"


def _backend(ctl: ClusterController, host: str = HOST, path: str = "/") -> str:
    r = ctl.get(host, path)
    return r.backend if r.status == 200 else str(r.status)


def _serves(ctl: ClusterController, expected: str, host: str = HOST, path: str = "/") -> bool:
    return _backend(ctl, host, path) == expected


def _full_log(ctl: ClusterController) -> str:
    return ctl.log_path.read_text(errors="replace")  # ctl.log() is only the tail


def _never_other(ctl: ClusterController, allowed: set[str], seconds: float, host: str = HOST) -> int:
    """Poll for a bounded time; fail on any answer not in `allowed`. Returns requests made."""
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end and n < 2000:
        got = _backend(ctl, host)
        assert got in allowed, f"served {got!r}, expected one of {allowed}"
        n += 1
        time.sleep(0.01)
    return n


def _base(api: ApiServer, backends: Backends) -> tuple[int, int]:
    a, b = backends.start("a"), backends.start("b")
    api.apply(CLASS, service("web"), endpoint_slice("web", [a]), ingress("app", HOST, "web"))
    return a, b


def test_traffic_follows_creates_updates_and_deletes(tmp_path: Path, api: ApiServer, backends: Backends,
                                                       cluster_controllers: list[ClusterController]) -> None:
    a, b = _base(api, backends)
    ctl = start_controller(cluster_controllers, tmp_path, api, "ctl")
    wait_until(lambda: _serves(ctl, "a"), 5, "backend a via the initial list")

    api.apply(endpoint_slice("web", [b]))  # EndpointSlice update
    wait_until(lambda: _serves(ctl, "b"), 5, "EndpointSlice update -> backend b")

    api.apply(service("api"), endpoint_slice("api", [a]), ingress("api", "api.example.com", "api"))  # creates
    wait_until(lambda: _serves(ctl, "a", "api.example.com"), 5, "new Ingress + Service + slice")

    api.apply(ingress("app", HOST, "api"))  # Ingress update: app now routes to the api Service
    wait_until(lambda: _serves(ctl, "a"), 5, "Ingress backend change")

    api.remove("EndpointSlice", "default", "api-a")  # no endpoints left: 503
    wait_until(lambda: _serves(ctl, "503", "api.example.com"), 5, "EndpointSlice delete -> 503")

    api.remove("Service", "default", "api")
    api.remove("Ingress", "default", "api")  # no rule for the host: default backend (404)
    wait_until(lambda: _serves(ctl, "404", "api.example.com"), 5, "Ingress delete -> 404")
    assert _backend(ctl) == "503"  # app still points at the deleted Service: 503, not a crash


def test_dropped_watch_and_410_are_survived(tmp_path: Path, api: ApiServer, backends: Backends,
                                            cluster_controllers: list[ClusterController]) -> None:
    a, b = _base(api, backends)
    ctl = start_controller(cluster_controllers, tmp_path, api, "ctl")
    wait_until(lambda: _serves(ctl, "a"), 5, "backend a")

    api.drop_watches()  # connections cut mid-stream: the client resumes from its resourceVersion
    _never_other(ctl, {"a"}, 0.3)
    api.apply(endpoint_slice("web", [b]))
    wait_until(lambda: _serves(ctl, "b"), 5, "change after a dropped watch")
    relists = _full_log(ctl).count("relisting")

    api.store.compact()  # history gone: resuming now answers 410 Gone
    api.drop_watches()
    api.apply(endpoint_slice("web", [a]))
    wait_until(lambda: _serves(ctl, "a"), 5, "change after 410 Gone and relist")
    assert _full_log(ctl).count("relisting") > relists, ctl.log()
    _never_other(ctl, {"a"}, 0.3)


def test_api_restart_keeps_last_config_and_relists_everything(
        tmp_path: Path, api: ApiServer, backends: Backends, cluster_controllers: list[ClusterController]) -> None:
    _, b = _base(api, backends)
    api.apply(ingress("old", "old.example.com", "web"))
    ctl = start_controller(cluster_controllers, tmp_path, api, "ctl")
    wait_until(lambda: _serves(ctl, "a") and _serves(ctl, "a", "old.example.com"), 5, "initial config")

    api.stop()  # unreachable: nginx keeps the last configuration
    assert _never_other(ctl, {"a"}, 1.0) > 10
    # while it is down the cluster changes; the watch history is lost with the restart
    api.remove("Ingress", "default", "old")
    api.apply(endpoint_slice("web", [b]))
    api.store.compact()
    api.start()
    wait_until(lambda: _serves(ctl, "b"), 10, "changes made while the API server was down")
    wait_until(lambda: _serves(ctl, "404", "old.example.com"), 5, "Ingress deleted while down is gone")
    _never_other(ctl, {"b"}, 0.3)
    assert "expired (410); relisting" in _full_log(ctl), ctl.log()

