"""The userspace proxy with real sockets on loopback: TCP and UDP through cluster IPs and
nodePorts, retries, affinity, draining, backpressure and no file descriptor leaks."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ingressctl.proxy.backends.userspace import UserspaceProxy
from ingressctl.proxy.core.model import EndpointInfo, ServiceInfo, ServicePortKey, ServiceTable
from ingressctl.proxy.core.relay import RelayLimits
from ingressctl.proxy.system.splice import PIPE_SIZE

NET = f"127.98.{os.getpid() % 250}"  # cluster IPs of this test run, bindable on loopback
TIMEOUT = 20.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service(ip_suffix: int, endpoints: list[int], protocol: str = "TCP", node_port: int = 0,
            affinity: bool = False, scheduler: str = "rr", dead: tuple[int, ...] = ()) -> ServiceInfo:
    eps = tuple(EndpointInfo("127.0.0.1", p) for p in endpoints + list(dead))
    return ServiceInfo(
        key=ServicePortKey("default", f"svc{ip_suffix}", "", protocol),
        type="NodePort" if node_port else "ClusterIP", cluster_ips=(f"{NET}.{ip_suffix}",),
        port=8080, protocol=protocol, node_port=node_port, scheduler=scheduler,
        session_affinity="ClientIP" if affinity else "None", affinity_timeout=60, endpoints=eps)


def table(*infos: ServiceInfo) -> ServiceTable:
    return ServiceTable(services={i.key: i for i in infos})


class NamedBackends:
    """TCP servers on loopback answering 'name' to 'who', echoing everything else."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.ports: list[int] = []

    async def start(self, n: int) -> list[int]:
        for i in range(n):
            server = await asyncio.start_server(self._handler(f"b{i}"), "127.0.0.1", 0)
            self.servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])
        return self.ports

    @staticmethod
    def _handler(name: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(name.encode() if data == b"who" else data)
                    await writer.drain()
                writer.write(b"bye")  # after the client's half-close
                await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()
        return handle

    def close(self) -> None:
        for s in self.servers:
            s.close()


async def ask(host: str, port: int, data: bytes = b"who") -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await reader.read(100)
    finally:
        writer.close()
        await writer.wait_closed()


def run(coro_fn: Callable[[UserspaceProxy, NamedBackends], Awaitable[Any]], **kw: Any) -> Any:
    async def main() -> Any:
        proxy, backends = UserspaceProxy(nodeport_ips=("127.0.0.1",), **kw), NamedBackends()
        try:
            return await asyncio.wait_for(coro_fn(proxy, backends), TIMEOUT)
        finally:
            await proxy.close()
            backends.close()
    return asyncio.run(main())


def test_round_robin_through_cluster_ip_and_node_port() -> None:
    node_port = free_port()

    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(3)
        assert await proxy.apply(table(service(1, ports, node_port=node_port))) == []
        via_cluster = [await ask(f"{NET}.1", 8080) for _ in range(6)]
        assert via_cluster == [b"b0", b"b1", b"b2"] * 2
        via_node = Counter([await ask("127.0.0.1", node_port) for _ in range(6)])
        assert via_node == {b"b0": 2, b"b1": 2, b"b2": 2}
    run(body)


def test_client_ip_affinity_and_failed_endpoint_retry() -> None:
    dead = free_port()  # nothing listens there: connect is refused, the next one is tried

    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(2)
        await proxy.apply(table(service(2, ports, dead=(dead,)),
                                service(3, ports, affinity=True)))
        answers = [await ask(f"{NET}.2", 8080) for _ in range(9)]
        assert set(answers) == {b"b0", b"b1"}  # every connection answered
        assert len({await ask(f"{NET}.3", 8080) for _ in range(8)}) == 1
    run(body)


def test_half_close_and_removed_endpoint_drains() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(2)
        await proxy.apply(table(service(4, ports)))
        reader, writer = await asyncio.open_connection(f"{NET}.4", 8080)
        writer.write(b"who")
        assert await reader.read(10) == b"b0"
        await proxy.apply(table(service(4, ports[1:])))  # b0 removed: drains
        assert {await ask(f"{NET}.4", 8080) for _ in range(4)} == {b"b1"}
        writer.write(b"still here")
        assert await reader.read(100) == b"still here"
        writer.write_eof()  # half-close: the backend still answers after it
        assert await reader.read(100) == b"bye"
        writer.close()
    run(body)


def test_thousands_of_connections_leak_no_descriptors() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(3)
        await proxy.apply(table(service(5, ports)))
        await ask(f"{NET}.5", 8080)
        await asyncio.sleep(0.05)
        before = len(os.listdir("/proc/self/fd"))
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> bytes:
            async with sem:
                return await ask(f"{NET}.5", 8080, b"x%d" % i)
        results = await asyncio.gather(*(one(i) for i in range(3000)))
        assert results == [b"x%d" % i for i in range(3000)]
        for _ in range(100):  # closes finish asynchronously; bounded wait
            if not proxy.pipes and len(os.listdir("/proc/self/fd")) <= before:
                break
            await asyncio.sleep(0.05)
        assert proxy.pipes == {}
        assert len(os.listdir("/proc/self/fd")) <= before
        balancer = next(iter(proxy.balancers.values()))[1]
        assert set(balancer.counters().values()) == {(0, 0)}
    run(body)


def test_backpressure_bounds_the_proxy_buffers() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        stalled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        received = 0

        async def slow_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal received
            await stalled  # does not read at first
            while data := await reader.read(1 << 20):
                received += len(data)
            writer.close()
        sink = await asyncio.start_server(slow_sink, "127.0.0.1", 0)
        backends.servers.append(sink)
        await proxy.apply(table(service(6, [sink.sockets[0].getsockname()[1]])))
        _, writer = await asyncio.open_connection(f"{NET}.6", 8080)
        chunk, sent, peak = b"z" * 65536, 0, 0
        for _ in range(400):  # up to 25 MiB, but the proxy must push back long before that
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.2)
            except TimeoutError:
                break
            sent += len(chunk)
            for pipe in proxy.pipes.values():
                peak = max(peak, pipe.buffered())
        assert sent < 400 * len(chunk), "the client was never slowed down"
        assert 0 < peak <= 2 * PIPE_SIZE  # what the proxy holds: at most a pipe per direction
        stalled.set_result(None)
        await writer.drain()
        writer.close()
        for _ in range(200):
            if received >= sent:
                break
            await asyncio.sleep(0.05)
        assert received >= sent
    run(body)


