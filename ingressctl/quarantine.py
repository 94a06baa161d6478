"""Finding the Ingress that makes nginx refuse a configuration, and leaving it out.

Validation should keep every configuration nginx can load, but if some input still makes
`nginx -t` fail, that one object must not stop updates for everyone else. `find_culprits`
bisects over the Ingresses (oldest first) with a `fails(excluded)` test, assuming that
adding Ingresses never repairs a failure; the controller then leaves the culprits out until
they change. `Quarantine` remembers them by object value, so an edit releases one at once.

Design choice: the search is pure (the test is injected), so it is tested with tables; the
controller supplies a test that builds, renders and runs `nginx -t` on a candidate file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .ingress.model import Problem
from .objects import Ingress
from .store import Snapshot

Fails = Callable[[frozenset[str]], bool]


class SearchBudgetExceeded(RuntimeError):
    pass


def find_culprits(keys: Sequence[str], fails: Fails, limit: int = 5, budget: int = 64) -> list[str]:
    """Keys whose exclusion makes `fails` false; [] if excluding every key does not help."""
    calls = 0

    def test(excluded: frozenset[str]) -> bool:
        nonlocal calls
        calls += 1
        if calls > budget:
            raise SearchBudgetExceeded(f"gave up after {budget} nginx -t runs")
        return fails(excluded)

    if not keys or test(frozenset(keys)):
        return []  # the failure does not come from these Ingresses
    culprits: list[str] = []
    while len(culprits) < limit:
        base = frozenset(culprits)
        if not test(base):
            return culprits
        remaining = [k for k in keys if k not in base]
        lo, hi = 0, len(remaining)  # including remaining[:lo] passes, remaining[:hi] fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if test(base | frozenset(remaining[mid:])):
                hi = mid
            else:
                lo = mid
        culprits.append(remaining[hi - 1])
    return culprits


@dataclass(frozen=True)
class Quarantined:
    ingress: Ingress
    reason: str


class Quarantine:
    def __init__(self) -> None:
        self.entries: dict[str, Quarantined] = {}

    def add(self, ingress: Ingress, reason: str) -> None:
        self.entries[ingress.meta.key] = Quarantined(ingress, reason)

    def current(self, snap: Snapshot) -> frozenset[str]:
        """Keys still left out: an Ingress that changed or went away is released."""
        for key in [k for k, q in self.entries.items() if snap.ingresses.get(k) != q.ingress]:
            del self.entries[key]
        return frozenset(self.entries)

    def problems(self) -> tuple[Problem, ...]:
        return tuple(
            Problem("Ingress", q.ingress.meta.namespace, q.ingress.meta.name, "NginxRejected",
                    f"nginx -t refused the configuration with this Ingress ({q.reason}); it is left out "
                    "until it changes")
            for q in self.entries.values())
