"""Finding the Ingresses that make nginx refuse a configuration, and leaving them out.

Validation should keep every configuration nginx can load, but if some input still makes
`nginx -t` fail, that input must not stop updates for everyone else, however many such
Ingresses there are. `find_culprits` is adaptive group testing over the *suspects* (the
Ingresses that changed since nginx last took a configuration; every Ingress on a fresh
start), grouped by namespace: a group that fails is split in halves, a half that passes is
cleared, so d culprits among N cost about 2·d·log2(N) `nginx -t` runs, each on a smaller
configuration than the last. A failure that needs two halves together keeps the older half
and searches the younger one beside it. When the budget runs out, the groups still failing
are left out whole (they lie within few namespaces, as suspects are sorted by namespace) and
everyone else goes live.

`Quarantine` keeps each culprit out until its content changes *and* the changed Ingress
passes `nginx -t` on its own: an edit alone no longer releases it, so a tenant cannot renew
a cluster-wide search by touching the object.

Design choice: the search is pure (the test is injected), so it is tested with tables; the
controller supplies a test that builds, renders and runs `nginx -t` on a candidate file.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .ingress.model import Problem
from .objects import Ingress
from .store import Snapshot

log = logging.getLogger(__name__)

Fails = Callable[[frozenset[str]], bool]  # excluded keys -> does nginx -t fail?

DEFAULT_BUDGET = 256


class _OutOfBudget(Exception):
    pass


@dataclass(frozen=True)
class Search:
    culprits: tuple[str, ...] = ()  # each proven to fail (alone, or beside the older half it needs)
    unresolved: tuple[str, ...] = ()  # left out whole when the budget ran out
    tests: int = 0


@dataclass(frozen=True)
class _Group:
    keys: tuple[str, ...]
    context: frozenset[str] = frozenset()  # suspects kept in beside this group (an interaction)


ALONE_LIMIT = 16  # at most this many suspects are first tried one by one, each on its own


def find_culprits(keys: Sequence[str], fails: Fails, suspects: Sequence[str] | None = None,
                  budget: int = DEFAULT_BUDGET, known_failing: bool = False) -> Search:
    """Which of `keys` (oldest first) to leave out so that `fails` turns false.

    `suspects` (default: every key) are searched; the other keys stay in every test (they were
    live in the last configuration nginx took). A few suspects are first tried each on its own
    (a small configuration: cheap beside a full one). Nothing is found when excluding every
    suspect does not help, after widening the suspects to every key. `known_failing`: the
    caller has just seen `fails(frozenset())` be true."""
    calls = 0

    def test(excluded: frozenset[str]) -> bool:
        nonlocal calls
        if calls >= budget:
            raise _OutOfBudget
        calls += 1
        return fails(excluded)

    found: list[str] = []
    try:
        if not known_failing and not test(frozenset()):
            return Search(tests=calls)
        chosen = list(suspects) if suspects is not None else list(keys)
        if suspects is not None and 0 < len(chosen) <= ALONE_LIMIT:
            found = [k for k in chosen if test(frozenset(keys) - {k})]
            if found and not test(frozenset(found)):
                return Search(tuple(found), (), calls)
            chosen = [k for k in chosen if k not in found]
        if not chosen or test(frozenset(chosen) | frozenset(found)):
            if suspects is None or len(chosen) + len(found) == len(keys):
                return Search(tuple(found), (), calls)  # (the rest is) not caused by these Ingresses
            chosen = [k for k in keys if k not in found]
            if test(frozenset(keys)):
                return Search(tuple(found), (), calls)
    except _OutOfBudget:
        return Search(tuple(found), (), calls)
    return _group_search(keys, chosen, frozenset(found), test, calls)


def _group_search(keys: Sequence[str], chosen: list[str], found: frozenset[str],
                  test: Callable[[frozenset[str]], bool], calls: int) -> Search:
    """Adaptive group testing over `chosen` (known to hold a culprit), `found` always left out."""
    order = {k: i for i, k in enumerate(keys)}
    chosen = sorted(chosen, key=lambda k: (k.partition("/")[0], order.get(k, 0)))
    everyone = frozenset(chosen)
    culprits: list[str] = list(found)
    queue: deque[_Group] = deque([_Group(tuple(chosen))])
    tests = 0

    def failing(group: _Group) -> bool:
        nonlocal tests
        tests += 1
        return test((everyone - group.context - frozenset(group.keys)) | found)

    try:
        while queue:
            group = queue[0]
            if len(group.keys) == 1:
                culprits.append(queue.popleft().keys[0])
                continue
            half = _split_point(group.keys)
            older, younger = _Group(group.keys[:half], group.context), _Group(group.keys[half:], group.context)
            older_fails, younger_fails = failing(older), failing(younger)
            queue.popleft()  # only now: a group whose split the budget cut stays in the queue
            if older_fails:
                queue.append(older)
            if younger_fails:
                queue.append(younger)
            if not older_fails and not younger_fails:  # only together: keep the older half in
                queue.append(_Group(younger.keys, group.context | frozenset(older.keys)))
    except _OutOfBudget:
        left = {k for g in queue for k in g.keys}
        return Search(tuple(culprits), tuple(k for k in chosen if k in left), calls + tests)
    return Search(tuple(culprits), (), calls + tests)


def _split_point(keys: tuple[str, ...]) -> int:
    """The middle, moved to the nearest namespace boundary while the group spans several
    namespaces: what is left unresolved then lies within the namespaces that caused it."""
    half = len(keys) // 2
    boundaries = [i for i in range(1, len(keys)) if keys[i].partition("/")[0] != keys[i - 1].partition("/")[0]]
    return min(boundaries, key=lambda i: abs(i - half)) if boundaries else half


@dataclass(frozen=True)
class Quarantined:
    ingress: Ingress
    reason: str


PassesAlone = Callable[[str], tuple[bool, str]]  # key -> (nginx -t passes with it alone, error)


class Quarantine:
    def __init__(self) -> None:
        self.entries: dict[str, Quarantined] = {}

    def add(self, ingress: Ingress, reason: str) -> None:
        self.entries[ingress.meta.key] = Quarantined(ingress, reason)

    def review(self, snap: Snapshot, passes_alone: PassesAlone) -> list[str]:
        """Release the entries whose Ingress changed and now passes nginx -t on its own (those
        that changed and still fail stay, with their new content); drop deleted ones."""
        released = []
        for key, q in list(self.entries.items()):
            now = snap.ingresses.get(key)
            if now is None:
                del self.entries[key]
            elif now != q.ingress:
                ok, error = passes_alone(key)
                if ok:
                    del self.entries[key]
                    released.append(key)
                else:
                    self.entries[key] = Quarantined(now, error or q.reason)
        return released

    def current(self, snap: Snapshot) -> frozenset[str]:
        """Keys left out: every entry whose Ingress still exists (changed or not; see review)."""
        return frozenset(k for k in self.entries if k in snap.ingresses)

    def isolate(self, snap: Snapshot, keys: Sequence[str], live: Mapping[str, Ingress | None],
                fails: Fails, message: str) -> bool:
        """Find the Ingresses nginx refuses among `keys` (oldest first; the suspects are those
        that differ from what nginx last took, `live`) and leave them out; True if any was."""
        suspects = [k for k in keys if live.get(k) != snap.ingresses.get(k)]
        started = time.monotonic()
        search = find_culprits(keys, fails, suspects=suspects, known_failing=True)
        log.info("searched %d suspect Ingresses with %d nginx -t runs in %.1f s", len(suspects), search.tests,
                 time.monotonic() - started)
        reason = message.removeprefix("nginx -t failed: ")[:300]
        for key in search.culprits:
            self.add(snap.ingresses[key], reason)
            log.error("Ingress %s makes nginx -t fail (%s); it is left out until it changes", key, reason)
        for key in search.unresolved:
            self.add(snap.ingresses[key], f"{reason}; the search ran out of nginx -t runs, so every "
                     f"Ingress of a group that still failed is left out ({len(search.unresolved)})")
        if search.unresolved:
            log.error("left out %d Ingresses whose group still failed nginx -t when the search ended: %s",
                      len(search.unresolved), ", ".join(search.unresolved[:20]))
        return bool(search.culprits or search.unresolved)

    def problems(self) -> tuple[Problem, ...]:
        return tuple(
            Problem("Ingress", q.ingress.meta.namespace, q.ingress.meta.name, "NginxRejected",
                    f"nginx -t refused the configuration with this Ingress ({q.reason}); it is left out "
                    "until it changes and passes nginx -t on its own")
            for q in self.entries.values())