def test_connection_cap_refuses_the_excess() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(1)
        await proxy.apply(table(service(7, ports)))
        held = [await asyncio.open_connection(f"{NET}.7", 8080) for _ in range(2)]
        for r, w in held:
            w.write(b"who")
            assert await r.read(10) == b"b0"
        try:  # refused with a reset: at connect, or at the first read
            r, w = await asyncio.open_connection(f"{NET}.7", 8080)
            answer = await r.read(10)
            w.close()
        except ConnectionError:
            answer = b""
        assert answer == b""
        for _, hw in held:
            hw.close()
    run(body, limits=RelayLimits(max_connections=2))


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name + b":" + data, addr)


def test_udp_sessions_per_client_and_idle_expiry() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        loop = asyncio.get_running_loop()
        ports, transports = [], []
        for name in (b"u0", b"u1"):
            t, _ = await loop.create_datagram_endpoint(lambda n=name: UdpEcho(n), local_addr=("127.0.0.1", 0))
            transports.append(t)
            ports.append(t.get_extra_info("sockname")[1])
        await proxy.apply(table(service(8, ports, protocol="UDP")))
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            answers = []
            for i, c in enumerate(clients):
                c.setblocking(False)
                for j in range(3):
                    await loop.sock_sendto(c, b"m%d" % j, (f"{NET}.8", 8080))
                    data = await asyncio.wait_for(loop.sock_recv(c, 100), 5)
                    answers.append((i, data))
            per_client = {i: {d.split(b":")[0] for c, d in answers if c == i} for i in range(4)}
            assert all(len(v) == 1 for v in per_client.values())  # one session, one backend
            assert {d.split(b":")[1] for _, d in answers} == {b"m0", b"m1", b"m2"}
            assert len(proxy.sessions) == 4
            for _ in range(60):  # idle timeout 0.5 s, ticks every 0.1 s: bounded wait
                if not proxy.sessions:
                    break
                await asyncio.sleep(0.1)
            assert proxy.sessions == {}
        finally:
            for c in clients:
                c.close()
            for t in transports:
                t.close()
    run(body, limits=RelayLimits(udp_idle_timeout=0.5), tick_seconds=0.1)


