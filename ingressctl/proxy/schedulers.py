"""IPVS scheduling algorithms as plain, socket-free Python.

The userspace proxy picks an endpoint for every new connection with one of these, and the
ipvs backend names the same algorithm in its rules, so a Service behaves the same in both
modes. Each scheduler follows the Linux `net/netfilter/ipvs/ip_vs_<name>.c` logic:

- rr   next destination after the last one, skipping overloaded and weight-0 ones
- wrr  the kernel's gcd walk (weights 4,3,2 give a a b a b c a b c)
- lc   least (active*256 + inactive); the first in list order wins a tie
- wlc  least overhead/weight, compared as products (no division), first wins a tie
- sed  least (active+1)/weight
- nq   the first idle destination, else as sed
- sh   256-bucket table filled in list order, `weight` consecutive buckets per destination,
       indexed by hash_32(source address [+ port with `port`]); `fallback` walks on
- dh   256-bucket table, one bucket per destination in turn, indexed by the *destination*
       (service) address
- mh   Maglev: prime-sized lookup table from per-destination (offset, skip) permutations,
       turns by weight. The permutation hash is keyed BLAKE2b, not the kernel's hsiphash,
       so which bucket goes to whom differs from the kernel; the properties (even split by
       weight, minimal disruption on change) are the same.

Design choice: a scheduler sees `Dest` objects the caller owns and mutates (counters,
`overloaded`), exactly as the kernel schedulers read `struct ip_vs_dest`; the relay marks a
failing or draining endpoint `overloaded`, and every algorithm then skips it the ipvs way.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

SCHEDULER_NAMES = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh")
HASH_FLAGS = {"sh": ("fallback", "port"), "mh": ("fallback", "port")}
TABLE_BITS = 8
TABLE_SIZE = 1 << TABLE_BITS  # sh and dh
MH_TABLE_SIZE = 4093  # the kernel default (CONFIG_IP_VS_MH_TAB_INDEX=12)
MH_TABLE_BITS = 6
GOLDEN_RATIO_32 = 0x61C88647


class SchedulerError(ValueError):
    """An unknown scheduler name or flag; the message lists what is accepted."""


@dataclass(eq=False)
class Dest:
    """One real server as a scheduler sees it; the caller keeps the counters current."""

    key: str  # "ip:port"
    ip: str = ""
    port: int = 0
    weight: int = 1
    active: int = 0  # established TCP connections
    inactive: int = 0  # connecting/closing TCP connections, UDP sessions
    overloaded: bool = False  # failing, draining or at its cap: never chosen

    @property
    def usable(self) -> bool:
        return not self.overloaded and self.weight > 0


@dataclass(frozen=True)
class Packet:
    """What a scheduler may look at for a new connection."""

    src_ip: str
    src_port: int = 0
    dst_ip: str = ""


class Scheduler(Protocol):
    name: str

    def update(self, dests: Sequence[Dest]) -> None:
        """The destination list changed (order, membership or weights)."""

    def pick(self, pkt: Packet) -> Dest | None:
        """The destination for a new connection, or None when none is available."""


@dataclass(frozen=True)
class SchedulerSpec:
    name: str
    flags: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return self.name + (":" + ",".join(sorted(self.flags)) if self.flags else "")

    @property
    def ipvs_flags(self) -> str:
        """`ipvsadm --sched-flags` value ("sh-fallback,sh-port"), "" when none."""
        return ",".join(f"{self.name}-{f}" for f in sorted(self.flags))


def parse_scheduler(text: str) -> SchedulerSpec:
    """`rr`, `wlc`, `sh:fallback,port` ... -> SchedulerSpec; SchedulerError otherwise."""
    name, _, flag_text = text.strip().partition(":")
    if name not in SCHEDULER_NAMES:
        raise SchedulerError(f"unknown scheduler {text!r}: use one of {', '.join(SCHEDULER_NAMES)}")
    flags = frozenset(f.strip() for f in flag_text.split(",") if f.strip())
    allowed = HASH_FLAGS.get(name, ())
    bad = sorted(flags - set(allowed))
    if bad:
        hint = f"{name} accepts {', '.join(allowed)}" if allowed else f"{name} takes no flags"
        raise SchedulerError(f"scheduler {text!r}: unknown flag {bad[0]!r} ({hint})")
    return SchedulerSpec(name, flags)


def make_scheduler(spec: SchedulerSpec | str) -> Scheduler:
    if isinstance(spec, str):
        spec = parse_scheduler(spec)
    if spec.name in ("sh", "mh"):
        cls = SourceHash if spec.name == "sh" else Maglev
        return cls("fallback" in spec.flags, "port" in spec.flags)
    return _SIMPLE[spec.name]()


# --- round robin --------------------------------------------------------------------


class RoundRobin:
    name = "rr"

    def __init__(self) -> None:
        self.dests: list[Dest] = []
        self.last: Dest | None = None  # None: the list head

    def update(self, dests: Sequence[Dest]) -> None:
        self.dests = list(dests)
        if self.last not in self.dests:
            self.last = None

    def pick(self, pkt: Packet) -> Dest | None:
        n = len(self.dests)
        start = self.dests.index(self.last) + 1 if self.last is not None else 0
        for i in range(n):
            d = self.dests[(start + i) % n]
            if d.usable:
                self.last = d
                return d
        return None


class WeightedRoundRobin:
    """ip_vs_wrr.c: current weight `cw` steps down by the gcd; a pass picks weight >= cw."""

    name = "wrr"

    def __init__(self) -> None:
        self.dests: list[Dest] = []
        self.cl = -1  # index of the current dest; -1 is the list head
        self.cw = self.mw = 0
        self.di = 1

    def update(self, dests: Sequence[Dest]) -> None:
        self.dests = list(dests)
        weights = [d.weight for d in self.dests if d.weight > 0]
        self.cl = -1
        self.di = math.gcd(*weights) if weights else 1
        self.mw = max((d.weight for d in self.dests), default=0) - (self.di - 1)
        if self.cw > self.mw or not self.cw:
            self.cw = self.mw
        elif self.di > 1:
            self.cw = (self.cw // self.di) * self.di + 1

    def pick(self, pkt: Packet) -> Dest | None:
        if self.mw <= 0:
            return None
        pos = last = self.cl
        stop: int | None = None
        restarted = last_pass = False
        while True:
            for i in range(pos + 1, len(self.dests)):
                d = self.dests[i]
                if not d.overloaded and d.weight >= self.cw:
                    self.cl = i
                    return d
                if i == stop:
                    return None
            pos = -1
            self.cw -= self.di
            if self.cw <= 0:
                self.cw = self.mw
                if last_pass or last == -1:
                    return None
                restarted = True
            last_pass = self.cw <= self.di
            if last_pass and restarted and last != -1:
                restarted, stop = False, last


# --- least connection family -------------------------------------------------------


class _LeastBase:
    name = ""

    def __init__(self) -> None:
        self.dests: list[Dest] = []

    def update(self, dests: Sequence[Dest]) -> None:
        self.dests = list(dests)


class LeastConnection(_LeastBase):
    name = "lc"

    def pick(self, pkt: Packet) -> Dest | None:
        least: Dest | None = None
        loh = 0
        for d in self.dests:
            if not d.usable:
                continue
            doh = (d.active << 8) + d.inactive
            if least is None or doh < loh:
                least, loh = d, doh
        return least


class _WeightedLeast(_LeastBase):
    """Least overhead/weight, compared as loh*w(d) > doh*w(least) like the kernel."""

    idle_first = False

    def overhead(self, d: Dest) -> int:
        raise NotImplementedError

    def pick(self, pkt: Packet) -> Dest | None:
        least: Dest | None = None
        loh = 0
        for d in self.dests:
            if not d.usable:
                continue
            doh = self.overhead(d)
            if self.idle_first and d.active == 0:
                return d
            if least is None or loh * d.weight > doh * least.weight:
                least, loh = d, doh
        return least


class WeightedLeastConnection(_WeightedLeast):
    name = "wlc"

    def overhead(self, d: Dest) -> int:
        return (d.active << 8) + d.inactive


class ShortestExpectedDelay(_WeightedLeast):
    name = "sed"

    def overhead(self, d: Dest) -> int:
        return d.active + 1


class NeverQueue(ShortestExpectedDelay):
    name = "nq"
    idle_first = True


# --- hashing -----------------------------------------------------------------------


def hash_32(value: int, bits: int) -> int:
    """linux/hash.h hash_32: multiply by the 32-bit golden ratio, keep the top bits."""
    return ((value * GOLDEN_RATIO_32) & 0xFFFFFFFF) >> (32 - bits)


def fold_address(ip: str) -> int:
    """The address as the kernel folds it: IPv4 as is, IPv6 as the XOR of its 4 words."""
    if not ip:
        return 0
    packed = ipaddress.ip_address(ip).packed
    value = 0
    for i in range(0, len(packed), 4):
        value ^= int.from_bytes(packed[i:i + 4], "big")
    return value


class SourceHash:
    """ip_vs_sh.c: a weighted 256-bucket table indexed by the client address."""

    name = "sh"

    def __init__(self, fallback: bool = False, use_port: bool = False) -> None:
        self.fallback, self.use_port = fallback, use_port
        self.buckets: list[Dest | None] = [None] * TABLE_SIZE

    def update(self, dests: Sequence[Dest]) -> None:
        self.buckets = [None] * TABLE_SIZE
        if not dests:
            return
        i = count = 0
        for b in range(TABLE_SIZE):
            d = dests[i % len(dests)]
            self.buckets[b] = d
            count += 1
            if count >= d.weight:
                i, count = i + 1, 0

    def _hash(self, pkt: Packet, offset: int) -> int:
        port = pkt.src_port if self.use_port else 0
        value = (port + fold_address(pkt.src_ip)) & 0xFFFFFFFF
        return (offset + hash_32(value, TABLE_BITS)) & (TABLE_SIZE - 1)

    def pick(self, pkt: Packet) -> Dest | None:
        first = self._hash(pkt, 0)
        d = self.buckets[first]
        if d is None or d.usable:
            return d
        if not self.fallback:
            return None
        for offset in range(TABLE_SIZE):
            d = self.buckets[self._hash(pkt, (offset + first) % TABLE_SIZE)]
            if d is None:
                break
            if d.usable:
                return d
        return None


class DestinationHash:
    """ip_vs_dh.c: a 256-bucket table, one destination per bucket in turn, by service IP."""

    name = "dh"

    def __init__(self) -> None:
        self.buckets: list[Dest | None] = [None] * TABLE_SIZE

    def update(self, dests: Sequence[Dest]) -> None:
        self.buckets = [dests[b % len(dests)] if dests else None for b in range(TABLE_SIZE)]

    def pick(self, pkt: Packet) -> Dest | None:
        d = self.buckets[(fold_address(pkt.dst_ip) * 2654435761) & (TABLE_SIZE - 1)]
        return d if d is not None and d.usable else None


class Maglev:
    """ip_vs_mh.c: Maglev lookup table with weight-proportional turns."""

    name = "mh"
    KEY1, KEY2 = b"ingressctl-mh-1", b"ingressctl-mh-2"

    def __init__(self, fallback: bool = False, use_port: bool = False) -> None:
        self.fallback, self.use_port = fallback, use_port
        self.table: list[Dest | None] = [None] * MH_TABLE_SIZE

    @staticmethod
    def _h(data: str, key: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8, key=key).digest(), "big")

    def update(self, dests: Sequence[Dest]) -> None:
        size = MH_TABLE_SIZE
        self.table = [None] * size
        weights = [d.weight for d in dests if d.weight > 0]
        if not weights:
            return
        gcd = math.gcd(*weights)
        rshift = max(0, (max(weights) // gcd).bit_length() - MH_TABLE_BITS)
        turns = [((d.weight // gcd) >> rshift) or (1 if d.weight else 0) for d in dests]
        perm = [self._h(d.key, self.KEY1) % size for d in dests]
        skip = [self._h(d.key, self.KEY2) % (size - 1) + 1 for d in dests]
        filled = i = count = 0
        while filled < size:
            if turns[i] < 1:
                i, count = (i + 1) % len(dests), 0
                continue
            c = perm[i]
            while self.table[c] is not None:
                c = (c + skip[i]) % size
            perm[i] = c
            self.table[c] = dests[i]
            filled += 1
            count += 1
            if count >= turns[i]:
                i, count = (i + 1) % len(dests), 0

    def _index(self, pkt: Packet, offset: int) -> int:
        port = pkt.src_port if self.use_port else 0
        return self._h(f"{offset}|{port}|{fold_address(pkt.src_ip)}", self.KEY1) % MH_TABLE_SIZE

    def pick(self, pkt: Packet) -> Dest | None:
        d = self.table[self._index(pkt, 0)]
        if d is None or d.usable:
            return d
        if not self.fallback:
            return None
        for offset in range(1, MH_TABLE_SIZE):
            d = self.table[self._index(pkt, offset)]
            if d is not None and d.usable:
                return d
        return None


_SIMPLE: dict[str, type[Scheduler]] = {
    "rr": RoundRobin, "wrr": WeightedRoundRobin, "lc": LeastConnection,
    "wlc": WeightedLeastConnection, "sed": ShortestExpectedDelay, "nq": NeverQueue,
    "dh": DestinationHash,
}
