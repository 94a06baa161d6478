"""ipvs scheduler semantics, socket-free: sequences and choices the kernel would make."""

from __future__ import annotations

from collections import Counter

import pytest

from ingressctl.proxy.core.schedulers import (
    TABLE_SIZE,
    Dest,
    Packet,
    SchedulerError,
    SchedulerSpec,
    hash_32,
    make_scheduler,
    parse_scheduler,
)

PKT = Packet("10.0.0.7", 40000, "127.96.0.2")


def dests(*weights: int, **counters: tuple[int, int]) -> list[Dest]:
    """Dests named a, b, c ... with weights; counters name=(active, inactive)."""
    out = []
    for i, w in enumerate(weights):
        name = "abcdefgh"[i] if i < 8 else f"d{i}"
        active, inactive = counters.get(name, (0, 0))
        out.append(Dest(name, weight=w, active=active, inactive=inactive))
    return out


def run(name: str, ds: list[Dest], n: int, pkt: Packet = PKT) -> str:
    s = make_scheduler(name)
    s.update(ds)
    return " ".join((d.key if d else "-") for d in (s.pick(pkt) for _ in range(n)))


@pytest.mark.parametrize("name, weights, n, expected", [
    ("rr", (1, 1, 1), 7, "a b c a b c a"),
    ("rr", (1, 0, 1), 4, "a c a c"),  # weight 0: never chosen
    ("wrr", (4, 3, 2), 18, "a a b a b c a b c a a b a b c a b c"),
    ("wrr", (4, 2), 6, "a a b a a b"),  # gcd 2: the walk steps by 2
    ("wrr", (1, 1), 4, "a b a b"),
    ("wrr", (0, 0), 2, "- -"),
    ("wrr", (2, 0, 1), 6, "a a c a a c"),
    ("rr", (), 2, "- -"),
])
def test_round_robin_sequences(name: str, weights: tuple[int, ...], n: int, expected: str) -> None:
    assert run(name, dests(*weights), n) == expected


def test_wrr_skips_an_overloaded_destination_and_resumes() -> None:
    ds = dests(4, 3, 2)
    s = make_scheduler("wrr")
    s.update(ds)
    ds[0].overloaded = True
    assert [s.pick(PKT).key for _ in range(5)] == ["b", "b", "c", "b", "c"]  # type: ignore[union-attr]


def test_rr_all_overloaded_gives_none() -> None:
    ds = dests(1, 1)
    for d in ds:
        d.overloaded = True
    assert run("rr", ds, 1) == "-"
    assert run("wrr", ds, 1) == "-"


@pytest.mark.parametrize("name, weights, counters, expected", [
    # lc: active*256 + inactive, first in list order wins ties
    ("lc", (1, 1, 1), {"a": (1, 0), "b": (0, 300), "c": (0, 300)}, "a"),  # 256 < 300
    ("lc", (1, 1, 1), {"a": (1, 0), "b": (0, 255), "c": (0, 10)}, "c"),
    ("lc", (1, 1), {}, "a"),
    ("lc", (5, 1), {"a": (1, 0)}, "b"),  # lc ignores weight except 0
    ("lc", (0, 1), {"b": (9, 0)}, "b"),
    # wlc: overhead / weight
    ("wlc", (3, 1), {"a": (2, 0), "b": (1, 0)}, "a"),  # 512/3 < 256/1
    ("wlc", (1, 1), {"a": (1, 0), "b": (1, 0)}, "a"),  # tie: first
    ("wlc", (2, 1), {"a": (2, 0), "b": (1, 0)}, "a"),  # 512/2 == 256/1: first
    ("wlc", (1, 1), {"a": (0, 5), "b": (0, 4)}, "b"),
    # sed: (active + 1) / weight, inactive ignored
    ("sed", (1, 3), {"a": (0, 0), "b": (1, 0)}, "b"),  # 1/1 > 2/3
    ("sed", (1, 1), {"a": (0, 0), "b": (0, 0)}, "a"),
    ("sed", (1, 1), {"a": (0, 0), "b": (0, 90)}, "a"),
    # nq: an idle server first, else sed
    ("nq", (1, 3, 1), {"a": (2, 0), "b": (1, 0), "c": (0, 0)}, "c"),
    ("nq", (1, 3), {"a": (2, 0), "b": (1, 0)}, "b"),
    ("nq", (1, 5), {"a": (0, 0), "b": (0, 0)}, "a"),  # first idle, not heaviest
])
def test_least_connection_family(name: str, weights: tuple[int, ...],
                                 counters: dict[str, tuple[int, int]], expected: str) -> None:
    assert run(name, dests(*weights, **counters), 1) == expected


def test_hash_32_matches_the_kernel_formula() -> None:
    assert hash_32(0, 8) == 0
    assert hash_32(1, 8) == 0x61C88647 >> 24
    assert hash_32(0x0A000007, 8) == ((0x0A000007 * 0x61C88647) % 2**32) >> 24


