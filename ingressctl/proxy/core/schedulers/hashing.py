"""The schedulers that hash: sh (the client's address), dh (the service's address) and mh
(Maglev), each a lookup table rebuilt when the destinations change."""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence

from .base import GOLDEN_RATIO_32, MH_TABLE_BITS, MH_TABLE_SIZE, TABLE_BITS, TABLE_SIZE, Dest, Packet

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
