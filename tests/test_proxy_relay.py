"""The userspace relay's decisions replayed as events, without sockets."""

from __future__ import annotations

import pytest

from ingressctl.proxy.core.relay import (
    Backend,
    Balancer,
    Close,
    CloseUdp,
    Command,
    Connect,
    DropDatagram,
    OpenUdp,
    Reject,
    RelayLimits,
    SendUdp,
    TcpAccepted,
    TcpClosed,
    TcpConnected,
    TcpConnectFailed,
    Tick,
    UdpDatagram,
    UdpFailed,
    UdpReply,
)

A, B, C = Backend("10.0.0.1", 80), Backend("10.0.0.2", 80), Backend("10.0.0.3", 80)


def balancer(*backends: Backend, scheduler: str = "rr", affinity: float = 0,
             **limits: float) -> Balancer:
    b = Balancer(scheduler, affinity, RelayLimits(**limits))  # type: ignore[arg-type]
    b.set_endpoints(backends or (A, B, C), 0.0)
    return b


def target(cmds: list[Command]) -> str:
    """The backend of the single Connect/OpenUdp in cmds, or the kind of command."""
    for c in cmds:
        if isinstance(c, (Connect, OpenUdp)):
            return c.backend.ip
    return type(cmds[0]).__name__ if cmds else "nothing"


def connect(b: Balancer, conn: int, client: str = "192.0.2.1", now: float = 1.0) -> str:
    """Accept and complete one connection; returns the backend it went to."""
    where = target(b.handle(TcpAccepted(conn, client, 1000 + conn), now))
    b.handle(TcpConnected(conn), now)
    return where


def test_round_robin_over_accepted_connections() -> None:
    b = balancer()
    assert [connect(b, i) for i in range(4)] == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
    assert b.counters() == {A.key: (2, 0), B.key: (1, 0), C.key: (1, 0)}


def test_least_connection_uses_live_counters() -> None:
    b = balancer(scheduler="lc")
    assert [connect(b, i) for i in range(3)] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    b.handle(TcpClosed(1), 2.0)  # B now has the fewest
    assert connect(b, 9) == "10.0.0.2"


@pytest.mark.parametrize("gap, same", [(5.0, True), (9.9, True), (10.0, False), (60.0, False)])
def test_client_ip_affinity_holds_until_its_timeout(gap: float, same: bool) -> None:
    b = balancer(affinity=10)
    first = connect(b, 1, "192.0.2.9", now=1.0)
    b.handle(TcpClosed(1), 1.0)
    connect(b, 2, "192.0.2.50", now=1.0)  # another client moves the round robin on
    b.handle(Tick(), 1.0 + gap)
    assert (connect(b, 3, "192.0.2.9", now=1.0 + gap) == first) is same


def test_affinity_is_refreshed_by_use() -> None:
    b = balancer(affinity=10)
    first = connect(b, 1, "192.0.2.9", now=0.0)
    for i, t in enumerate((8.0, 16.0, 24.0), start=2):
        connect(b, 100 + i, "192.0.2.77", now=t)
        assert connect(b, i, "192.0.2.9", now=t) == first


def test_failed_connect_is_retried_on_the_next_endpoint_and_avoided() -> None:
    b = balancer(avoid_seconds=5)
    assert target(b.handle(TcpAccepted(1, "192.0.2.1"), 0.0)) == "10.0.0.1"
    cmds = b.handle(TcpConnectFailed(1), 0.5)
    assert cmds == [Connect(1, B, 1.0)]
    b.handle(TcpConnected(1), 0.6)
    # A is avoided for 5 s: new connections go to B and C only
    assert [connect(b, i, now=1.0) for i in range(2, 6)] == ["10.0.0.3", "10.0.0.2"] * 2
    b.handle(Tick(), 6.0)
    assert "10.0.0.1" in [connect(b, i, now=6.0) for i in range(10, 13)]


def test_retries_are_bounded_and_then_the_client_is_refused() -> None:
    b = balancer(Backend("10.0.0.1", 80), Backend("10.0.0.2", 80), Backend("10.0.0.3", 80),
                 Backend("10.0.0.4", 80), max_attempts=2)
    b.handle(TcpAccepted(1, "192.0.2.1"), 0.0)
    assert isinstance(b.handle(TcpConnectFailed(1), 0.1)[0], Connect)
    assert b.handle(TcpConnectFailed(1), 0.2) == [Reject(1, "no endpoint answered (2 tried)")]
    assert all(v == (0, 0) for v in b.counters().values()) and not b.conns


def test_when_every_endpoint_failed_lately_they_are_tried_anyway() -> None:
    b = balancer(A, B)
    for conn in (1, 2):
        b.handle(TcpAccepted(conn, "192.0.2.1"), 0.0)
    b.handle(TcpConnectFailed(1), 0.1)
    b.handle(TcpConnectFailed(2), 0.1)
    assert set(b.failing) == {A.key, B.key}
    assert target(b.handle(TcpAccepted(3, "192.0.2.1"), 0.2)) in {"10.0.0.1", "10.0.0.2"}


