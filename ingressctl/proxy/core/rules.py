"""Rules as data: the per-Service fragments both netfilter backends produce, and their diff.

A backend turns one ServiceInfo into a `Fragment`: the chains that Service owns (named
with a stable hash, so nobody else writes them), the entries it adds to shared dispatch
containers (rules of the services chain for iptables, elements of a verdict map for
nftables) and, for nftables, the sets it owns (ClientIP affinity). A sync diffs the
fragments of the Services that changed against the ones applied last time and writes only
the difference, in one atomic transaction.

Design choice: entries in shared containers are order-free sets, so adding or removing a
Service is an insert/delete of its own entries and never a rewrite of the dispatch chain;
the only ordered content is inside chains a Service owns, which are rewritten whole.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ChainId = tuple[str, str]  # (table, chain); nftables uses "" for the table


@dataclass(frozen=True)
class Fragment:
    """Everything one Service port owns or contributes in a backend."""

    chains: Mapping[ChainId, tuple[str, ...]] = field(default_factory=dict)
    entries: Mapping[ChainId, frozenset[str]] = field(default_factory=dict)
    objects: Mapping[str, str] = field(default_factory=dict)  # name -> declaration

    @property
    def rule_count(self) -> int:
        return sum(len(r) for r in self.chains.values()) + sum(len(e) for e in self.entries.values())


@dataclass
class Delta:
    """What one sync must write: the union of the per-Service differences."""

    write_chains: dict[ChainId, tuple[str, ...]] = field(default_factory=dict)
    delete_chains: set[ChainId] = field(default_factory=set)
    add_entries: dict[ChainId, set[str]] = field(default_factory=dict)
    remove_entries: dict[ChainId, set[str]] = field(default_factory=dict)
    add_objects: dict[str, str] = field(default_factory=dict)
    delete_objects: set[str] = field(default_factory=set)

    def add(self, old: Fragment | None, new: Fragment | None) -> None:
        """Accumulate the difference between one Service's old and new fragment."""
        old = old or Fragment()
        new = new or Fragment()
        for cid, rules in new.chains.items():
            if old.chains.get(cid) != rules:
                self.write_chains[cid] = rules
        self.delete_chains.update(c for c in old.chains if c not in new.chains)
        for cid in set(old.entries) | set(new.entries):
            before = old.entries.get(cid, frozenset())
            after = new.entries.get(cid, frozenset())
            if after - before:
                self.add_entries.setdefault(cid, set()).update(after - before)
            if before - after:
                self.remove_entries.setdefault(cid, set()).update(before - after)
        for name, decl in new.objects.items():
            if old.objects.get(name) != decl:
                if name in old.objects:
                    self.delete_objects.add(name)
                self.add_objects[name] = decl
        self.delete_objects.update(n for n in old.objects if n not in new.objects)

    @property
    def empty(self) -> bool:
        return not (self.write_chains or self.delete_chains or self.add_entries
                    or self.remove_entries or self.add_objects or self.delete_objects)

    @property
    def rule_count(self) -> int:
        return (sum(len(r) for r in self.write_chains.values())
                + sum(len(e) for e in self.add_entries.values())
                + sum(len(e) for e in self.remove_entries.values()))


@functools.lru_cache(maxsize=1 << 17)
def stable_hash(text: str, length: int = 16) -> str:
    """Upper-case base32 of sha256, as kube-proxy names its chains: same input, same name.
    Only the digest bytes the name needs are encoded (5 bytes per 8 characters)."""
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest[:(length + 7) // 8 * 5]).decode()[:length]


def ipv4_only(addresses: Iterable[str]) -> list[str]:
    return [a for a in addresses if ":" not in a]


def random_probabilities(n: int) -> list[float | None]:
    """Probability for the i-th of n rules so each target gets 1/n; None for the last."""
    return [1.0 / (n - i) for i in range(n - 1)] + [None] if n else []
