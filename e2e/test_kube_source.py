"""`sources/kube.py` in process against the API server double: a 410 relist swaps a kind in
one step (a Store listener never sees a half-empty snapshot), changes made while the API
was down are all picked up, and `--watch-namespace` / the ConfigMap selector scope what is read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingressctl.kube.client import connect
from ingressctl.sources.kube import KubeSource, default_specs
from ingressctl.store import Change, Store

from .apiserver import ApiServer
from .cluster import (
    CLASS,
    TOKEN,
    endpoint_slice,
    ingress,
    service,
    start_apiserver,
    write_kubeconfig,
)
from .harness import wait_until


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = start_apiserver(tmp_path, bookmark_interval=0.2)
    yield server
    server.stop()


def _source(tmp_path: Path, api: ApiServer, store: Store, **kw: str) -> KubeSource:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    return KubeSource(connect(str(kubeconfig)), store, default_specs(**kw), watch_seconds=5, backoff_cap=0.5)


def test_relist_after_410_never_exposes_a_half_empty_store(tmp_path: Path, api: ApiServer) -> None:
    api.apply(CLASS, service("web"), endpoint_slice("web", [8080]),
              *(ingress(f"app{i}", f"app{i}.example.com", "web") for i in range(40)))
    store = Store()
    seen: list[int] = []
    store.subscribe(lambda change: seen.append(len(store.snapshot().ingresses)))
    source = _source(tmp_path, api, store)
    source.start(source.initial_sync())
    try:
        assert seen == [40]  # the initial lists land as one change
        api.stop()  # while it is down: one Ingress goes, one changes, one is added
        api.remove("Ingress", "default", "app0")
        api.apply(ingress("app1", "moved.example.com", "web"), ingress("app40", "app40.example.com", "web"))
        api.store.compact()
        api.start()
        want = sorted(f"default/app{i}" for i in range(1, 41))
        wait_until(lambda: sorted(store.snapshot().ingresses) == want, 10, "changes made while down")
        wait_until(lambda: source.stats.relists >= 5, 10, "every kind relisted after 410")
        snap = store.snapshot()
        assert snap.ingresses["default/app1"].rules[0].host == "moved.example.com"
        assert min(seen) == 40, seen  # never fewer Ingresses than the cluster had
        assert source.stats.errors > 0  # it did notice the outage
    finally:
        source.stop()


def test_namespace_and_configmap_scope(tmp_path: Path, api: ApiServer) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ctl", "namespace": "infra"}, "data": {}}
    other_cm = {**cm, "metadata": {"name": "unrelated", "namespace": "elsewhere"}}
    headers_cm = {**cm, "metadata": {"name": "headers", "namespace": "infra"}}  # add-headers may name it
    api.apply(CLASS, cm, other_cm, headers_cm, ingress("a", "a.example.com", "web", namespace="team-a"),
              ingress("b", "b.example.com", "web", namespace="team-b"))
    store = Store()
    changes: list[Change] = []
    store.subscribe(changes.append)
    source = _source(tmp_path, api, store, watch_namespace="team-a", configmap="infra/ctl")
    source.start(source.initial_sync())
    try:
        snap = store.snapshot()
        assert list(snap.ingresses) == ["team-a/a"] and sorted(snap.configmaps) == ["infra/ctl", "infra/headers"]
        assert list(snap.classes) == ["nginx"]  # cluster-scoped: not limited by the namespace
        before = len(changes)
        api.apply(ingress("b2", "b2.example.com", "web", namespace="team-b"), {**other_cm, "data": {"x": "1"}})
        api.apply(ingress("a2", "a2.example.com", "web", namespace="team-a"))
        wait_until(lambda: "team-a/a2" in store.snapshot().ingresses, 5, "watched namespace change")
        assert len(changes) == before + 1  # the other namespaces' Ingress and ConfigMap never arrived
        assert all(r[4] in ("", "team-a", "infra") for r in api.requests)
    finally:
        source.stop()


# -- issue 11 item 7: after the API comes back -------------------------------------------------

def _restore_older_backup(api: ApiServer, *objects: dict) -> None:  # type: ignore[type-arg]
    """An etcd restore: every object again, resourceVersions far behind the ones seen."""
    from .apistore import ApiStore

    api.store = ApiStore(start_rv=10)
    api.apply(*objects)


def test_a_control_plane_restored_from_a_backup_is_relisted(tmp_path: Path, api: ApiServer) -> None:
    base = [CLASS, service("web"), endpoint_slice("web", [8080])]
    api.apply(*base, ingress("keep", "keep.example.com", "web"))
    for i in range(30):  # resourceVersions move on
        api.apply(ingress("gone", f"gone{i}.example.com", "web"))
    store = Store()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    source = KubeSource(connect(str(kubeconfig)), store, default_specs(), watch_seconds=5, backoff_cap=0.5,
                        relist_after=0.5)
    source.start(source.initial_sync())
    try:
        api.stop()
        _restore_older_backup(api, *base, ingress("keep", "keep.example.com", "web"))  # "gone" is not in it
        time.sleep(1.0)  # longer than relist_after
        api.start()
        wait_until(lambda: sorted(store.snapshot().ingresses) == ["default/keep"], 10,
                   "the Ingress missing from the restored store removed")
    finally:
        source.stop()


def test_the_periodic_resync_repairs_what_the_watches_missed(tmp_path: Path, api: ApiServer) -> None:
    base = [CLASS, service("web"), endpoint_slice("web", [8080])]
    api.apply(*base, ingress("keep", "keep.example.com", "web"), ingress("gone", "gone.example.com", "web"))
    store = Store()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    source = KubeSource(connect(str(kubeconfig)), store, default_specs(), watch_seconds=5, backoff_cap=0.5,
                        resync=1.0)
    source.start(source.initial_sync())
    try:
        with api.store.cond:  # lost without an event (a store the watches do not see): no 410, no outage
            for key in [k for k in api.store.objects if k[1] == "ingresses" and k[3] == "gone"]:
                del api.store.objects[key]
        wait_until(lambda: sorted(store.snapshot().ingresses) == ["default/keep"], 10, "the resync")
        assert source.stats.resyncs > 0
    finally:
        source.stop()


def test_the_watch_comes_back_when_the_api_answers_not_when_the_backoff_ends(tmp_path: Path, api: ApiServer) -> None:
    api.apply(CLASS, service("web"), endpoint_slice("web", [8080]))
    store = Store()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    # the first retry waits 10-20 s: coming back within 5 s means the probe found the API
    source = KubeSource(connect(str(kubeconfig)), store, default_specs(), watch_seconds=5, backoff_base=20,
                        backoff_cap=60, relist_after=60)
    source.start(source.initial_sync())
    try:
        api.stop()
        wait_until(lambda: source.stats.errors >= 1, 10, "the watches failing")
        time.sleep(1.0)  # every watch has noticed by now, and is in its 10-20 s backoff
        api.start()
        api.apply(ingress("new", "new.example.com", "web"))
        wait_until(lambda: "default/new" in store.snapshot().ingresses, 5, "the watch back within a probe")
    finally:
        source.stop()