def test_affinity_moves_off_a_failing_endpoint() -> None:
    b = balancer(affinity=100)
    b.handle(TcpAccepted(1, "192.0.2.9"), 0.0)
    assert b.handle(TcpConnectFailed(1), 0.1) == [Connect(1, B, 1.0)]
    b.handle(TcpConnected(1), 0.2)
    assert connect(b, 2, "192.0.2.9", now=0.3) == "10.0.0.2"


def test_connection_cap_refuses_and_recovers() -> None:
    b = balancer(max_connections=2)
    connect(b, 1)
    connect(b, 2)
    assert b.handle(TcpAccepted(3, "192.0.2.1"), 1.0) == [Reject(3, "connection cap 2 reached")]
    b.handle(TcpClosed(1), 1.0)
    assert target(b.handle(TcpAccepted(4, "192.0.2.1"), 1.0)) != "Reject"


def test_no_endpoints_rejects() -> None:
    b = Balancer()
    assert b.handle(TcpAccepted(1, "192.0.2.1"), 0.0) == [Reject(1, "no endpoints available")]
    assert b.handle(UdpDatagram("f", "192.0.2.1"), 0.0) == [DropDatagram("f", "no endpoints available")]


def test_removed_endpoint_drains_while_new_connections_go_elsewhere() -> None:
    b = balancer(drain_timeout=30)
    assert connect(b, 1) == "10.0.0.1"
    b.set_endpoints([B, C], 5.0)
    assert A.key in b.draining and b.counters()[A.key] == (1, 0)
    assert {connect(b, i, now=6.0) for i in range(2, 6)} == {"10.0.0.2", "10.0.0.3"}
    assert b.handle(Tick(), 20.0) == []  # still draining, not cut
    b.handle(TcpClosed(1), 21.0)
    assert A.key not in b.draining


def test_drain_timeout_closes_what_is_left() -> None:
    b = balancer(drain_timeout=30)
    connect(b, 1)
    b.set_endpoints([B], 5.0)
    assert b.handle(Tick(), 35.0) == [Close(1, "endpoint 10.0.0.1:80 removed, drain timeout")]
    assert not b.draining and 1 not in b.conns


def test_endpoint_coming_back_keeps_its_counters() -> None:
    b = balancer(scheduler="lc")
    connect(b, 1)
    b.set_endpoints([B], 1.0)
    b.set_endpoints([A, B], 2.0)
    assert b.counters()[A.key] == (1, 0) and not b.draining
    assert connect(b, 2, now=3.0) == "10.0.0.2"


def test_udp_session_per_client_with_idle_timeout() -> None:
    b = balancer(udp_idle_timeout=30)
    flow = ("lis", "192.0.2.1", 5000)
    cmds = b.handle(UdpDatagram(flow, "192.0.2.1", 5000), 0.0)
    assert cmds == [OpenUdp(flow, A), SendUdp(flow)]
    assert b.handle(UdpDatagram(flow, "192.0.2.1", 5000), 10.0) == [SendUdp(flow)]
    other = ("lis", "192.0.2.1", 5001)
    assert target(b.handle(UdpDatagram(other, "192.0.2.1", 5001), 12.0)) == "10.0.0.2"
    assert b.handle(UdpReply(flow), 11.0) == []  # a reply keeps the session alive too
    assert b.handle(Tick(), 40.0) == []
    assert b.handle(Tick(), 41.0) == [CloseUdp(flow, "idle")]  # last seen at 11
    assert b.handle(Tick(), 42.0) == [CloseUdp(other, "idle")]
    assert b.counters() == {A.key: (0, 0), B.key: (0, 0), C.key: (0, 0)}


def test_udp_session_table_is_bounded_lru() -> None:
    b = balancer(max_udp_sessions=2)
    for port in (1, 2):
        b.handle(UdpDatagram(port, "192.0.2.1", port), float(port))
    b.handle(UdpDatagram(1, "192.0.2.1", 1), 3.0)  # 1 used again: 2 is the oldest now
    cmds = b.handle(UdpDatagram(3, "192.0.2.1", 3), 4.0)
    assert cmds[0] == CloseUdp(2, "session table full")
    assert list(b.sessions) == [1, 3]


def test_udp_affinity_keeps_a_client_on_one_endpoint() -> None:
    b = balancer(affinity=60)
    where = {target(b.handle(UdpDatagram(p, "192.0.2.8", p), 1.0)) for p in range(5)}
    assert len(where) == 1


def test_udp_failure_closes_the_session_and_avoids_the_endpoint() -> None:
    b = balancer()
    b.handle(UdpDatagram("f", "192.0.2.1"), 0.0)
    assert b.handle(UdpFailed("f"), 0.1) == [CloseUdp("f", "endpoint unreachable")]
    assert target(b.handle(UdpDatagram("f", "192.0.2.1"), 0.2)) == "10.0.0.2"


def test_udp_sessions_to_removed_endpoints_close() -> None:
    b = balancer()
    b.handle(UdpDatagram("f", "192.0.2.1"), 0.0)
    assert b.set_endpoints([B, C], 1.0) == [CloseUdp("f", "endpoint removed")]
    assert not b.draining


def test_weighted_endpoints_reach_the_scheduler() -> None:
    b = Balancer("wrr")
    b.set_endpoints([Backend("10.0.0.1", 80, 2), Backend("10.0.0.2", 80, 1)], 0.0)
    assert [connect(b, i)[-1] for i in range(6)] == list("112112")
