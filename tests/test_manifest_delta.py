"""Reading only the files watch events named gives the store what reading the whole directory gives.

Two ManifestDirectory readers follow the same directory through a random sequence of edits,
both told of each edit's events: one reads only the files the events name wherever it can
(`load_changed`), the other reads everything each time (`load`). Their stores must hold the
same objects, clusterIPs included, after every step.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from ingressctl.sources.files import ManifestDirectory
from ingressctl.store import Snapshot, Store


def app(i: int, path: str = "/", endpoint: int = 1, port: int = 80, node_port: int = 0,
        cluster_ip: str = "", svc_type: str = "ClusterIP", extra: str = "") -> str:
    ns, name = f"ns{i % 3}", f"app{i}"
    spec: dict[str, object] = {"type": svc_type, "ports": [{"name": "http", "port": port,
                                                              **({"nodePort": node_port} if node_port else {})}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    docs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
         "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": [f"10.0.0.{endpoint}"]}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": ns},
         "spec": {"rules": [{"host": f"{name}.test{extra}", "http": {"paths": [{"path": path, "pathType": "Prefix",
                  "backend": {"service": {"name": name, "port": {"number": port}}}}]}}]}},
    ]
    return "---\n".join(json.dumps(d) + "\n" for d in docs)


def contents(snap: Snapshot) -> dict[str, object]:
    return {"ingresses": dict(snap.ingresses), "services": dict(snap.services),
            "slices": dict(snap.slices_by_service), "configmaps": dict(snap.configmaps)}


class Pair:
    """The directory, a reader that reads changed files alone where it can, and one that reads all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.delta = ManifestDirectory(root, Store(), settle=0.0, on_problems=lambda _: None)
        self.full = ManifestDirectory(root, Store(), settle=0.0, on_problems=lambda _: None)
        self.delta.load()
        self.full.load()
        self.taken = 0  # edits the delta reader read alone

    def events(self, *events: FileSystemEvent) -> None:
        for e in events:
            self.delta._relevant(e)
            self.full._relevant(e)
        with self.delta._touch_lock:
            touched, everything = set(self.delta._touched), self.delta._touched_all
            self.delta._touched, self.delta._touched_all = set(), False
        if not everything and touched and self.delta.load_changed(touched):
            self.taken += 1
        else:
            self.delta.load()
        self.full.load()
        if self.delta._settling or self.full._settling:  # what the settle timer does (settle=0)
            self.delta.load()
            self.full.load()
        assert contents(self.delta.store.snapshot()) == contents(self.full.store.snapshot())

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        new = not path.exists()
        path.write_text(text)
        self.events(*([FileCreatedEvent(str(path)), DirModifiedEvent(str(path.parent))] if new else []),
                    FileModifiedEvent(str(path)), FileClosedEvent(str(path)))

    def replace(self, name: str, text: str) -> None:
        path = self.root / name
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, path)
        # as watchdog reports it: the directory is modified too, whenever an entry comes or goes
        self.events(FileCreatedEvent(str(tmp)), DirModifiedEvent(str(path.parent)), FileModifiedEvent(str(tmp)),
                    FileMovedEvent(str(tmp), str(path)), DirModifiedEvent(str(path.parent)))

    def remove(self, name: str) -> None:
        (self.root / name).unlink()
        self.events(FileDeletedEvent(str(self.root / name)), DirModifiedEvent(str(self.root)))


