"""Cluster mode: Gateway API objects from the API server double (deploy/base/rbac.yaml's
rules only) reach nginx on the listener's own port; without the CRDs the controller still
serves Ingresses."""

# ruff: noqa: F811 - the fixtures `api` and `cluster_controllers` are imported from .cluster
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import apiserver
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
from .harness import Backends, free_port, request, wait_until

G = "gateway.networking.k8s.io/v1"


def _gateway_objects(port: int, backend: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": G, "kind": "GatewayClass", "metadata": {"name": "ours"},
         "spec": {"controllerName": "ingressctl.io/gateway-controller"}},
        {"apiVersion": G, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"gatewayClassName": "ours", "listeners": [{"name": "http", "protocol": "HTTP", "port": port}]}},
        _route(backend),
    ]


def _route(backend: str) -> dict[str, Any]:
    return {"apiVersion": G, "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["gw.example.com"],
                     "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]}}


def _backend(port: int, host: str = "gw.example.com") -> str:
    r = request(port, host)
    return r.backend if r.status == 200 else str(r.status)


def test_httproute_from_the_api_is_served_and_follows_updates(tmp_path: Path, api: ApiServer, backends: Backends,
                                                             cluster_controllers: list[ClusterController]) -> None:
    a, b = backends.start("a"), backends.start("b")
    port = free_port()
    api.apply(service("a"), endpoint_slice("a", [a]), service("b"), endpoint_slice("b", [b]),
              *_gateway_objects(port, "a"))
    start_controller(cluster_controllers, tmp_path, api, "c1")
    wait_until(lambda: _backend(port) == "a", 10, "the HTTPRoute served on the listener port")
    api.apply(_route("b"))
    wait_until(lambda: _backend(port) == "b", 10, "the updated HTTPRoute")
    api.remove("HTTPRoute", "default", "r")
    wait_until(lambda: _backend(port) == "404", 10, "the deleted HTTPRoute")


def test_without_the_gateway_api_crds_ingresses_are_still_served(
        tmp_path: Path, api: ApiServer, backends: Backends, cluster_controllers: list[ClusterController],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apiserver, "RESOURCES", {k: r for k, r in apiserver.RESOURCES.items()
                                                 if not k[0].startswith("gateway.networking.k8s.io")})
    a = backends.start("a")
    api.apply(CLASS, service("a"), endpoint_slice("a", [a]), ingress("app", "app.example.com", "a"))
    ctl = start_controller(cluster_controllers, tmp_path, api, "c1")
    wait_until(lambda: ctl.get("app.example.com").backend == "a", 10, "the Ingress served")
    assert "does not serve this kind" in ctl.log_path.read_text(errors="replace")


def _conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj.get("conditions") or []}


def test_the_leader_writes_gateway_api_status(tmp_path: Path, api: ApiServer, backends: Backends,
                                             cluster_controllers: list[ClusterController]) -> None:
    a = backends.start("a")
    port = free_port()
    other = {"parentRef": {"name": "elsewhere"}, "controllerName": "example.com/other", "conditions": []}
    api.apply(service("a"), endpoint_slice("a", [a]), *_gateway_objects(port, "a"),
              {**_route("a"), "status": {"parents": [other]}})
    start_controller(cluster_controllers, tmp_path, api, "c1")

    def route_parents() -> list[dict[str, Any]]:
        return list((api.get("HTTPRoute", "default", "r").get("status") or {}).get("parents") or [])
    wait_until(lambda: len(route_parents()) == 2, 10, "HTTPRoute status written")
    theirs, ours = route_parents()
    assert theirs == other  # another controller's entry is kept
    assert ours["controllerName"] == "ingressctl.io/gateway-controller"
    assert ours["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "default",
                                 "name": "gw"}
    assert _conditions(ours) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    gw = api.get("Gateway", "default", "gw")["status"]
    assert _conditions(gw)["Programmed"] == ("True", "Programmed")
    assert gw["listeners"][0]["attachedRoutes"] == 1
    assert gw["listeners"][0]["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": k}
                                                    for k in ("HTTPRoute", "GRPCRoute")]
    assert _conditions(api.get("GatewayClass", "", "ours")["status"]) == {"Accepted": ("True", "Accepted")}

    api.apply(_route("nosuch"))  # the route changes: ResolvedRefs follows
    wait_until(lambda: _conditions(route_parents()[-1]).get("ResolvedRefs") == ("False", "BackendNotFound"), 10,
               "ResolvedRefs=False/BackendNotFound")


def test_grpc_route_status_is_written_to_the_grpcroute(tmp_path: Path, api: ApiServer, backends: Backends,
                                                      cluster_controllers: list[ClusterController]) -> None:
    a = backends.start("a")
    port = free_port()
    grpc_route = {"apiVersion": G, "kind": "GRPCRoute", "metadata": {"name": "r", "namespace": "default"},
                  "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"],
                           "rules": [{"matches": [{"method": {"service": "pkg.Svc"}}],
                                      "backendRefs": [{"name": "nosuch", "port": 80}]}]}}
    api.apply(service("a"), endpoint_slice("a", [a]), *_gateway_objects(port, "a"), grpc_route)
    start_controller(cluster_controllers, tmp_path, api, "c1")

    def parents(kind: str) -> list[dict[str, Any]]:
        return list((api.get(kind, "default", "r").get("status") or {}).get("parents") or [])
    wait_until(lambda: parents("GRPCRoute") and parents("HTTPRoute"), 10, "both routes' status written")
    (grpc,) = parents("GRPCRoute")  # the HTTPRoute of the same name keeps its own status
    assert _conditions(grpc) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "BackendNotFound")}
    assert _conditions(parents("HTTPRoute")[0])["ResolvedRefs"] == ("True", "ResolvedRefs")
    wait_until(lambda: api.get("Gateway", "default", "gw")["status"]["listeners"][0]["attachedRoutes"] == 2, 10,
               "both routes counted")
