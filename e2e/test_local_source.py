"""e2e: local mode keeps following its directory (issue 11 item 6) with the real command line:
the directory removed and recreated, a symlink swapped as git-sync does, and a file rewritten
with `cat >` (truncated first) while requests flow."""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import INGRESS_CLASS, Backends, LocalController, manifests_for_backends, wait_until

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default}}
spec:
  ingressClassName: nginx
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}
"""


@pytest.fixture
def backends() -> Iterator[Backends]:
    b = Backends()
    yield b
    b.stop()


def _fill(d: Path, backends: Backends, host: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "class.yaml").write_text(INGRESS_CLASS)
    (d / "svc.yaml").write_text(manifests_for_backends("default", "a", [backends.start("a")]))
    (d / "ing.yaml").write_text(INGRESS.format(name="web", host=host))


def test_the_directory_removed_and_recreated_is_followed_and_healthz_says_so(tmp_path: Path, backends: Backends):
    ctl = LocalController(tmp_path)
    _fill(ctl.manifests, backends, "one.test")
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("one.test").status == 200)
        shutil.rmtree(ctl.manifests)
        wait_until(lambda: ctl.status("/healthz")[0] == 503, 10, "/healthz to fail while the directory is gone")
        assert ctl.get("one.test").status == 200, "the last objects stay served"
        _fill(ctl.manifests, backends, "two.test")
        ctl.wait_for(lambda: ctl.get("two.test").status == 200, timeout=10)
        assert ctl.status("/healthz")[0] == 200
        (ctl.manifests / "ing2.yaml").write_text(INGRESS.format(name="three", host="three.test"))
        ctl.wait_for(lambda: ctl.get("three.test").status == 200, timeout=10, what="a later edit")
        assert "Traceback" not in ctl.log()
    finally:
        ctl.stop()


def test_a_git_sync_style_symlink_swap_is_followed_every_time(tmp_path: Path, backends: Backends):
    data = tmp_path / "data"
    for rev in ("r1", "r2", "r3"):
        _fill(data / rev, backends, f"{rev}.test")
    ctl = LocalController(tmp_path / "work")
    link = ctl.manifests  # --manifests names the symlink, git-sync swaps it
    link.parent.mkdir(parents=True)
    link.symlink_to(data / "r1")
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("r1.test").status == 200)
        for rev in ("r2", "r3"):
            tmp = link.parent / "manifests.tmp"
            tmp.symlink_to(data / rev)
            os.replace(tmp, link)
            ctl.wait_for(lambda rev=rev: ctl.get(f"{rev}.test").status == 200, timeout=10, what=f"swap to {rev}")
        (data / "r3" / "ing2.yaml").write_text(INGRESS.format(name="more", host="more.test"))
        ctl.wait_for(lambda: ctl.get("more.test").status == 200, timeout=10, what="an edit after the swaps")
    finally:
        ctl.stop()


def test_a_file_rewritten_with_cat_keeps_serving(tmp_path: Path, backends: Backends):
    ctl = LocalController(tmp_path)
    _fill(ctl.manifests, backends, "one.test")
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("one.test").status == 200)
        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                statuses[ctl.get("one.test").status] += 1

        t = threading.Thread(target=load)
        t.start()
        try:
            ing = ctl.manifests / "ing.yaml"
            text = ing.read_text()
            with open(ing, "w") as f:  # what `cat > ing.yaml` does: truncate, then write slowly
                f.flush()
                os.fsync(f.fileno())
                stop.wait(0.5)
                f.write(text[: len(text) // 2])
                f.flush()
                stop.wait(0.3)
                f.write(text[len(text) // 2:])
            stop.wait(1.5)
        finally:
            stop.set()
            t.join(10)
        assert statuses[200] > 0 and set(statuses) == {200}, statuses
    finally:
        ctl.stop()
