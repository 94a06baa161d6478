"""Manifest directory source: YAML files -> Store, kept in sync with watchdog.

Reads every `*.yaml`, `*.yml` and `*.json` file below a directory (multi-document files and
`kind: List` both work), parses the objects ingressctl reads, assigns Service clusterIP and
nodePort as the API server would, and replaces the Store's contents in one step. A burst of
edits is coalesced into one reload. A file that fails to parse is reported with its name and
line, and the objects it held before stay in force until it is fixed.

Design choice: the directory is re-read as a whole (with unchanged files served from a
cache keyed by size and mtime), so deletes, renames and edits need no special cases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from watchdog.events import FileSystemEvent

from ..objects import KINDS, KubeObject, ObjectError, Service, parse_object
from ..store import Store
from ..watch import DebouncedWatch, any_change
from .allocate import AddressAllocator

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class FileProblem:
    path: str
    line: int  # 1-based; 0 when unknown
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


def _documents(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """(line, raw object) for every object in a file, flattening `kind: List`."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 0
            doc = loader.construct_document(node) if node is not None else None
            if doc is None:
                continue
            if isinstance(doc, dict) and doc.get("kind") == "List":
                for item in doc.get("items") or []:
                    yield line, item
            else:
                yield line, doc
    finally:
        loader.dispose()


def raw_documents(text: str, path: str) -> list[tuple[int, Any]]:
    """(line, raw object) for every object of a YAML/JSON text, `kind: List` flattened."""
    return list(_documents(text, path))


def parse_file(path: Path) -> tuple[list[KubeObject], list[FileProblem], list[FileProblem]]:
    """(objects, errors, notices). Any error means the file as a whole is not taken."""
    objects: list[KubeObject] = []
    errors: list[FileProblem] = []
    notices: list[FileProblem] = []
    try:
        text = path.read_text(encoding="utf-8")
        docs = list(_documents(text, str(path)))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        return [], [FileProblem(str(path), line, f"invalid YAML: {e.problem or e}")], []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return [], [FileProblem(str(path), 0, f"cannot read: {e}")], []
    for line, raw in docs:
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if isinstance(kind, str) and kind not in KINDS:
            notices.append(FileProblem(str(path), line, f"kind {kind} is not read by ingressctl; skipped"))
            continue
        try:
            objects.append(parse_object(raw))
        except ObjectError as e:
            errors.append(FileProblem(str(path), line, str(e)))
    return objects, errors, notices


class ManifestDirectory:
    """Loads a directory into a Store; `watch()` keeps it in sync."""

    def __init__(
        self,
        root: str | Path,
        store: Store,
        allocator: AddressAllocator | None = None,
        on_problems: Callable[[list[FileProblem]], None] | None = None,
        debounce: float = 0.15,
    ) -> None:
        self.root = Path(root)
        self.store = store
        self.allocator = allocator or AddressAllocator()
        self.on_problems = on_problems or self._log_problems
        self.debounce = debounce
        self._cache: dict[Path, tuple[tuple[int, int], list[KubeObject], list[FileProblem]]] = {}
        self._last_good: dict[Path, list[KubeObject]] = {}
        self._lock = threading.Lock()
        self._watch: DebouncedWatch | None = None
        self.problems: list[FileProblem] = []

    @staticmethod
    def _log_problems(problems: list[FileProblem]) -> None:
        for p in problems:
            log.warning("manifest %s", p)

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"manifest directory {self.root} does not exist")
        return sorted(
            p for p in self.root.rglob("*")
            if p.suffix in SUFFIXES and p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])
        )

    def load(self) -> list[FileProblem]:
        """Read the directory and replace the Store's contents; returns this load's problems."""
        with self._lock:
            objects, problems = self._read_all()
            services, alloc_problems = self.allocator.assign([o for o in objects if isinstance(o, Service)])
            by_key = {(o.meta.kind, o.meta.namespace, o.meta.name): o for o in objects}
            for s in services:
                by_key[("Service", s.meta.namespace, s.meta.name)] = s
            problems += [FileProblem(str(self.root), 0, m) for m in alloc_problems]
            self.problems = problems
            self.store.replace(None, by_key.values())
        if problems:
            self.on_problems(problems)
        return problems

    def _read_all(self) -> tuple[list[KubeObject], list[FileProblem]]:
        objects: list[KubeObject] = []
        problems: list[FileProblem] = []
        seen: dict[tuple[str, str, str], str] = {}
        present = set(self.files())
        for path in sorted(present):
            objs, errs = self._read(path)
            if errs:
                problems.extend(errs)
                if path in self._last_good:
                    problems.append(FileProblem(str(path), 0, "keeping the objects this file held before"))
                objs = self._last_good.get(path, [])
            else:
                self._last_good[path] = objs
            for o in objs:
                key = (o.meta.kind, o.meta.namespace, o.meta.name)
                if key in seen:
                    problems.append(FileProblem(str(path), 0, f"{o.meta.kind} {o.meta.key} is also defined in "
                                                f"{seen[key]}; the first one is used"))
                    continue
                seen[key] = str(path)
                objects.append(o)
        for gone in set(self._last_good) - present:
            del self._last_good[gone]
            self._cache.pop(gone, None)
        return objects, problems

    def _read(self, path: Path) -> tuple[list[KubeObject], list[FileProblem]]:
        try:
            st = path.stat()
        except OSError as e:
            return [], [FileProblem(str(path), 0, f"cannot read: {e}")]
        sig = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(path)
        if cached and cached[0] == sig:
            return cached[1], cached[2]
        objs, errs, notices = parse_file(path)
        for n in notices:
            log.info("manifest %s", n)
        self._cache[path] = (sig, objs, errs)
        return objs, errs

    # -- watching -------------------------------------------------------------------------
    def watch(self) -> None:
        self._watch = DebouncedWatch([self.root], self._reload, self.debounce, recursive=True,
                                     relevant=_manifest_event).start()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()

    def _reload(self) -> None:
        try:
            self.load()
        except Exception:  # a reload must never kill the watcher thread
            log.exception("reloading %s failed", self.root)


def _manifest_event(event: FileSystemEvent) -> bool:
    if not any_change(event):
        return False
    path = str(event.src_path)
    dest = str(getattr(event, "dest_path", "") or "")
    return event.is_directory or any(p.endswith(SUFFIXES) for p in (path, dest))
