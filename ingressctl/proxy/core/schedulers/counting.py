"""The schedulers that count: rr and wrr turn through the destinations, lc, wlc, sed and nq
pick the least loaded (ip_vs_rr.c, ip_vs_wrr.c, ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .base import Dest, Packet

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
