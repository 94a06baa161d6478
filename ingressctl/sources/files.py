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
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from watchdog.events import FileSystemEvent

from ..objects import KINDS, KubeObject, ObjectError, Service, parse_object
from ..store import Store, key_of
from ..watch import DebouncedWatch, any_change
from .allocate import AddressAllocator

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's parser when PyYAML has it (about ten times faster on large files)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class FileProblem:
    path: str
    line: int  # 1-based; 0 when unknown
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


def _documents(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """(line, raw object) for every object in a file, flattening `kind: List`."""
    loader = _Loader(text)
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


SWEEP_SHARE = 100  # a rescan's file sweep waits this many times its own duration before the next
MAX_TOUCHED = 64  # paths of one burst of events read alone; more: the whole directory is read
MAX_FILE_BYTES = 4 << 20  # a manifest file larger than this is reported and not read
SETTLE = 1.0  # seconds a file that shrank must keep its size and mtime before its objects go
RESCAN = 2.0  # seconds between full checks (directory identity, file sizes and mtimes)


class ManifestDirectory:
    """Loads a directory into a Store; `watch()` keeps it in sync.

    Besides watchdog's events, a rescan every `rescan` seconds re-establishes the watch when
    the directory was removed and recreated or a `--manifests` symlink now points elsewhere
    (git-sync swaps one), and reloads when a file's size or mtime changed unseen (that sweep
    waits 100 times its own duration: every 5 s at 10,000 files). While the
    directory is gone its last objects stay served and `health()` fails. A file that shrank
    (`cat > f` truncates first; a writer may stop at a document boundary) keeps its previous
    objects until its size and mtime held for `settle` seconds."""

    def __init__(
        self,
        root: str | Path,
        store: Store,
        allocator: AddressAllocator | None = None,
        on_problems: Callable[[list[FileProblem]], None] | None = None,
        debounce: float = 0.15,
        settle: float = SETTLE,
        rescan: float = RESCAN,
        max_file_bytes: int = MAX_FILE_BYTES,
        log_reads: bool = False,
    ) -> None:
        self.root = Path(root)
        self.store = store
        self.allocator = allocator or AddressAllocator()
        self.on_problems = on_problems or self._log_problems
        self.debounce, self.settle, self.rescan = debounce, settle, rescan
        self.max_file_bytes = max_file_bytes
        self.log_reads = log_reads  # each read's object count and time at INFO (`run`; one-shot tools stay quiet)
        self._cache: dict[Path, tuple[tuple[int, int], list[KubeObject], list[FileProblem]]] = {}
        self._last_good: dict[Path, list[KubeObject]] = {}
        self._good_size: dict[Path, int] = {}
        self._settling: dict[Path, tuple[tuple[int, int], float]] = {}  # path -> (signature, first seen)
        self._renamed: set[str] = set()  # real paths a rename put in place since they were read (complete)
        self._signatures: dict[Path, tuple[int, int]] = {}
        self._loops: set[str] = set()
        self._paths: dict[str, Path] = {}  # listed path -> its Path (made once: pathlib parsing is slow)
        self._defined_by: dict[tuple[str, str, str], str] = {}  # object key -> the file whose object is used
        self._problem_files: set[str] = set()  # files (or the directory) the last load reported
        self._touched: set[str] = set()  # paths events named since the last load (read alone if they can be)
        self._touched_all = False  # ... or a directory event: everything is read
        self._touch_lock = threading.Lock()
        self._next_sweep = 0.0  # monotonic time of the next rescan of file sizes and mtimes
        self._lock = threading.Lock()
        self._watch: DebouncedWatch | None = None
        self._identity: tuple[str, int, int] | None = None
        self._stopped = threading.Event()
        self._rescanner: threading.Thread | None = None
        self.loaded = False
        self.lost = False
        self.problems: list[FileProblem] = []

    @staticmethod
    def _log_problems(problems: list[FileProblem]) -> None:
        for p in problems:
            log.warning("manifest %s", p)

    def health(self) -> tuple[bool, str]:
        if self.lost:
            return False, f"manifest directory {self.root} is gone; serving the objects it held"
        return True, "ok"

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"manifest directory {self.root} does not exist")
        out: list[str] = []
        seen: set[tuple[int, int]] = set()
        for top, dirs, _names in os.walk(self.root, followlinks=True):
            st = os.stat(top)
            if (st.st_dev, st.st_ino) in seen:  # a symlink back up the tree
                if top not in self._loops:
                    self._loops.add(top)
                    log.warning("manifest directory %s: symlink loop at %s, not followed", self.root, top)
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirs.sort()
            try:
                with os.scandir(top) as entries:  # d_type: no stat per regular file
                    out += [e.path for e in entries if e.name.endswith(SUFFIXES) and not e.name.startswith(".")
                            and e.is_file()]
            except OSError:
                continue
        paths = self._paths
        return [paths.get(p) or paths.setdefault(p, Path(p)) for p in sorted(out)]

    def load(self) -> list[FileProblem]:
        """Read the directory and replace the Store's contents; returns this load's problems.

        FileNotFoundError if the directory is missing before anything was loaded; later, a
        missing directory keeps the Store as it is and makes `health()` fail."""
        began = time.monotonic()
        with self._lock:
            if not self.root.is_dir() and self.loaded:
                if not self.lost:
                    log.error("manifest directory %s is gone; serving the objects it held until it is back",
                              self.root)
                self.lost = True
                return []
            objects, problems = self._read_all()
            if self.lost:
                log.warning("manifest directory %s is back", self.root)
            self.lost, self.loaded = False, True
            services, alloc_problems = self.allocator.assign([o for o in objects if isinstance(o, Service)])
            by_key = {key_of(o): o for o in objects}
            for s in services:
                by_key[("Service", s.meta.namespace, s.meta.name)] = s
            problems += [FileProblem(str(self.root), 0, m) for m in alloc_problems]
            self.problems = problems
            self._problem_files = {p.path for p in problems}
            self.store.replace(None, by_key.values())
        log.log(logging.INFO if self.log_reads else logging.DEBUG, "manifests read: %d objects in %.0f ms",
                len(by_key), (time.monotonic() - began) * 1000)
        if problems:
            self.on_problems(problems)
        return problems

    def _read_all(self) -> tuple[list[KubeObject], list[FileProblem]]:
        objects: list[KubeObject] = []
        problems: list[FileProblem] = []
        seen: dict[tuple[str, str, str], str] = {}
        listed = self.files()  # sorted
        present = set(listed)
        self._signatures = {}  # filled by _read: every file as it was read, refused ones included
        for path in listed:
            objs, errs = self._read(path)
            if errs:
                problems.extend(errs)
                if path in self._last_good:
                    problems.append(FileProblem(str(path), 0, "keeping the objects this file held before"))
                objs = self._last_good.get(path, [])
            else:
                self._last_good[path] = objs
            for o in objs:
                key = key_of(o)
                if key in seen:
                    problems.append(FileProblem(str(path), 0, f"{o.meta.kind} {o.meta.key} is also defined in "
                                                f"{seen[key]}; the first one is used"))
                    continue
                seen[key] = str(path)
                objects.append(o)
        self._defined_by = seen
        for gone in set(self._last_good) - present:
            self._paths.pop(str(gone), None)
            del self._last_good[gone]
            self._cache.pop(gone, None)
            self._good_size.pop(gone, None)
        return objects, problems

    def load_changed(self, touched: set[str]) -> bool:
        """Read only the files in `touched` (paths watch events named) when that gives what
        `load` would: each is a manifest file that still exists, reads without problems
        (before and now) and defines the same objects as before, or only objects no other
        file defines, with no Service that changed or claims an address of its own. False
        (nothing done) when only `load` can tell."""
        began = time.monotonic()
        with self._lock:
            if not self.loaded or self.lost or str(self.root) in self._problem_files:
                return False
            real_root = os.path.realpath(self.root)
            changed: list[Path] = []
            for t in sorted(touched):
                rel = os.path.relpath(t, real_root)
                name = os.path.basename(t)
                if rel.startswith(os.pardir) or os.path.isdir(t):
                    return False
                if not name.endswith(SUFFIXES) or name.startswith("."):
                    continue  # not a manifest (an editor's temporary file)
                listed = os.path.join(str(self.root), rel)
                known = self._paths.get(listed)
                if not os.path.isfile(listed):
                    if known is not None or os.path.lexists(listed):
                        return False  # a manifest removed (or not a regular file)
                    continue  # created and gone again
                if known is None and os.path.realpath(listed) != os.path.join(real_root, rel):
                    return False  # reached through a symlink: `files` decides
                changed.append(known or Path(listed))
            return self._take(changed, began)

    def _take(self, changed: list[Path], began: float) -> bool:
        defined = dict(self._defined_by)
        read: dict[Path, list[KubeObject]] = {}
        for path in changed:
            if str(path) in self._problem_files:
                return False
            objs, errs = self._read(path)
            if errs:
                return False
            before = self._last_good.get(path)
            keys = [key_of(o) for o in objs]
            if len(set(keys)) != len(keys):
                return False  # a duplicate within the file: `load` reports it
            if before is None:
                if any(k in defined for k in keys):
                    return False
                defined.update((k, str(path)) for k in keys)
            elif {key_of(o) for o in before} != set(keys) or \
                    any(defined.get(k) != str(path) for k in keys):
                return False
            read[path] = objs
        services = [o for objs in read.values() for o in objs if isinstance(o, Service)]
        filled = self.allocator.assign_more(services) if services else []
        if filled is None:
            return False
        by_key = {(s.meta.namespace, s.meta.name): s for s in filled}
        out = [by_key[(o.meta.namespace, o.meta.name)] if isinstance(o, Service) else o
               for objs in read.values() for o in objs]
        for path, objs in read.items():
            self._last_good[path] = objs
            self._paths[str(path)] = path
        self._defined_by = defined
        self.store.put_many(out)
        log.log(logging.INFO if self.log_reads else logging.DEBUG, "manifests read: %d objects of %d changed "
                "files in %.0f ms", len(out), len(read), (time.monotonic() - began) * 1000)
        if self.problems:
            self.on_problems(self.problems)
        return True

    def _read(self, path: Path) -> tuple[list[KubeObject], list[FileProblem]]:
        try:
            st = path.stat()
        except OSError as e:
            return [], [FileProblem(str(path), 0, f"cannot read: {e}")]
        sig = (st.st_size, st.st_mtime_ns)
        self._signatures[path] = sig
        cached = self._cache.get(path)
        if cached and cached[0] == sig:
            return cached[1], cached[2]
        if st.st_size > self.max_file_bytes:
            return [], [FileProblem(str(path), 0, f"{st.st_size} bytes, over the bound of {self.max_file_bytes} bytes "
                                                  "per manifest file; not read (split it)")]
        if self._still_settling(path, sig, st.st_size):
            return self._last_good.get(path, []), []
        objs, errs, notices = parse_file(path)
        for n in notices:
            log.info("manifest %s", n)
        if not errs and cached and cached[2]:
            log.info("manifest %s is readable again", path)
        self._cache[path] = (sig, objs, errs)
        if not errs:
            self._good_size[path] = st.st_size
        return objs, errs

    def _still_settling(self, path: Path, sig: tuple[int, int], size: int) -> bool:
        """A file smaller than its last good content is in progress until it held still."""
        renamed = os.path.realpath(path) in self._renamed
        self._renamed.discard(os.path.realpath(path))
        if size >= self._good_size.get(path, 0) or renamed:  # a rename puts a file in place whole
            self._settling.pop(path, None)
            return False
        now = time.monotonic()
        first = self._settling.get(path)
        if first is None or first[0] != sig:
            self._settling[path] = (sig, now)
            self._settle_later()
            return True
        if now - first[1] < self.settle:
            self._settle_later()
            return True
        del self._settling[path]
        return False

    def _settle_later(self) -> None:
        if self._watch is not None and not self._stopped.is_set():
            timer = threading.Timer(self.settle + 0.05, self._settled)
            timer.daemon = True
            timer.start()

    # -- watching -------------------------------------------------------------------------
    def watch(self) -> None:
        self._identity = self._current_identity()
        self._start_watch()
        self._rescanner = threading.Thread(target=self._rescan_loop, name="manifest-rescan", daemon=True)
        self._rescanner.start()

    def _start_watch(self) -> None:
        try:
            self._watch = DebouncedWatch([self.root.resolve()], self._reload, self.debounce, recursive=True,
                                         relevant=self._relevant).start()
        except OSError as e:  # gone again meanwhile: the next rescan tries again
            log.warning("cannot watch %s: %s", self.root, e)

    def _current_identity(self) -> tuple[str, int, int] | None:
        try:
            st = self.root.stat()
        except OSError:
            return None
        return (os.path.realpath(self.root), st.st_dev, st.st_ino)

    def _rescan_loop(self) -> None:
        while not self._stopped.wait(self.rescan):
            try:
                self._rescan()
            except Exception:  # the rescan must outlive any surprise
                log.exception("rescanning %s failed", self.root)

    def _rescan(self) -> None:
        identity = self._current_identity()
        if identity != self._identity:
            self._identity = identity
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            if identity is not None:
                log.info("manifest directory %s was replaced; watching %s", self.root, identity[0])
                self._start_watch()
            self._reload(everything=True)
            return
        if identity is None or time.monotonic() < self._next_sweep:
            return
        began = time.monotonic()
        try:
            now = {p: (st.st_size, st.st_mtime_ns) for p in self.files() if (st := os.stat(p))}
        except OSError:
            return
        # the sweep stats every file (50 ms at 10,000, with the GIL): at most ~1% of a core,
        # so it seldom lands in a sync; the directory's identity is still checked every time
        self._next_sweep = time.monotonic() + SWEEP_SHARE * (time.monotonic() - began)
        if now != self._signatures:
            # files whose size or mtime changed unseen (or just before their event was read):
            # read alone where that gives what reading the directory gives
            gone = self._signatures.keys() - now.keys()
            changed = [p for p, sig in now.items() if self._signatures.get(p) != sig]
            real_root = os.path.realpath(self.root)
            touched = {os.path.join(real_root, os.path.relpath(p, self.root)) for p in changed}
            if gone or len(touched) > MAX_TOUCHED or not self.load_changed(touched):
                self._reload(everything=True)

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()

    def _relevant(self, event: FileSystemEvent) -> bool:
        """A manifest event; a rename's destination is noted: it is complete, however small."""
        dest = str(getattr(event, "dest_path", "") or "")
        if event.event_type == "moved" and dest.endswith(SUFFIXES):
            self._renamed.add(os.path.realpath(dest))
        relevant = _manifest_event(event)
        if relevant:
            with self._touch_lock:
                if event.is_directory:
                    # a directory created, removed or moved: read it all. "modified" only says an
                    # entry came or went, which the entry's own event names
                    self._touched_all = self._touched_all or event.event_type != "modified"
                else:
                    self._touched.update(p for p in (str(event.src_path), dest) if p)
        return relevant

    def _settled(self) -> None:
        """The settle timer: the whole directory (the files that settled are not among the
        events that may be pending)."""
        self._reload(everything=True)

    def _reload(self, everything: bool = False) -> None:
        """Read what pending events named, or everything (`everything`, a directory event, or
        what they named cannot be read alone)."""
        with self._touch_lock:
            touched, everything = self._touched, everything or self._touched_all
            self._touched, self._touched_all = set(), False
        try:
            if everything or not touched or len(touched) > MAX_TOUCHED or not self.load_changed(touched):
                self.load()
        except FileNotFoundError:
            pass  # gone before it was ever loaded: the rescan reports nothing new
        except Exception:  # a reload must never kill the watcher thread
            log.exception("reloading %s failed", self.root)


def _manifest_event(event: FileSystemEvent) -> bool:
    if not any_change(event):
        return False
    path = str(event.src_path)
    dest = str(getattr(event, "dest_path", "") or "")
    return event.is_directory or any(p.endswith(SUFFIXES) for p in (path, dest))
