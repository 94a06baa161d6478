"""Typed objects, the Store, the manifest-directory source and address allocation."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ingressctl.objects import ObjectError, Service, parse_object
from ingressctl.sources.allocate import AddressAllocator
from ingressctl.sources.files import ManifestDirectory
from ingressctl.store import Store

from .factory import endpoint_slice, ingress, service


# -- objects ---------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, message", [
    ({"kind": "Ingress", "metadata": {}}, "metadata.name: is required"),
    ({"kind": "Deployment", "metadata": {"name": "x"}}, "kind 'Deployment' is not one ingressctl reads"),
    ("just a string", "expected an object"),
    ({"kind": "Ingress", "metadata": {"name": "i"}, "spec": {"rules": {"host": "x"}}}, "spec.rules: expected a list"),
    ({"kind": "Ingress", "metadata": {"name": "i"}, "spec": {"rules": [{"http": {"paths": [
        {"path": "/", "pathType": "Regex", "backend": {"service": {"name": "s", "port": {"number": 1}}}}]}}]}},
     "pathType: 'Regex' is not Exact, Prefix or ImplementationSpecific"),
    ({"kind": "Ingress", "metadata": {"name": "i"}, "spec": {"defaultBackend": {"service": {
        "name": "s", "port": {"number": 70000}}}}}, "70000 is not in 1-65535"),
    ({"kind": "Ingress", "metadata": {"name": "i"}, "spec": {"defaultBackend": {"service": {
        "name": "s", "port": {"number": 80, "name": "http"}}}}}, "set number or name, not both"),
    ({"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "Magic"}}, "'Magic' is not a Service type"),
    ({"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": "80"}]}},
     "spec.ports[0].port: expected an integer"),
    ({"kind": "Service", "metadata": {"name": "s", "annotations": {"a": 1}}}, "must be a string (quote it)"),
    ({"kind": "EndpointSlice", "metadata": {"name": "e"}}, "needs the kubernetes.io/service-name label"),
    ({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}}, "data.k: not valid base64"),
])
def test_malformed_objects_are_refused_with_the_field(raw, message):
    with pytest.raises(ObjectError, match=None) as e:
        parse_object(raw)
    assert message in str(e.value)


def test_object_defaults():
    svc = parse_object({"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    assert isinstance(svc, Service)
    assert (svc.meta.namespace, svc.type, svc.ports[0].protocol, svc.ports[0].target_port) == \
        ("default", "ClusterIP", "TCP", 80)
    assert svc.affinity_timeout == 10800


# -- store -----------------------------------------------------------------------------------
def test_store_indexes_notifications_and_noop_updates():
    store = Store()
    changes = []
    store.subscribe(changes.append)
    assert store.apply(ingress("a", cls="nginx"))
    assert not store.apply(ingress("a", cls="nginx")), "an identical update is dropped"
    store.apply(endpoint_slice("web", name="s1"))
    store.apply(endpoint_slice("web", name="s2", addresses=["10.0.0.2"]))
    assert [i.meta.name for i in store.ingresses_by_class("nginx")] == ["a"]
    assert len(store.snapshot().slices("default", "web")) == 2
    store.apply(ingress("a", cls="other"))
    assert store.ingresses_by_class("nginx") == [] and len(store.ingresses_by_class("other")) == 1
    assert store.delete("EndpointSlice", "default", "s1")
    assert [s.meta.name for s in store.snapshot().slices("default", "web")] == ["s2"]
    assert [c.kinds for c in changes] == [{"Ingress"}, {"EndpointSlice"}, {"EndpointSlice"}, {"Ingress"},
                                          {"EndpointSlice"}]
    assert changes[-1].kinds == {"EndpointSlice"}


def test_store_replace_is_one_step():
    store = Store()
    store.replace(None, [ingress("a"), service("web")])
    seen = []
    store.subscribe(lambda c: seen.append(store.snapshot()))
    store.replace(["Ingress"], [ingress("b")])
    assert len(seen) == 1
    snap = seen[0]
    assert list(snap.ingresses) == ["default/b"] and list(snap.services) == ["default/web"]
    assert store.replace(["Ingress"], [ingress("b")]) is None


def test_snapshot_is_stable_while_store_changes():
    store = Store()
    store.apply(ingress("a"))
    snap = store.snapshot()
    store.apply(ingress("b"))
    assert list(snap.ingresses) == ["default/a"]
    assert snap is not store.snapshot()


# -- manifest directory ----------------------------------------------------------------------
SVC = "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: d}\nspec: {ports: [{port: 80}]}\n"


def test_multi_document_and_list_files(tmp_path: Path):
    (tmp_path / "multi.yaml").write_text(SVC % "a" + "---\n" + SVC % "b" + "---\n")
    (tmp_path / "list.yml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: c, namespace: d}}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.json").write_text('{"kind": "Service", "metadata": {"name": "e", "namespace": "d"}}')
    (tmp_path / "deploy.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    store = Store()
    assert ManifestDirectory(tmp_path, store).load() == []
    assert sorted(store.snapshot().services) == ["d/a", "d/b", "d/c", "d/e"]


def test_broken_file_reported_with_line_and_last_good_objects_kept(tmp_path: Path):
    f = tmp_path / "svc.yaml"
    f.write_text(SVC % "a")
    store = Store()
    src = ManifestDirectory(tmp_path, store)
    src.load()
    f.write_text(SVC % "a" + "---\nkind: Service\nmetadata:\n  name: b: c\nspec: {}\n")
    problems = src.load()
    assert any(p.path.endswith("svc.yaml") and p.line == 8 and "invalid YAML" in p.message for p in problems)
    assert any("keeping the objects" in p.message for p in problems)
    assert list(store.snapshot().services) == ["d/a"]
    f.write_text(SVC % "b")
    assert src.load() == [] and list(store.snapshot().services) == ["d/b"]


def test_malformed_object_reported_with_file_and_line(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text(SVC % "ok" + "---\n" + "kind: Service\nmetadata: {name: x}\nspec: {type: Nope}\n")
    store = Store()
    problems = ManifestDirectory(tmp_path, store).load()
    assert [(Path(p.path).name, p.line) for p in problems] == [("bad.yaml", 6)]  # where that object starts
    assert "'Nope' is not a Service type" in problems[0].message


def test_duplicate_object_across_files_first_wins(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(SVC % "same")
    (tmp_path / "b.yaml").write_text(SVC.replace("port: 80", "port: 81") % "same")
    store = Store()
    problems = ManifestDirectory(tmp_path, store).load()
    assert store.snapshot().services["d/same"].ports[0].port == 80
    assert "also defined in" in problems[0].message


def test_watch_coalesces_a_burst_of_edits(tmp_path: Path):
    store = Store()
    loads = []
    src = ManifestDirectory(tmp_path, store, debounce=0.3)
    original = src.load

    def counting_load():
        loads.append(time.monotonic())
        return original()

    src.load = counting_load  # type: ignore[method-assign]
    src.watch()
    try:
        for i in range(20):
            (tmp_path / f"s{i}.yaml").write_text(SVC % f"s{i}")
        deadline = time.monotonic() + 5
        while len(store.snapshot().services) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(store.snapshot().services) == 20
        assert len(loads) <= 3, f"20 writes caused {len(loads)} reloads"
    finally:
        src.stop()


# -- allocation ------------------------------------------------------------------------------
def _svc(name: str, **spec):
    return parse_object({"kind": "Service", "metadata": {"name": name, "namespace": "d"},
                         "spec": {"ports": [{"port": 80}], **spec}})


def test_cluster_ips_and_node_ports_assigned_like_the_api_server():
    alloc = AddressAllocator("10.96.0.0/24", (30000, 30002))
    out, problems = alloc.assign([_svc("a"), _svc("b", type="NodePort"), _svc("c", clusterIP="10.96.0.2"),
                                  _svc("h", clusterIP="None"), _svc("x", type="ExternalName", externalName="e.com"),
                                  _svc("lb", type="LoadBalancer")])
    by = {s.meta.name: s for s in out}
    assert problems == []
    assert by["c"].cluster_ip == "10.96.0.2"
    assert len({by[n].cluster_ip for n in "abc"}) == 3, "no duplicates"
    assert by["h"].cluster_ip == "None" and by["x"].cluster_ip == ""
    assert {by["b"].ports[0].node_port, by["lb"].ports[0].node_port} == {30000, 30001}
    assert by["a"].ports[0].node_port == 0


def test_unchanged_services_keep_their_filled_objects_unless_their_address_is_taken():
    alloc = AddressAllocator("10.96.0.0/24", (30000, 30002))
    a, b = _svc("a"), _svc("b", type="NodePort")
    first, _ = alloc.assign([a, b])
    again, _ = alloc.assign([a, b])
    assert [x is y for x, y in zip(first, again, strict=True)] == [True, True], "an unchanged file costs no copy"
    taker = _svc("c", clusterIP=first[0].cluster_ip, type="NodePort",
                 ports=[{"port": 80, "nodePort": first[1].ports[0].node_port}])
    third, problems = alloc.assign([a, b, taker])
    by = {s.meta.name: s for s in third}
    assert problems == []
    assert by["a"].cluster_ip != taker.cluster_ip, "an explicit claim wins over the memo"
    assert by["b"].ports[0].node_port != taker.ports[0].node_port


def test_allocation_is_stable_across_reloads_and_refuses_conflicts():
    alloc = AddressAllocator("10.96.0.0/24")
    first, _ = alloc.assign([_svc("a"), _svc("b")])
    second, _ = alloc.assign([_svc("b"), _svc("new"), _svc("a")])
    ip = {s.meta.name: s.cluster_ip for s in second}
    assert ip["a"] == first[0].cluster_ip and ip["b"] == first[1].cluster_ip
    _, problems = alloc.assign([_svc("a", clusterIP="10.96.0.5"), _svc("b", clusterIP="10.96.0.5"),
                                _svc("c", clusterIP="192.168.0.1"), _svc("d", type="NodePort",
                                                                         ports=[{"port": 1, "nodePort": 80}])])
    assert len(problems) == 3
    assert any("already allocated to Service d/a" in p for p in problems)
    assert any("not in the service CIDR" in p for p in problems)
    assert any("not in 30000-32767" in p for p in problems)


def test_a_new_service_never_takes_the_address_of_an_existing_one():
    """As the API server: an address stays with its Service, whatever sorts before it later."""
    alloc = AddressAllocator("10.96.0.0/24", (30000, 30002))
    first, _ = alloc.assign([_svc("b"), _svc("c", type="NodePort")])
    second, problems = alloc.assign([_svc("a", type="NodePort"), _svc("b"), _svc("c", type="NodePort")])
    by = {s.meta.name: s for s in second}
    assert problems == []
    assert (by["b"].cluster_ip, by["c"].cluster_ip) == (first[0].cluster_ip, first[1].cluster_ip)
    assert by["c"].ports[0].node_port == first[1].ports[0].node_port
    assert by["a"].cluster_ip not in (first[0].cluster_ip, first[1].cluster_ip)
    assert by["a"].ports[0].node_port != by["c"].ports[0].node_port


def test_concurrent_store_writes_are_safe():
    store = Store()
    threads = [threading.Thread(target=lambda i=i: [store.apply(ingress(f"i{i}-{k}")) for k in range(50)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.snapshot().ingresses) == 200


# -- issue 11 item 6: local mode keeps following its directory -------------------------------

def _wait(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def test_a_file_truncated_while_being_written_keeps_its_objects_until_it_settles(tmp_path: Path):
    f = tmp_path / "svc.yaml"
    f.write_text(SVC % "a" + "---\n" + SVC % "b")
    store = Store()
    src = ManifestDirectory(tmp_path, store, settle=0.6)
    src.load()
    f.write_text("")  # `cat > f` truncates first
    src.load()
    assert sorted(store.snapshot().services) == ["d/a", "d/b"]
    f.write_text(SVC % "a")  # cut at a document boundary (still shorter than before)
    src.load()
    assert sorted(store.snapshot().services) == ["d/a", "d/b"]
    time.sleep(0.7)  # the size stayed the same for longer than the bound: the edit is real
    src.load()
    assert sorted(store.snapshot().services) == ["d/a"]


@contextlib.contextmanager
def _watched(root: Path, store: Store, **kw: float) -> Iterator[ManifestDirectory]:
    src = ManifestDirectory(root, store, **kw)
    src.load()
    src.watch()
    try:
        yield src
    finally:
        src.stop()


def test_a_shrunk_file_is_applied_by_itself_once_it_settles(tmp_path: Path):
    f = tmp_path / "svc.yaml"
    f.write_text(SVC % "a" + "---\n" + SVC % "b")
    store = Store()
    with _watched(tmp_path, store, settle=0.3, debounce=0.05):
        f.write_text(SVC % "a")
        assert _wait(lambda: sorted(store.snapshot().services) == ["d/a"]), "applied after settling, unprompted"


def test_a_lone_write_does_not_wait_the_burst_debounce(tmp_path: Path):
    """The debounce is for bursts; a lone write (a few events) is read QUICK after them."""
    store = Store()
    with _watched(tmp_path, store, debounce=30.0):
        (tmp_path / "a.yaml").write_text(SVC % "a")
        assert _wait(lambda: list(store.snapshot().services) == ["d/a"]), "read without waiting 30 s"


def test_a_smaller_file_renamed_into_place_is_applied_at_once(tmp_path: Path):
    """A rename puts a file in place whole (kubectl-like tools, editors, a rotated Secret whose
    signature came out a byte shorter): no settling, unlike a file truncated in place."""
    f = tmp_path / "svc.yaml"
    f.write_text(SVC % "a" + "---\n" + SVC % "b")
    store = Store()
    with _watched(tmp_path, store, settle=30.0, debounce=0.05):
        tmp = tmp_path / ".svc.yaml.tmp"
        tmp.write_text(SVC % "a")
        os.replace(tmp, f)
        assert _wait(lambda: sorted(store.snapshot().services) == ["d/a"]), "applied without waiting 30 s"


def test_the_directory_removed_and_recreated_is_followed_again(tmp_path: Path):
    import shutil

    root = tmp_path / "manifests"
    root.mkdir()
    (root / "a.yaml").write_text(SVC % "a")
    store = Store()
    src = ManifestDirectory(root, store, debounce=0.05, rescan=0.2)
    src.load()
    src.watch()
    try:
        shutil.rmtree(root)
        assert _wait(lambda: not src.health()[0]), "healthz fails while the directory is gone"
        assert list(store.snapshot().services) == ["d/a"]  # the last objects stay served
        root.mkdir()
        (root / "b.yaml").write_text(SVC % "b")
        assert _wait(lambda: list(store.snapshot().services) == ["d/b"])
        assert src.health()[0]
        (root / "c.yaml").write_text(SVC % "c")  # and later edits are seen too
        assert _wait(lambda: sorted(store.snapshot().services) == ["d/b", "d/c"])
    finally:
        src.stop()


def test_a_manifests_symlink_swapped_like_git_sync_is_followed_every_time(tmp_path: Path):
    import os

    link = tmp_path / "current"
    for rev in ("r1", "r2", "r3"):
        (tmp_path / rev).mkdir()
        (tmp_path / rev / "svc.yaml").write_text(SVC % rev)
    link.symlink_to(tmp_path / "r1")
    store = Store()
    src = ManifestDirectory(link, store, debounce=0.05, rescan=0.2)
    src.load()
    src.watch()
    try:
        for rev in ("r2", "r3"):
            tmp = tmp_path / "current.tmp"
            tmp.symlink_to(tmp_path / rev)
            os.replace(tmp, link)  # atomic swap
            assert _wait(lambda rev=rev: list(store.snapshot().services) == [f"d/{rev}"]), rev
        (tmp_path / "r3" / "more.yaml").write_text(SVC % "more")  # an edit inside the new target
        assert _wait(lambda: sorted(store.snapshot().services) == ["d/more", "d/r3"])
    finally:
        src.stop()


def test_a_file_over_the_size_bound_is_reported_and_not_read(tmp_path: Path):
    from ingressctl.sources import files

    (tmp_path / "ok.yaml").write_text(SVC % "ok")
    (tmp_path / "huge.yaml").write_text(SVC % "huge" + "#" * (files.MAX_FILE_BYTES + 1))
    store = Store()
    problems = ManifestDirectory(tmp_path, store).load()
    assert any(p.path.endswith("huge.yaml") and "bound" in p.message for p in problems)
    assert list(store.snapshot().services) == ["d/ok"]


def test_a_symlink_loop_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    (tmp_path / "a.yaml").write_text(SVC % "a")
    store = Store()
    src = ManifestDirectory(tmp_path, store)
    src.load()
    src.load()
    assert list(store.snapshot().services) == ["d/a"]
    assert caplog.text.count("symlink loop") == 1


def test_the_rescan_does_not_reload_a_file_it_refuses_again_and_again(tmp_path: Path):
    from ingressctl.sources import files

    (tmp_path / "huge.yaml").write_text("#" * (files.MAX_FILE_BYTES + 1))
    store = Store()
    loads: list[int] = []
    src = ManifestDirectory(tmp_path, store, debounce=0.05, rescan=0.1, on_problems=lambda p: loads.append(len(p)))
    src.load()
    src.watch()
    try:
        time.sleep(0.8)  # eight rescans
        assert len(loads) == 1, f"{len(loads)} loads of an unchanged directory"
    finally:
        src.stop()


def test_the_rescan_reads_a_file_changed_unseen_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """A change the rescan finds (no event, or its event not read yet) reads that file, not the
    directory: at 30,000 files a whole read takes a second."""
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"kind": "Service", "apiVersion": "v1",
                                                     "metadata": {"name": "a", "namespace": "d"},
                                                     "spec": {"ports": [{"port": 80}]}}))
    (tmp_path / "b.yaml").write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: b, namespace: d}\n")
    store = Store()
    src = ManifestDirectory(tmp_path, store)
    src.load()
    src._identity = src._current_identity()
    (tmp_path / "b.yaml").write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: b, namespace: d}\n"
                                     "data: {k: v}\n")
    with caplog.at_level(logging.DEBUG, logger="ingressctl.sources.files"):
        src._rescan()
    assert store.snapshot().configmaps["d/b"].data == {"k": "v"}
    assert "1 changed files" in caplog.text


def test_the_rescan_sweeps_files_at_most_as_often_as_it_pays(tmp_path: Path):
    """Stat-ing every file (50 ms at 10,000, holding the GIL) waits 100 times its own
    duration; the directory's identity (a git-sync swap) is checked on every rescan."""
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "b.yaml").write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: b, namespace: d}\n")
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "d1")
    store = Store()
    src = ManifestDirectory(link, store)
    src.load()
    src._identity = src._current_identity()
    src._rescan()
    assert src._next_sweep > time.monotonic()  # the sweep ran and set its next time
    src._next_sweep = time.monotonic() + 3600
    (tmp_path / "d1" / "b.yaml").write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: b, namespace: d}\n"
                                            "data: {k: v}\n")
    src._rescan()
    assert store.snapshot().configmaps["d/b"].data == {}, "no sweep before its time"
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "c.yaml").write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: c, namespace: d}\n")
    link.unlink()
    link.symlink_to(tmp_path / "d2")
    try:
        src._rescan()
        assert set(store.snapshot().configmaps) == {"d/c"}, "a swapped directory is seen at once"
    finally:
        src.stop()  # the rescan watches the new directory
