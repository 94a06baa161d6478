"""What every proxy backend offers, and the shared machinery of the two netfilter ones.

`Backend` is the contract the sync loop and `ingressctl proxy` rely on: `check()` (are the
tools and privileges there), `sync(table, changed)` (None = full), `render(table)` (the
exact text a fresh full sync would apply, for --dry-run and golden tests) and `cleanup()`.
The userspace and ipvs modes implement the same Protocol.

Design choice: `FragmentBackend` remembers the fragment it applied for every Service port,
so a partial sync computes fragments only for the changed keys and writes their diff; a
failed apply forgets nothing it did not write and forces the next sync to be full. Running
commands goes through a `Runner`, so tests record instead of executing, and e2e tests run
the same code inside a network namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core.model import ServiceInfo, ServicePortKey, ServiceTable
from ..core.rules import ChainId, Delta, Fragment

CAP_NET_ADMIN = 12


class BackendUnavailable(Exception):
    """The backend cannot run here; the message names what is missing (one line)."""


class ApplyError(Exception):
    """The kernel refused a transaction; the message carries the tool's stderr."""


@dataclass(frozen=True)
class ProxyOptions:
    cluster_cidr: str = ""  # traffic from outside it to a cluster IP is masqueraded
    masquerade_all: bool = False
    nodeport_addresses: tuple[str, ...] = ()  # CIDRs; empty: every local address
    chain_prefix: str = "ICP"  # iptables chain names; kube-proxy uses KUBE
    nft_table: str = "ingressctl"
    masquerade_mark: int = 0x4000


@dataclass(frozen=True)
class SyncResult:
    full: bool
    rules_written: int
    services_changed: int


class Backend(Protocol):
    mode: str

    def check(self) -> None: ...

    def sync(self, table: ServiceTable, changed: Iterable[ServicePortKey] | None) -> SyncResult: ...

    def render(self, table: ServiceTable) -> str: ...

    def cleanup(self) -> None: ...


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], stdin: str = "") -> str: ...


@dataclass(frozen=True)
class CommandRunner:
    """Runs a command (optionally inside a network namespace); ApplyError on failure."""

    netns: str = ""

    def __call__(self, argv: Sequence[str], stdin: str = "") -> str:
        full = (["ip", "netns", "exec", self.netns] if self.netns else []) + list(argv)
        try:
            proc = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=600,
                                  check=False)
        except FileNotFoundError as e:
            raise BackendUnavailable(f"{argv[0]} is not installed ({e.strerror})") from None
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            raise ApplyError(f"{' '.join(argv)} failed (exit {proc.returncode}): " + " | ".join(err[:8]))
        return proc.stdout