def test_a_random_sequence_of_edits(tmp_path: Path) -> None:
    rnd = random.Random(18)
    for i in range(8):
        (tmp_path / f"app{i}.yaml").write_text(app(i))
    pair = Pair(tmp_path)
    names = {i: f"app{i}.yaml" for i in range(8)}
    next_app = 8
    for _ in range(300):
        op = rnd.choice(["path", "endpoint", "same", "same", "new", "new-nodeport", "new-claims", "duplicate",
                         "broken", "remove", "port", "subdir"])
        i = rnd.choice(sorted(names))
        write = rnd.choice([pair.write, pair.replace])
        if op == "path":
            write(names[i], app(i, path=f"/p{rnd.randrange(5)}"))
        elif op == "endpoint":
            write(names[i], app(i, endpoint=rnd.randrange(1, 5)))
        elif op == "same":
            write(names[i], (pair.root / names[i]).read_text() if (pair.root / names[i]).exists() else app(i))
        elif op in ("new", "new-nodeport", "new-claims"):
            n, next_app = next_app, next_app + 1
            names[n] = f"{rnd.choice(['a', 'z'])}{n}.yaml"  # sorts before or after the others
            write(names[n], app(n, svc_type="NodePort" if op == "new-nodeport" else "ClusterIP",
                                cluster_ip=f"127.96.0.{200 + n % 50}" if op == "new-claims" else ""))
        elif op == "duplicate":  # another file defines the same objects: the first in order is used
            write(f"0dup{i}.yaml", app(i, path="/dup"))
        elif op == "broken":
            write(names[i], "kind: [unclosed\n" + "#" * rnd.choice([0, 4000]))
        elif op == "remove" and len(names) > 3:
            if (pair.root / names[i]).exists():
                pair.remove(names[i])
            del names[i]
        elif op == "port":
            write(names[i], app(i, port=rnd.choice([80, 81])))
        elif op == "subdir":
            sub = pair.root / "sub"
            if not sub.exists():
                sub.mkdir()
                pair.events(DirCreatedEvent(str(sub)))
            write(f"sub/{names[i]}", app(i, extra=".sub"))
    assert pair.taken > 100  # most edits were read alone, so the comparisons compared that path


@pytest.mark.parametrize("edit", ["rewrite", "new file", "rename into place"])
def test_common_edits_are_read_alone(tmp_path: Path, edit: str) -> None:
    for i in range(3):
        (tmp_path / f"app{i}.yaml").write_text(app(i))
    pair = Pair(tmp_path)
    if edit == "rewrite":
        pair.write("app1.yaml", app(1, path="/v2"))
    elif edit == "new file":
        pair.write("app9.yaml", app(9))
    else:
        pair.replace("app1.yaml", app(1, endpoint=3))
    assert pair.taken == 1


@pytest.mark.parametrize("edit", ["remove", "duplicate", "broken", "directory", "explicit clusterIP"])
def test_edits_only_a_full_read_can_tell(tmp_path: Path, edit: str) -> None:
    for i in range(3):
        (tmp_path / f"app{i}.yaml").write_text(app(i))
    pair = Pair(tmp_path)
    if edit == "remove":
        pair.remove("app1.yaml")
    elif edit == "duplicate":
        pair.write("0.yaml", app(1))
    elif edit == "broken":
        pair.write("app1.yaml", "kind: [\n" + "#" * 4000)  # longer than before: not a write in progress
    elif edit == "directory":
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "app5.yaml").write_text(app(5))
        pair.events(DirCreatedEvent(str(tmp_path / "d")), FileCreatedEvent(str(tmp_path / "d" / "app5.yaml")))
    else:
        pair.write("app7.yaml", app(7, cluster_ip="127.96.0.77"))
    assert pair.taken == 0


def test_the_settle_timer_reads_everything_even_with_other_events_pending(tmp_path: Path) -> None:
    """A file that shrank waits `settle` seconds (a writer may still be at it), then the
    timer's read must apply it, whatever other events are pending at that moment: a read of
    only their files would leave the shrunk one unread until something touched it again."""
    (tmp_path / "a.yaml").write_text(app(1, path="/long/path/to/make/this/file/longer"))
    (tmp_path / "b.yaml").write_text(app(2))
    src = ManifestDirectory(tmp_path, Store(), settle=0.0, on_problems=lambda _: None)
    src.load()
    (tmp_path / "a.yaml").write_text(app(1, path="/x"))  # smaller: it settles first
    assert src.load_changed({str(tmp_path / "a.yaml")})
    assert src._settling
    (tmp_path / "b.yaml").write_text(app(2, endpoint=3))
    src._relevant(FileModifiedEvent(str(tmp_path / "b.yaml")))  # pending when the timer fires
    src._settled()  # what the settle timer calls (settle=0: the time is up)
    rules = src.store.snapshot().ingresses["ns1/app1"].rules
    assert [p.path for r in rules for p in r.paths] == ["/x"]