def test_sh_table_gives_weight_consecutive_buckets() -> None:
    s = make_scheduler("sh")
    ds = dests(3, 1)
    s.update(ds)
    keys = [d.key for d in s.buckets]  # type: ignore[attr-defined]
    assert keys[:8] == ["a", "a", "a", "b", "a", "a", "a", "b"]
    assert Counter(keys) == {"a": 192, "b": 64}


def test_sh_pins_a_client_and_spreads_clients() -> None:
    ds = dests(1, 1, 1)
    s = make_scheduler("sh")
    s.update(ds)
    first = s.pick(Packet("10.1.2.3", 1000))
    assert all(s.pick(Packet("10.1.2.3", p)) is first for p in range(1001, 1020))
    spread = Counter(s.pick(Packet(f"10.1.{i // 250}.{i % 250}")).key for i in range(3000))  # type: ignore[union-attr]
    assert set(spread) == {"a", "b", "c"} and min(spread.values()) > 700


def test_sh_bucket_is_hash_32_of_the_source_address() -> None:
    s = make_scheduler("sh")
    s.update(dests(*([1] * TABLE_SIZE)))  # one bucket per dest: bucket i holds dest i
    ip, value = "10.0.0.7", 0x0A000007
    assert s.pick(Packet(ip)) is s.buckets[hash_32(value, 8)]  # type: ignore[attr-defined]
    sp = make_scheduler("sh:port")
    sp.update(dests(*([1] * TABLE_SIZE)))
    assert sp.pick(Packet(ip, 5)) is sp.buckets[hash_32(value + 5, 8)]  # type: ignore[attr-defined]


def test_sh_without_fallback_refuses_and_with_fallback_moves_on() -> None:
    ds = dests(1, 1)
    plain, fb = make_scheduler("sh"), make_scheduler("sh:fallback")
    plain.update(ds)
    fb.update(ds)
    chosen = plain.pick(PKT)
    assert chosen is not None
    chosen.overloaded = True
    assert plain.pick(PKT) is None
    other = fb.pick(PKT)
    assert other is not None and other is not chosen


def test_dh_uses_the_destination_address_and_ignores_weights() -> None:
    s = make_scheduler("dh")
    ds = dests(5, 1)
    s.update(ds)
    assert [d.key for d in s.buckets[:4]] == ["a", "b", "a", "b"]  # type: ignore[attr-defined]
    by_dst = {s.pick(Packet(f"10.0.0.{i}", 0, "127.96.0.9")) for i in range(50)}
    assert len(by_dst) == 1  # same service address -> same server, whoever the client is
    expected = "ab"[((0x7F600009 * 2654435761) & 255) % 2]
    assert by_dst.pop().key == expected  # type: ignore[union-attr]


def test_maglev_splits_by_weight_and_moves_little_on_removal() -> None:
    ds = [Dest(f"10.0.0.{i}:80", weight=1) for i in range(1, 6)]
    s = make_scheduler("mh")
    s.update(ds)
    share = Counter(d.key for d in s.table)  # type: ignore[attr-defined]
    assert max(share.values()) - min(share.values()) <= 2
    before = list(s.table)  # type: ignore[attr-defined]
    s.update(ds[:4])
    after = s.table  # type: ignore[attr-defined]
    moved = sum(1 for b, a in zip(before, after, strict=True) if b is not a and b is not ds[4])
    assert moved < len(after) * 0.05  # only the removed server's buckets move (mostly)
    heavy = [Dest("x", weight=3), Dest("y", weight=1)]
    s.update(heavy)
    share = Counter(d.key for d in s.table)  # type: ignore[attr-defined]
    assert abs(share["x"] / share["y"] - 3) < 0.1


@pytest.mark.parametrize("text, expected", [
    ("rr", SchedulerSpec("rr")),
    (" wlc ", SchedulerSpec("wlc")),
    ("sh:fallback,port", SchedulerSpec("sh", frozenset({"fallback", "port"}))),
    ("mh:fallback", SchedulerSpec("mh", frozenset({"fallback"}))),
])
def test_parse_scheduler(text: str, expected: SchedulerSpec) -> None:
    assert parse_scheduler(text) == expected


@pytest.mark.parametrize("text, message", [
    ("random", "unknown scheduler 'random': use one of rr, wrr, lc, wlc, sed, nq, sh, dh, mh"),
    ("RR", "unknown scheduler 'RR'"),
    ("rr:fallback", "rr takes no flags"),
    ("sh:sticky", "unknown flag 'sticky' (sh accepts fallback, port)"),
])
def test_unknown_schedulers_are_refused(text: str, message: str) -> None:
    with pytest.raises(SchedulerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_scheduler(text)


def test_ipvs_flags_spelling() -> None:
    assert parse_scheduler("sh:port,fallback").ipvs_flags == "sh-fallback,sh-port"
    assert parse_scheduler("rr").ipvs_flags == ""
