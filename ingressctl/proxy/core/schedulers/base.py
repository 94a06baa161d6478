"""What every scheduler shares: the names and flags ipvs knows, `Dest` (a real server as a
scheduler sees it), `Packet`, the `Scheduler` protocol and the parsed `SchedulerSpec`."""

from __future__ import annotations

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