def has_cap_net_admin() -> bool:
    """True when this process holds CAP_NET_ADMIN in its effective set (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def require_tools(tools: Iterable[str], mode: str, runner: Runner) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise BackendUnavailable(f"--mode {mode} needs {', '.join(missing)}, which is not installed "
                                 "(or not on PATH)")
    if not has_cap_net_admin():
        raise BackendUnavailable(f"--mode {mode} needs CAP_NET_ADMIN (run as root or grant the "
                                 "capability); use --dry-run to only print the rules")


class FragmentBackend:
    """Partial/full sync over per-Service fragments; subclasses render and apply text."""

    mode = "abstract"

    def __init__(self, options: ProxyOptions | None = None, runner: Runner | None = None) -> None:
        self.options = options or ProxyOptions()
        self.runner: Runner = runner or CommandRunner()
        self._applied: dict[ServicePortKey, Fragment] = {}
        self._refs: Counter[tuple[ChainId, str]] = Counter()  # entries may be shared by Services
        self._need_full = True
        self._first = True

    # -- to implement -------------------------------------------------------------------
    def fragment(self, info: ServiceInfo) -> Fragment:
        raise NotImplementedError

    def serialize(self, delta: Delta, full: bool, first: bool) -> str:
        raise NotImplementedError

    def existing_chains(self) -> set[tuple[str, str]]:
        """Our chains present in the kernel before the first sync (to delete stale ones)."""
        return set()

    def static_chain_ids(self) -> set[tuple[str, str]]:
        """Chains every full sync writes whatever the Services (never stale)."""
        return set()

    def apply(self, text: str, full: bool) -> None:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------
    def full_delta(self, fragments: dict[ServicePortKey, Fragment],
                   previous: dict[ServicePortKey, Fragment]) -> Delta:
        delta = Delta()
        for f in fragments.values():
            delta.write_chains.update(f.chains)
            for cid, entries in f.entries.items():
                delta.add_entries.setdefault(cid, set()).update(entries)
            delta.add_objects.update(f.objects)
        wanted = set(delta.write_chains)
        for f in previous.values():
            delta.delete_chains.update(c for c in f.chains if c not in wanted)
            delta.delete_objects.update(o for o in f.objects
                                        if delta.add_objects.get(o) != f.objects[o])
        return delta

    def render(self, table: ServiceTable) -> str:
        fragments = {k: self.fragment(s) for k, s in sorted(table.services.items())}
        return self.serialize(self.full_delta(fragments, {}), full=True, first=True)

    def sync(self, table: ServiceTable, changed: Iterable[ServicePortKey] | None) -> SyncResult:
        if changed is None or self._need_full:
            return self._sync_full(table)
        keys = sorted(set(changed))
        new = {k: self.fragment(table.services[k]) for k in keys if k in table.services}
        delta = Delta()
        for k in keys:
            delta.add(self._applied.get(k), new.get(k))
        change = self._count_shared_entries(delta, [self._applied.get(k) for k in keys], list(new.values()))
        if not delta.empty:
            self._apply_or_force_full(self.serialize(delta, full=False, first=False), full=False)
        self._refs.update(change)
        for pair in [p for p in change if self._refs[p] <= 0]:
            del self._refs[pair]
        for k in keys:
            if k in new:
                self._applied[k] = new[k]
            else:
                self._applied.pop(k, None)
        return SyncResult(full=False, rules_written=delta.rule_count, services_changed=len(keys))

    def _sync_full(self, table: ServiceTable) -> SyncResult:
        fragments = {k: self.fragment(s) for k, s in sorted(table.services.items())}
        delta = self.full_delta(fragments, {} if self._first else self._applied)
        if self._first:  # what to delete comes from the kernel, not from what we wrote
            delta.delete_chains |= self.existing_chains() - set(delta.write_chains) - self.static_chain_ids()
        self._apply_or_force_full(self.serialize(delta, full=True, first=self._first), full=True)
        self._applied = fragments
        self._refs = Counter((cid, e) for f in fragments.values() for cid, es in f.entries.items() for e in es)
        self._need_full = False
        self._first = False
        return SyncResult(full=True, rules_written=delta.rule_count, services_changed=len(fragments))

    def _count_shared_entries(self, delta: Delta, old: list[Fragment | None],
                              new: list[Fragment]) -> Counter[tuple[ChainId, str]]:
        """Reference-count entries across Services: write an entry when its first holder
        appears, remove it when its last holder goes (two Services may share one).
        Returns the count changes, applied to self._refs once the transaction succeeded."""
        change: Counter[tuple[ChainId, str]] = Counter()
        for frags, sign in ((old, -1), (new, 1)):
            for pair in (p for f in frags if f for p in _pairs(f.entries)):
                change[pair] += sign
        before = self._refs
        delta.remove_entries = _group(p for p, d in change.items() if before[p] > 0 >= before[p] + d)
        delta.add_entries = _group(p for p, d in change.items() if before[p] <= 0 < before[p] + d)
        return change

    def _apply_or_force_full(self, text: str, full: bool) -> None:
        try:
            self.apply(text, full)
        except Exception:
            self._need_full = True
            self._first = True  # rebuild from what the kernel holds, not from what we wrote
            raise


def _pairs(entries: Mapping[ChainId, Iterable[str]]) -> set[tuple[ChainId, str]]:
    return {(cid, e) for cid, es in entries.items() for e in es}


def _group(pairs: Iterable[tuple[ChainId, str]]) -> dict[ChainId, set[str]]:
    out: dict[ChainId, set[str]] = {}
    for cid, e in pairs:
        out.setdefault(cid, set()).add(e)
    return out
