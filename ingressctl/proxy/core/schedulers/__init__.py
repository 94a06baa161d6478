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

from .base import (
    HASH_FLAGS,
    MH_TABLE_SIZE,
    SCHEDULER_NAMES,
    TABLE_SIZE,
    Dest,
    Packet,
    Scheduler,
    SchedulerError,
    SchedulerSpec,
    parse_scheduler,
)
from .counting import (
    LeastConnection,
    NeverQueue,
    RoundRobin,
    ShortestExpectedDelay,
    WeightedLeastConnection,
    WeightedRoundRobin,
)
from .hashing import DestinationHash, Maglev, SourceHash, fold_address, hash_32

__all__ = ["HASH_FLAGS", "MH_TABLE_SIZE", "SCHEDULER_NAMES", "TABLE_SIZE", "Dest", "DestinationHash",
           "LeastConnection", "Maglev", "NeverQueue", "Packet", "RoundRobin", "Scheduler", "SchedulerError",
           "SchedulerSpec", "ShortestExpectedDelay", "SourceHash", "WeightedLeastConnection", "WeightedRoundRobin",
           "fold_address", "hash_32", "make_scheduler", "parse_scheduler"]


def make_scheduler(spec: SchedulerSpec | str) -> Scheduler:
    if isinstance(spec, str):
        spec = parse_scheduler(spec)
    if spec.name in ("sh", "mh"):
        cls = SourceHash if spec.name == "sh" else Maglev
        return cls("fallback" in spec.flags, "port" in spec.flags)
    return _SIMPLE[spec.name]()


_SIMPLE: dict[str, type[Scheduler]] = {
    "rr": RoundRobin, "wrr": WeightedRoundRobin, "lc": LeastConnection,
    "wlc": WeightedLeastConnection, "sed": ShortestExpectedDelay, "nq": NeverQueue,
    "dh": DestinationHash,
}