def test_connect_timeout_moves_on_to_the_next_endpoint() -> None:
    # A listener that never accepts, with its queue already full: SYNs to it are dropped,
    # so connecting to it hangs until the proxy's connect timeout.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue (its length is backlog + 1)
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(stuck.getsockname())
        fillers.append(f)

    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(1)
        await proxy.apply(table(service(9, [stuck.getsockname()[1]] + ports)))
        answers = [await ask(f"{NET}.9", 8080) for _ in range(4)]
        assert answers == [b"b0"] * 4  # the first waited out the timeout; then the stuck one is avoided
        balancer = next(iter(proxy.balancers.values()))[1]
        assert f"127.0.0.1:{stuck.getsockname()[1]}" in balancer.failing
    try:
        run(body, limits=RelayLimits(connect_timeout=0.3))
    finally:
        for f in fillers:
            f.close()
        stuck.close()


def test_load_balancer_source_ranges_refuse_other_clients() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(1)
        lb_open, lb_closed = f"{NET}.21", f"{NET}.22"
        open_svc = dataclasses.replace(service(20, ports), load_balancer_ips=(lb_open,),
                                       load_balancer_source_ranges=("127.0.0.0/8",))
        closed_svc = dataclasses.replace(service(23, ports), load_balancer_ips=(lb_closed,),
                                         load_balancer_source_ranges=("192.0.2.0/24",))
        await proxy.apply(table(open_svc, closed_svc))
        assert await ask(lb_open, 8080) == b"b0"
        assert await ask(f"{NET}.23", 8080) == b"b0"  # the cluster IP is not filtered
        try:
            answer = await ask(lb_closed, 8080)
        except ConnectionError:
            answer = b""
        assert answer == b""
    run(body)


def test_scheduler_change_keeps_open_connections() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        ports = await backends.start(2)
        await proxy.apply(table(service(30, ports)))
        reader, writer = await asyncio.open_connection(f"{NET}.30", 8080)
        writer.write(b"who")
        assert await reader.read(10) == b"b0"
        await proxy.apply(table(service(30, ports, scheduler="lc")))  # a new Balancer
        assert len(proxy.retired) == 1
        writer.write(b"still here")
        assert await reader.read(100) == b"still here"
        assert await ask(f"{NET}.30", 8080) == b"b0"  # the new lc Balancer starts from zero counts
        writer.close()
        for _ in range(50):  # the retired Balancer goes once its connection is closed
            if not proxy.retired:
                break
            await asyncio.sleep(0.1)
        assert proxy.retired == []
    run(body, tick_seconds=0.1)


def test_udp_client_ip_affinity_across_client_ports() -> None:
    async def body(proxy: UserspaceProxy, backends: NamedBackends) -> None:
        loop = asyncio.get_running_loop()
        transports, ports = [], []
        for name in (b"u0", b"u1", b"u2"):
            t, _ = await loop.create_datagram_endpoint(lambda n=name: UdpEcho(n), local_addr=("127.0.0.1", 0))
            transports.append(t)
            ports.append(t.get_extra_info("sockname")[1])
        plain = service(40, ports, protocol="UDP")
        sticky = service(41, ports, protocol="UDP", affinity=True)
        await proxy.apply(table(plain, sticky))

        async def backend_of(ip: str) -> bytes:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:  # a new client port each time
                c.setblocking(False)
                await loop.sock_sendto(c, b"hi", (ip, 8080))
                return (await asyncio.wait_for(loop.sock_recv(c, 100), 5)).split(b":")[0]
        try:
            assert len({await backend_of(f"{NET}.40") for _ in range(6)}) == 3  # round robin
            assert len({await backend_of(f"{NET}.41") for _ in range(6)}) == 1  # ClientIP affinity
        finally:
            for t in transports:
                t.close()
    run(body)
