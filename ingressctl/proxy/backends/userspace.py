"""`--mode userspace`: an asyncio TCP/UDP proxy that needs no netfilter and no root.

`UserspaceProxy.apply(table)` turns a ServiceTable into listening sockets: every Service
port's cluster IPs, its nodePort on the nodePort addresses, and its external and
load-balancer IPs, wherever the address can be bound here (in local mode cluster IPs are
in 127.96.0.0/16, so they bind on loopback without privileges). Each listener feeds a
`relay.Balancer` and carries out the commands it returns; this file holds socket plumbing
only: accept, connect with a timeout, hand both sockets to `splice.SplicedConnection`
(zero-copy relay with backpressure and half-close), idle timeouts, and UDP sessions as
connected backend sockets.

Design choice: a removed listener stops accepting but its open connections keep going;
they end on their own, by idle timeout, or when the Balancer's drain timeout closes them.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import time
from collections.abc import Hashable
from typing import Any

from ..core.model import ServiceTable
from ..core.relay import (
    Backend,
    Balancer,
    Close,
    CloseUdp,
    Command,
    Connect,
    DropDatagram,
    Event,
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
from ..core.userspace_plan import BalancerKey, ListenerKey, ListenerPlan, plan_listeners
from ..system.splice import SplicedConnection, TcpListener, connect

log = logging.getLogger(__name__)
MAX_BIND_BACKOFF = 2.0  # seconds between tries to bind an address that is not local (yet)

UDP_QUEUE = 64  # datagrams held per session while its backend socket is being opened


class _Session(asyncio.DatagramProtocol):
    """The backend socket of one UDP client: replies go back through the listener."""

    def __init__(self, proxy: UserspaceProxy, listener: _UdpListener, flow: Hashable,
                 client: Any) -> None:
        self.proxy, self.listener, self.flow, self.client = proxy, listener, flow, client
        self.transport: asyncio.DatagramTransport | None = None
        self.queue: list[bytes] = []
        self.closed = False

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.client)
        self.proxy.feed(self.listener.balancer, UdpReply(self.flow))

    def error_received(self, exc: Exception) -> None:
        self.proxy.feed(self.listener.balancer, UdpFailed(self.flow))

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data)
        elif len(self.queue) < UDP_QUEUE:
            self.queue.append(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, proxy: UserspaceProxy, key: ListenerKey, balancer: Balancer) -> None:
        self.proxy, self.key, self.balancer = proxy, key, balancer
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[Hashable, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.proxy.admits(self.key, addr[0]):
            return
        flow = (self.key, addr[0], addr[1])
        self.pending[flow] = data
        self.proxy.feed(self.balancer, UdpDatagram(flow, addr[0], addr[1], self.key.ip), self)
        self.pending.pop(flow, None)


class UserspaceProxy:
    """Listeners, Balancers and open connections for one ServiceTable at a time."""

    def __init__(self, nodeport_ips: tuple[str, ...] = ("0.0.0.0",), limits: RelayLimits | None = None,
                 default_scheduler: str = "rr", tcp_idle_timeout: float = 3600.0,
                 tick_seconds: float = 1.0) -> None:
        self.nodeport_ips, self.limits = nodeport_ips, limits or RelayLimits()
        self.default_scheduler, self.tcp_idle_timeout = default_scheduler, tcp_idle_timeout
        self.tick_seconds = tick_seconds
        self.listeners: dict[ListenerKey, tuple[ListenerPlan, Any]] = {}  # server or listener
        self.balancers: dict[BalancerKey, tuple[ListenerPlan, Balancer]] = {}
        self.pipes: dict[int, SplicedConnection] = {}
        self.sessions: dict[Hashable, _Session] = {}
        self.problems: list[str] = []
        self.unbound: dict[ListenerKey, ListenerPlan] = {}  # address not local (yet): retried
        self._retry_at: dict[ListenerKey, tuple[float, float]] = {}  # next try, current backoff
        self.retired: list[Balancer] = []  # replaced, still serving their connections
        self._next_conn = 0
        self._ticker: asyncio.Task[None] | None = None

    # -- configuration -----------------------------------------------------------------
    async def apply(self, table: ServiceTable) -> list[str]:
        """Open, keep or close listeners to match the table; returns the problems seen."""
        plans, self.problems = plan_listeners(table, self.nodeport_ips, self.default_scheduler)
        self.unbound = {}
        now = time.monotonic()
        wanted_balancers = {p.balancer: p for p in plans.values()}
        for bkey, plan in wanted_balancers.items():
            old = self.balancers.get(bkey)
            if old is None or (old[0].scheduler, old[0].affinity_timeout) != (plan.scheduler, plan.affinity_timeout):
                self.balancers[bkey] = (plan, Balancer(plan.scheduler, plan.affinity_timeout, self.limits))
                self._retire(old)
            balancer = self.balancers[bkey][1]
            self._run(balancer, balancer.set_endpoints(plan.backends, now), None)
        for bkey in set(self.balancers) - set(wanted_balancers):
            self._retire(self.balancers.pop(bkey))
        for lk in [k for k in self.listeners if k not in plans]:
            self._stop(lk)
        for lk, plan in plans.items():
            current = self.listeners.get(lk)
            if current is not None and current[0].balancer == plan.balancer and \
                    self._balancer_of(current[1]) is self.balancers[plan.balancer][1]:
                self.listeners[lk] = (plan, current[1])  # source ranges may have changed
                continue
            if current is not None:
                self._stop(lk)
            await self._start(lk, plan)
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
        return self.problems

    def _retire(self, entry: tuple[ListenerPlan, Balancer] | None) -> None:
        """A replaced Balancer keeps ticking (idle and drain timeouts) while it has connections."""
        if entry is not None:
            self._run(entry[1], entry[1].set_endpoints([], time.monotonic()), None)  # all of it drains
            self.retired.append(entry[1])

    @staticmethod
    def _balancer_of(server: Any) -> Balancer | None:
        return getattr(server, "ingressctl_balancer", None)

    async def _start(self, lk: ListenerKey, plan: ListenerPlan) -> None:
        loop = asyncio.get_running_loop()
        balancer = self.balancers[plan.balancer][1]
        try:
            if lk.protocol == "TCP":
                server: Any = TcpListener(loop, lk.ip, lk.port,
                                          lambda sock, peer, local: self._accept(lk, balancer, sock, peer, local))
            else:
                _, server = await loop.create_datagram_endpoint(
                    lambda: _UdpListener(self, lk, balancer), local_addr=(lk.ip, lk.port))
        except OSError as e:
            level = logging.DEBUG if e.errno == errno.EADDRNOTAVAIL else logging.WARNING
            log.log(level, "cannot listen on %s for %s: %s", lk, plan.balancer[0], e.strerror)
            if e.errno == errno.EADDRNOTAVAIL:  # e.g. an LB address another node announces
                self.unbound[lk] = plan
                _, backoff = self._retry_at.get(lk, (0.0, self.tick_seconds / 2))
                backoff = min(backoff * 2, MAX_BIND_BACKOFF)
                self._retry_at[lk] = (time.monotonic() + backoff, backoff)
            else:
                self.problems.append(f"{plan.balancer[0]}: cannot listen on {lk}: {e.strerror}")
            return
        server.ingressctl_balancer = balancer
        self.listeners[lk] = (plan, server)

    def _stop(self, lk: ListenerKey) -> None:
        _, server = self.listeners.pop(lk)
        if isinstance(server, _UdpListener):
            for flow in [f for f in self.sessions if f[0] == lk]:  # type: ignore[index]
                self.sessions.pop(flow).close()
            if server.transport is not None:
                server.transport.close()
        else:
            server.close()  # stops accepting; open connections continue

    async def close(self) -> None:
        for lk in list(self.listeners):
            self._stop(lk)
        for pipe in list(self.pipes.values()):
            pipe.close(abort=True)
        for s in list(self.sessions.values()):
            s.close()
        self.sessions.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    # -- events and commands -----------------------------------------------------------
    def admits(self, lk: ListenerKey, client_ip: str) -> bool:
        entry = self.listeners.get(lk)
        return entry is None or entry[0].admits(client_ip)

    def _accept(self, lk: ListenerKey, balancer: Balancer, sock: socket.socket, peer: tuple[str, int],
                local: str) -> None:
        if not self.admits(lk, peer[0]):
            log.debug("%s: refused %s (loadBalancerSourceRanges)", lk, peer[0])
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            return
        self._next_conn += 1
        conn = self._next_conn
        self.pipes[conn] = SplicedConnection(asyncio.get_running_loop(), sock,
                                             lambda: self._closed(conn, balancer))
        self.feed(balancer, TcpAccepted(conn, peer[0], peer[1], local))

    def _closed(self, conn: int, balancer: Balancer) -> None:
        self.pipes.pop(conn, None)
        self.feed(balancer, TcpClosed(conn))

    def feed(self, balancer: Balancer, event: Event, listener: _UdpListener | None = None) -> None:
        self._run(balancer, balancer.handle(event, time.monotonic()), listener)

    def _run(self, balancer: Balancer, commands: list[Command], listener: _UdpListener | None) -> None:
        for cmd in commands:
            match cmd:
                case Connect():
                    pipe = self.pipes.get(cmd.conn)
                    if pipe is not None:
                        asyncio.get_running_loop().create_task(self._connect(cmd.conn, pipe, balancer, cmd))
                case Reject(conn=conn) | Close(conn=conn):
                    log.debug("connection %d: %s", conn, cmd.reason)
                    pipe = self.pipes.get(conn)
                    if pipe is not None:
                        pipe.close(abort=True)
                case OpenUdp() if listener is not None:
                    self._open_udp(listener, cmd)
                case SendUdp(flow=flow) if listener is not None:
                    session = self.sessions.get(flow)
                    if session is not None:
                        session.send(listener.pending.get(flow, b""))
                case CloseUdp(flow=flow):
                    session = self.sessions.pop(flow, None)
                    if session is not None:
                        session.close()
                case DropDatagram():
                    log.debug("datagram dropped: %s", cmd.reason)

    async def _connect(self, conn: int, pipe: SplicedConnection, balancer: Balancer, cmd: Connect) -> None:
        try:
            upstream = await connect(cmd.backend.ip, cmd.backend.port, cmd.timeout)
        except (TimeoutError, OSError):
            if not pipe.closed:
                self.feed(balancer, TcpConnectFailed(conn))
            return
        if pipe.closed:
            upstream.close()
            return
        pipe.attach(upstream)
        self.feed(balancer, TcpConnected(conn))

    def _open_udp(self, listener: _UdpListener, cmd: OpenUdp) -> None:
        client = (cmd.flow[1], cmd.flow[2])  # type: ignore[index]
        session = _Session(self, listener, cmd.flow, client)
        self.sessions[cmd.flow] = session
        asyncio.get_running_loop().create_task(self._connect_udp(session, cmd.backend))

    async def _connect_udp(self, session: _Session, backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: session,
                                                               remote_addr=(backend.ip, backend.port))
        except OSError:
            self.feed(session.listener.balancer, UdpFailed(session.flow), session.listener)
            return
        if session.closed:
            transport.close()
            return
        session.transport = transport
        for data in session.queue:
            transport.sendto(data)
        session.queue.clear()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            for balancer in [b for _, b in self.balancers.values()] + self.retired:
                self.feed(balancer, Tick())
            self.retired = [b for b in self.retired if b.conns or b.sessions]
            cutoff = time.monotonic() - self.tcp_idle_timeout
            for pipe in [p for p in self.pipes.values() if p.last_active < cutoff]:
                pipe.close(abort=True)
            now = time.monotonic()
            self._retry_at = {k: v for k, v in self._retry_at.items() if k in self.unbound}
            for lk, plan in list(self.unbound.items()):  # the address may be local by now
                if self._retry_at.get(lk, (0.0, 0.0))[0] > now:
                    continue
                if lk not in self.listeners and plan.balancer in self.balancers:
                    del self.unbound[lk]
                    await self._start(lk, plan)
