"""Cluster mode: where the published address comes from (--publish-service, NODE_NAME),
status removed from an Ingress that leaves our class, the controller ConfigMap, the
--watch-namespace scope, and deploy/base/rbac.yaml being exactly what the code uses.
"""

# ruff: noqa: F811 - the fixtures `api` and `cluster_controllers` are imported from .cluster
from __future__ import annotations

from pathlib import Path

from .cluster import (
    CLASS,
    ApiServer,
    ClusterController,
    api,  # noqa: F401 - fixture
    cluster_controllers,  # noqa: F401 - fixture
    endpoint_slice,
    ingress,
    ingress_status,
    objects,
    rbac_rules,
    service,
    start_controller,
)
from .harness import Backends, free_port, wait_until
from .test_cluster_gateway import _gateway_objects

PUBLISHED = objects("""
    apiVersion: v1
    kind: Service
    metadata: {name: ingressctl, namespace: default}
    spec:
      type: LoadBalancer
      ports: [{name: http, port: 80}]
    status:
      loadBalancer:
        ingress: [{ip: 192.0.2.20}]
    """)[0]

NODE = objects("""
    apiVersion: v1
    kind: Node
    metadata: {name: node-1}
    status:
      addresses:
      - {type: InternalIP, address: 10.1.2.3}
      - {type: ExternalIP, address: 192.0.2.30}
    """)[0]


def _configmap(data: dict[str, str]) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ingressctl", "namespace": "default"},
            "data": data}


GRPC_ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
              "metadata": {"name": "g", "namespace": "default"},
              "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"],
                       "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}


def test_status_sources_class_change_configmap_namespace_and_rbac(
        tmp_path: Path, api: ApiServer, backends: Backends, cluster_controllers: list[ClusterController]) -> None:
    a = backends.start("a")
    other = ingress("elsewhere", "elsewhere.example.com", "web", namespace="team-b")
    api.apply(CLASS, PUBLISHED, NODE, service("web"), endpoint_slice("web", [a]),
              ingress("app", "app.example.com", "web"), ingress("broken", "broken.example.com", "missing"),
              _configmap({"proxy-body-size": "100", "no-such-key": "x"}),
              service("web", "team-b"), endpoint_slice("web", [a], "team-b"), other,
              *_gateway_objects(free_port(), "web"), GRPC_ROUTE)  # Gateway API status: the gateway.networking.k8s.io rules
    ctl = start_controller(cluster_controllers, tmp_path, api, "pub", "--publish-service", "default/ingressctl",
                           "--configmap", "default/ingressctl", "--watch-namespace", "default",
                           "--event-interval", "1")
    wait_until(lambda: ingress_status(api, "default", "app") == [{"ip": "192.0.2.20"}], 10, "publish-service IP")
    wait_until(lambda: bool(api.get("HTTPRoute", "default", "r").get("status")), 10, "HTTPRoute status")
    wait_until(lambda: bool(api.get("GRPCRoute", "default", "g").get("status")), 10, "GRPCRoute status")
    assert ingress_status(api, "team-b", "elsewhere") == []  # outside --watch-namespace: not ours
    assert ctl.get("elsewhere.example.com").status == 404

    # the ConfigMap applies (body limit), and the unknown key is reported
    assert ctl.get("app.example.com", method="POST", body=b"x" * 50).backend == "a"
    assert ctl.get("app.example.com", method="POST", body=b"x" * 500).status == 413
    assert "no-such-key" in ctl.log_path.read_text(errors="replace")
    wait_until(lambda: any(e["involvedObject"] == {**e["involvedObject"], "kind": "ConfigMap", "name": "ingressctl"}
                           and e["reason"] == "UnknownConfigMapKey" and e["type"] == "Warning"
                           and "no-such-key" in e["message"] for e in api.list("Event", "default")),
               5, "a Warning Event on the ConfigMap for its unknown key")
    api.apply(_configmap({"proxy-body-size": "1m"}))
    wait_until(lambda: ctl.get("app.example.com", method="POST", body=b"x" * 500).backend == "a", 5,
               "ConfigMap change applied")

    # the published Service's address changes: status follows
    api.apply({**PUBLISHED, "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}})
    wait_until(lambda: ingress_status(api, "default", "app") == [{"hostname": "lb.example.com"}], 5,
               "status follows the published Service")

    # the Ingress leaves our class: our address is removed
    api.apply(ingress("app", "app.example.com", "web", class_name="someone-else"))
    wait_until(lambda: ingress_status(api, "default", "app") == [], 5, "status removed from a foreign Ingress")
    wait_until(lambda: _event_count(api, "broken") >= 2, 5, "Event for the broken Ingress counted again")
    ctl.stop()

    # hostNetwork DaemonSet style: the node's ExternalIP
    api.apply(ingress("app", "app.example.com", "web"))
    start_controller(cluster_controllers, tmp_path, api, "node", env={"NODE_NAME": "node-1"})
    wait_until(lambda: ingress_status(api, "default", "app") == [{"ip": "192.0.2.30"}], 10, "node ExternalIP")

    # RBAC: every verb in deploy/base/rbac.yaml was used, and nothing else was asked for
    granted = {(v, g, r) for rule in rbac_rules() for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert api.used() == granted
    assert not api.denied


def _event_count(api: ApiServer, name: str) -> int:
    return sum(int(e.get("count") or 1) for e in api.list("Event", "default") if e["involvedObject"]["name"] == name)
