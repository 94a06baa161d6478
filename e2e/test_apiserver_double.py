"""The API server double against the official typed `kubernetes` client: if the generated
client can deserialize its answers and gets the errors the API reference documents, the
controller's tests through the double mean something.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from .apiserver import ApiServer
from .cluster import TOKEN, endpoint_slice, ingress, service, start_apiserver


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    s = start_apiserver(tmp_path, bookmark_interval=0.2)
    yield s
    s.stop()


def _api(server: ApiServer, token: str | None = TOKEN) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    cfg.host = server.url
    cfg.ssl_ca_cert = str(server.ca_path)  # type: ignore[attr-defined]
    if token:
        cfg.api_key = {"authorization": f"Bearer {token}"}
    return k8s.ApiClient(cfg)


def _status(e: ApiException) -> dict:  # type: ignore[type-arg]
    return json.loads(e.body)


def test_list_selectors_and_auth(server: ApiServer) -> None:
    web = service("web")
    web["metadata"]["labels"] = {"app": "web", "tier": "front"}
    db = service("db")
    db["metadata"]["labels"] = {"app": "db", "tier": "back"}
    server.apply(web, db, service("other", "team-b"))
    core = k8s.CoreV1Api(_api(server))
    names = lambda lst: sorted(i.metadata.name for i in lst.items)
    assert names(core.list_service_for_all_namespaces()) == ["db", "other", "web"]
    assert names(core.list_namespaced_service("default", label_selector="app in (web,db),tier!=back")) == ["web"]
    assert names(core.list_namespaced_service("default", label_selector="!tier")) == []
    assert names(core.list_service_for_all_namespaces(field_selector="metadata.namespace=team-b")) == ["other"]
    listed = core.list_namespaced_service("default")
    assert int(listed.metadata.resource_version) >= 1003
    assert listed.items[0].spec.cluster_ip.startswith("10.96.")  # allocated like the API server does
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_service("default", field_selector="spec.type=ClusterIP")
    assert bad.value.status == 400
    with pytest.raises(ApiException) as unauth:
        k8s.CoreV1Api(_api(server, token=None)).list_namespaced_service("default")
    assert unauth.value.status == 401 and _status(unauth.value)["reason"] == "Unauthorized"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_service("nope", "default")
    assert missing.value.status == 404 and _status(missing.value)["kind"] == "Status"


def test_lease_optimistic_concurrency(server: ApiServer) -> None:
    coord = k8s.CoordinationV1Api(_api(server))
    lease = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name="lock"), spec=k8s.V1LeaseSpec(holder_identity="a"))
    created = coord.create_namespaced_lease("ingressctl", lease)
    with pytest.raises(ApiException) as exists:
        coord.create_namespaced_lease("ingressctl", lease)
    assert exists.value.status == 409 and _status(exists.value)["reason"] == "AlreadyExists"
    created.spec.holder_identity = "b"
    updated = coord.replace_namespaced_lease("lock", "ingressctl", created)
    assert updated.metadata.resource_version != created.metadata.resource_version
    created.spec.holder_identity = "c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        coord.replace_namespaced_lease("lock", "ingressctl", created)
    assert stale.value.status == 409 and _status(stale.value)["reason"] == "Conflict"
    assert coord.read_namespaced_lease("lock", "ingressctl").spec.holder_identity == "b"


def test_status_subresource_is_separate(server: ApiServer) -> None:
    server.apply(ingress("app", "app.example.com", "web"))
    net = k8s.NetworkingV1Api(_api(server))
    patch = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    out = net.patch_namespaced_ingress_status("app", "default", patch, _content_type="application/merge-patch+json")
    assert out.status.load_balancer.ingress[0].ip == "192.0.2.1"
    generation = out.metadata.generation
    out.spec.rules[0].host = "changed.example.com"
    out.status.load_balancer.ingress[0].ip = "198.51.100.1"  # ignored on the main resource
    replaced = net.replace_namespaced_ingress("app", "default", out)
    assert replaced.spec.rules[0].host == "changed.example.com"
    assert replaced.status.load_balancer.ingress[0].ip == "192.0.2.1"
    assert replaced.metadata.generation == generation + 1


def _watch_lines(server: ApiServer, rv: str, seconds: int = 2) -> list[dict]:  # type: ignore[type-arg]
    disc = k8s.DiscoveryV1Api(_api(server))
    resp = disc.list_namespaced_endpoint_slice("default", watch=True, resource_version=rv,
                                               allow_watch_bookmarks=True, timeout_seconds=seconds,
                                               label_selector="kubernetes.io/service-name=web",
                                               _preload_content=False)
    return [json.loads(line) for line in resp.data.splitlines() if line.strip()]


def test_watch_replays_bookmarks_selector_transitions_and_410(server: ApiServer) -> None:
    disc = k8s.DiscoveryV1Api(_api(server))
    rv = disc.list_namespaced_endpoint_slice("default").metadata.resource_version
    server.apply(endpoint_slice("web", [8080]))
    moved = endpoint_slice("web", [8081])
    moved["metadata"]["labels"] = {"kubernetes.io/service-name": "other"}
    server.apply(moved)  # stops matching the selector: a DELETED for this watch
    events = _watch_lines(server, rv, seconds=1)
    assert [e["type"] for e in events if e["type"] != "BOOKMARK"] == ["ADDED", "DELETED"]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv) + 2
    assert events[0]["object"]["kind"] == "EndpointSlice"  # watch objects carry kind, list items do not

    server.store.compact()
    (gone,) = _watch_lines(server, rv)
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410 and gone["object"]["reason"] == "Expired"
