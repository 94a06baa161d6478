"""The userspace proxy's decisions, sans-IO: events in, commands out.

One `Balancer` serves one Service port for one kind of traffic (cluster or external, since
the Local traffic policies can give them different endpoints). The asyncio server in
`backends/userspace.py` feeds it what happened on the sockets (`TcpAccepted`, `TcpConnectFailed`,
`UdpDatagram`, `Tick` ...) with the current time, and carries out the commands it returns
(`Connect`, `Reject`, `OpenUdp` ...). Everything that decides something lives here:
scheduling (`schedulers/`), ClientIP affinity with its timeout, retrying a failed connect
on another endpoint, avoiding a failing endpoint for a while, the connection cap, the
bounded UDP session table with idle expiry, and draining removed endpoints.

Design choice: the clock is a parameter (`now`) and no method touches a socket, so every
rule above is tested by replaying events; the server stays a thin translator.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from .schedulers import Dest, Packet, SchedulerSpec, make_scheduler


@dataclass(frozen=True)
class RelayLimits:
    connect_timeout: float = 1.0  # seconds per connect attempt
    max_attempts: int = 3  # endpoints tried for one TCP connection
    avoid_seconds: float = 5.0  # a failed endpoint gets no new connections for this long
    max_connections: int = 4096  # open TCP connections per Balancer; more are refused
    udp_idle_timeout: float = 30.0
    max_udp_sessions: int = 1024  # the least recently used session is closed beyond this
    drain_timeout: float = 300.0  # connections to a removed endpoint are closed after this


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int
    weight: int = 1

    @property
    def key(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


# --- events --------------------------------------------------------------------------
@dataclass(frozen=True)
class TcpAccepted:
    conn: int
    client_ip: str
    client_port: int = 0
    dst_ip: str = ""


@dataclass(frozen=True)
class TcpConnected:
    conn: int


@dataclass(frozen=True)
class TcpConnectFailed:
    conn: int


@dataclass(frozen=True)
class TcpClosed:
    conn: int


@dataclass(frozen=True)
class UdpDatagram:
    flow: Hashable  # the server's name for (listener, client address)
    client_ip: str
    client_port: int = 0
    dst_ip: str = ""


@dataclass(frozen=True)
class UdpReply:
    flow: Hashable  # the backend answered: the session is alive


@dataclass(frozen=True)
class UdpFailed:
    flow: Hashable  # the backend answered with an error (ICMP unreachable)


@dataclass(frozen=True)
class Tick:
    pass


Event = (TcpAccepted | TcpConnected | TcpConnectFailed | TcpClosed | UdpDatagram | UdpReply
         | UdpFailed | Tick)


# --- commands ------------------------------------------------------------------------
@dataclass(frozen=True)
class Connect:
    conn: int
    backend: Backend
    timeout: float


@dataclass(frozen=True)
class Reject:
    conn: int
    reason: str


@dataclass(frozen=True)
class Close:
    conn: int
    reason: str


@dataclass(frozen=True)
class OpenUdp:
    flow: Hashable
    backend: Backend


@dataclass(frozen=True)
class SendUdp:
    flow: Hashable


@dataclass(frozen=True)
class CloseUdp:
    flow: Hashable
    reason: str


@dataclass(frozen=True)
class DropDatagram:
    flow: Hashable
    reason: str


Command = Connect | Reject | Close | OpenUdp | SendUdp | CloseUdp | DropDatagram


@dataclass
class _Conn:
    client: Packet
    dest: Dest
    tried: set[str] = field(default_factory=set)
    connected: bool = False


@dataclass
class _Session:
    dest: Dest
    last_seen: float


class Balancer:
    """Scheduling and session state for one Service port (see the module docstring)."""

    def __init__(self, scheduler: SchedulerSpec | str = "rr", affinity_timeout: float = 0,
                 limits: RelayLimits = RelayLimits()) -> None:
        self.scheduler = make_scheduler(scheduler)
        self.affinity_timeout = affinity_timeout  # 0: no ClientIP affinity
        self.limits = limits
        self.dests: dict[str, Dest] = {}  # live endpoints, in order
        self.backends: dict[str, Backend] = {}
        self.draining: dict[str, tuple[Dest, float]] = {}  # removed endpoint -> close deadline
        self.failing: dict[str, float] = {}  # endpoint key -> avoid until
        self.affinity: dict[str, tuple[str, float]] = {}  # client IP -> (endpoint, expiry)
        self.conns: dict[int, _Conn] = {}
        self.sessions: OrderedDict[Hashable, _Session] = OrderedDict()

    # -- endpoints ---------------------------------------------------------------------
    def set_endpoints(self, backends: Sequence[Backend], now: float) -> list[Command]:
        """Replace the endpoint list; removed endpoints drain, their UDP sessions close."""
        old = {**{k: d for k, (d, _) in self.draining.items()}, **self.dests}
        self.dests = {}
        for b in backends:
            d = old.get(b.key) or Dest(b.key, b.ip, b.port)
            d.weight, d.overloaded = b.weight, False
            self.dests[b.key] = d
            self.draining.pop(b.key, None)
        self.backends = {b.key: b for b in backends}
        for key, d in old.items():
            if key not in self.dests and (d.active or d.inactive):
                d.overloaded = True
                self.draining.setdefault(key, (d, now + self.limits.drain_timeout))
        self.affinity = {c: v for c, v in self.affinity.items() if v[0] in self.dests}
        self.scheduler.update(list(self.dests.values()))
        gone = [f for f, s in self.sessions.items() if s.dest.key not in self.dests]
        return [self._close_session(f, "endpoint removed") for f in gone]

    # -- events ------------------------------------------------------------------------
    def handle(self, event: Event, now: float) -> list[Command]:
        match event:
            case TcpAccepted():
                return self._accepted(event, now)
            case TcpConnected(conn=conn):
                return self._connected(conn, now)
            case TcpConnectFailed(conn=conn):
                return self._connect_failed(conn, now)
            case TcpClosed(conn=conn):
                self._forget(conn)
                return []
            case UdpDatagram():
                return self._datagram(event, now)
            case UdpReply(flow=flow):
                if flow in self.sessions:
                    self.sessions[flow].last_seen = now
                    self.sessions.move_to_end(flow)
                return []
            case UdpFailed(flow=flow):
                if flow in self.sessions:
                    self._mark_failing(self.sessions[flow].dest, now)
                    return [self._close_session(flow, "endpoint unreachable")]
                return []
            case Tick():
                return self._tick(now)
        raise TypeError(f"not a relay event: {event!r}")

    def _accepted(self, ev: TcpAccepted, now: float) -> list[Command]:
        if len(self.conns) >= self.limits.max_connections:
            return [Reject(ev.conn, f"connection cap {self.limits.max_connections} reached")]
        pkt = Packet(ev.client_ip, ev.client_port, ev.dst_ip)
        dest = self._choose(pkt, set(), now)
        if dest is None:
            return [Reject(ev.conn, "no endpoints available")]
        self.conns[ev.conn] = _Conn(pkt, dest, {dest.key})
        dest.inactive += 1
        return [Connect(ev.conn, self._backend(dest), self.limits.connect_timeout)]

    def _connected(self, conn: int, now: float) -> list[Command]:
        c = self.conns.get(conn)
        if c is None or c.connected:
            return []
        c.connected = True
        c.dest.inactive -= 1
        c.dest.active += 1
        self.failing.pop(c.dest.key, None)
        self._remember(c.client.src_ip, c.dest, now)
        return []

    def _connect_failed(self, conn: int, now: float) -> list[Command]:
        c = self.conns.get(conn)
        if c is None:
            return []
        c.dest.inactive -= 1
        self._mark_failing(c.dest, now)
        dest = None
        if len(c.tried) < self.limits.max_attempts:
            dest = self._choose(c.client, c.tried, now)
        if dest is None:
            self._drop_draining(c.dest)
            del self.conns[conn]
            return [Reject(conn, f"no endpoint answered ({len(c.tried)} tried)")]
        self._drop_draining(c.dest)
        c.dest = dest
        c.tried.add(dest.key)
        dest.inactive += 1
        return [Connect(conn, self._backend(dest), self.limits.connect_timeout)]

    def _datagram(self, ev: UdpDatagram, now: float) -> list[Command]:
        s = self.sessions.get(ev.flow)
        if s is not None:
            s.last_seen = now
            self.sessions.move_to_end(ev.flow)
            self._remember(ev.client_ip, s.dest, now)
            return [SendUdp(ev.flow)]
        dest = self._choose(Packet(ev.client_ip, ev.client_port, ev.dst_ip), set(), now)
        if dest is None:
            return [DropDatagram(ev.flow, "no endpoints available")]
        out: list[Command] = []
        while len(self.sessions) >= self.limits.max_udp_sessions:
            oldest = next(iter(self.sessions))
            out.append(self._close_session(oldest, "session table full"))
        self.sessions[ev.flow] = _Session(dest, now)
        dest.inactive += 1
        self._remember(ev.client_ip, dest, now)
        return out + [OpenUdp(ev.flow, self._backend(dest)), SendUdp(ev.flow)]

    def _tick(self, now: float) -> list[Command]:
        self.failing = {k: t for k, t in self.failing.items() if t > now}
        self.affinity = {c: v for c, v in self.affinity.items() if v[1] > now}
        idle = [f for f, s in self.sessions.items()
                if now - s.last_seen >= self.limits.udp_idle_timeout]
        out: list[Command] = [self._close_session(f, "idle") for f in idle]
        expired = {k for k, (_, t) in self.draining.items() if t <= now}
        for conn, c in list(self.conns.items()):
            if c.dest.key in expired and c.dest.key not in self.dests:
                out.append(Close(conn, f"endpoint {c.dest.key} removed, drain timeout"))
                self._forget(conn)
        for k in expired:
            self.draining.pop(k, None)
        return out

    # -- helpers -----------------------------------------------------------------------
    def _choose(self, pkt: Packet, exclude: set[str], now: float) -> Dest | None:
        """Affinity first, then the scheduler over endpoints neither failing nor tried."""
        if self.affinity_timeout:
            key, expiry = self.affinity.get(pkt.src_ip, ("", 0.0))
            d = self.dests.get(key)
            if d is not None and expiry > now and key not in exclude and not self._failing(key, now):
                return d
        for avoid_failing in (True, False):  # when every endpoint failed lately, try anyway
            for d in self.dests.values():
                d.overloaded = d.key in exclude or (avoid_failing and self._failing(d.key, now))
            dest = self.scheduler.pick(pkt)
            if dest is not None:
                break
        for d in self.dests.values():
            d.overloaded = False
        return dest

    def _failing(self, key: str, now: float) -> bool:
        return self.failing.get(key, 0.0) > now

    def _mark_failing(self, dest: Dest, now: float) -> None:
        self.failing[dest.key] = now + self.limits.avoid_seconds
        for client, (key, _) in list(self.affinity.items()):
            if key == dest.key:
                del self.affinity[client]

    def _remember(self, client_ip: str, dest: Dest, now: float) -> None:
        if self.affinity_timeout and dest.key in self.dests:
            self.affinity[client_ip] = (dest.key, now + self.affinity_timeout)

    def _backend(self, dest: Dest) -> Backend:
        return self.backends.get(dest.key) or Backend(dest.ip, dest.port, dest.weight)

    def _forget(self, conn: int) -> None:
        c = self.conns.pop(conn, None)
        if c is None:
            return
        if c.connected:
            c.dest.active -= 1
        else:
            c.dest.inactive -= 1
        self._drop_draining(c.dest)

    def _drop_draining(self, dest: Dest) -> None:
        if dest.key in self.draining and not (dest.active or dest.inactive):
            del self.draining[dest.key]

    def _close_session(self, flow: Hashable, reason: str) -> Command:
        s = self.sessions.pop(flow)
        s.dest.inactive -= 1
        self._drop_draining(s.dest)
        return CloseUdp(flow, reason)

    def counters(self) -> dict[str, tuple[int, int]]:
        """endpoint -> (active, inactive), draining ones included (for tests and metrics)."""
        out = {k: (d.active, d.inactive) for k, d in self.dests.items()}
        for c in self.conns.values():
            out.setdefault(c.dest.key, (c.dest.active, c.dest.inactive))
        return out
