"""Network namespaces for proxy e2e tests: a node, pods behind it, a client routed to it.

Topology (every address lives only inside namespaces this module creates):

    client 192.168.50.2 --veth-- 192.168.50.1  node  10.244.<i>.1 --veth-- 10.244.<i>.2  pod<i>
                                                 172.31.255.1 --veth-- 172.31.255.2  uplink (a sink)

The node forwards and routes its default to the uplink sink (so traffic to cluster, LB and
external IPs that no rule DNATs is forwarded there, through the filter hooks), pods route their default to the node, the client
routes its default to the node. `Netns.run(fn)` runs `fn` in a thread that has entered
the namespace (setns affects one thread), so tests open hundreds of connections from
"inside" a namespace without one subprocess each. `EchoServer` answers every TCP
connection and UDP datagram with "<pod> <peer ip>:<peer port>", which is how tests see
which endpoint served them and what source address it saw.

Names are `icp<pid>-<role>`; `Topology.close()` deletes every namespace it made, and the
context manager calls it even when setup or a test fails.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*argv: str, check: bool = True, stdin: str = "") -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Netns:
    name: str

    def exec(self, *argv: str, check: bool = True, stdin: str = "") -> str:
        return sh("ip", "netns", "exec", self.name, *argv, check=check, stdin=stdin)

    def enter(self) -> None:
        """Move the *calling thread* into this namespace (never call on the main thread)."""
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.name}")
        finally:
            os.close(fd)

    def run(self, fn: Callable[[], T], timeout: float = 60.0) -> T:
        """Run fn in a fresh thread inside the namespace; return its result or raise its error."""
        out: dict[str, Any] = {}

        def target() -> None:
            try:
                self.enter()
                out["value"] = fn()
            except BaseException as e:  # re-raised in the caller
                out["error"] = e

        t = threading.Thread(target=target, name=f"in-{self.name}", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"{fn} in {self.name} still running after {timeout}s")
        if "error" in out:
            raise out["error"]
        return out["value"]  # type: ignore[no-any-return]


class EchoServer:
    """TCP and UDP echo of "<name> <peer>" inside a namespace, served by daemon threads."""

    def __init__(self, ns: Netns, name: str, ip: str, tcp_port: int, udp_port: int) -> None:
        self.name, self._stop = name, threading.Event()
        self.tcp = ns.run(lambda: self._bind(socket.SOCK_STREAM, ip, tcp_port))
        self.udp = ns.run(lambda: self._bind(socket.SOCK_DGRAM, ip, udp_port))
        for target in (self._serve_tcp, self._serve_udp):
            threading.Thread(target=target, daemon=True).start()

    @staticmethod
    def _bind(kind: int, ip: str, port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        if kind == socket.SOCK_STREAM:
            s.listen(512)
        s.settimeout(0.2)
        return s

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                try:
                    conn.sendall(f"{self.name} {peer[0]}:{peer[1]}\n".encode())
                    conn.settimeout(1.0)
                    conn.recv(16)  # let the client close first: TIME_WAIT stays on its side
                except OSError:
                    pass

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                _, peer = self.udp.recvfrom(2048)
                self.udp.sendto(f"{self.name} {peer[0]}:{peer[1]}\n".encode(), peer)
            except (TimeoutError, OSError):
                continue

    def stop(self) -> None:
        self._stop.set()
        self.tcp.close()
        self.udp.close()


@dataclass
class Pod:
    name: str
    ns: Netns
    ip: str
    gateway: str  # the node's address on this pod's link


@dataclass
class Topology:
    prefix: str
    node: Netns
    client: Netns
    pods: list[Pod]
    node_ip: str = "192.168.50.1"  # the node's address on the client link
    client_ip: str = "192.168.50.2"
    servers: list[EchoServer] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_echo(self, tcp_port: int = 8080, udp_port: int = 5353) -> None:
        for p in self.pods:
            self.servers.append(EchoServer(p.ns, p.name, "0.0.0.0", tcp_port, udp_port))

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        for name in reversed(self.created):
            sh("ip", "netns", "del", name, check=False)
        self.created.clear()


def _add_ns(topo_created: list[str], name: str) -> Netns:
    sh("ip", "netns", "add", name)
    topo_created.append(name)
    ns = Netns(name)
    ns.exec("ip", "link", "set", "lo", "up")
    return ns


def _link(a: Netns, a_dev: str, a_cidr: str, b: Netns, b_dev: str, b_cidr: str) -> None:
    sh("ip", "link", "add", a_dev, "netns", a.name, "type", "veth", "peer", "name", b_dev, "netns", b.name)
    for ns, dev, cidr in ((a, a_dev, a_cidr), (b, b_dev, b_cidr)):
        ns.exec("ip", "addr", "add", cidr, "dev", dev)
        ns.exec("ip", "link", "set", dev, "up")


def create_topology(pods: int = 3, prefix: str = "", sysctls: Sequence[str] = ()) -> Topology:
    """Create node, client and `pods` pod namespaces; the caller must close() (or use `with`)."""
    prefix = prefix or f"icp{os.getpid()}"
    created: list[str] = []
    try:
        node = _add_ns(created, f"{prefix}-node")
        client = _add_ns(created, f"{prefix}-client")
        _link(node, "vc", "192.168.50.1/24", client, "eth0", "192.168.50.2/24")
        client.exec("ip", "route", "add", "default", "via", "192.168.50.1")
        # The node's default route goes to a dummy "uplink" (as on a real node), never back to
        # the client: unmatched traffic is forwarded there, through the filter hooks.
        sink = _add_ns(created, f"{prefix}-uplink")  # answers nothing, forwards nothing
        _link(node, "uplink", "172.31.255.1/24", sink, "eth0", "172.31.255.2/24")
        node.exec("ip", "route", "add", "default", "via", "172.31.255.2")
        for s in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", *sysctls):
            node.exec("sysctl", "-qw", s)
        out = []
        for i in range(1, pods + 1):
            ns = _add_ns(created, f"{prefix}-pod{i}")
            _link(node, f"vp{i}", f"10.244.{i}.1/24", ns, "eth0", f"10.244.{i}.2/24")
            ns.exec("ip", "route", "add", "default", "via", f"10.244.{i}.1")
            out.append(Pod(f"pod{i}", ns, f"10.244.{i}.2", f"10.244.{i}.1"))
    except BaseException:
        for name in reversed(created):
            sh("ip", "netns", "del", name, check=False)
        raise
    return Topology(prefix, node, client, out, created=created)


def tcp_ask(ip: str, port: int, timeout: float = 2.0) -> str:
    """Connect, read the echo line; raises ConnectionRefusedError / TimeoutError as the kernel says."""
    with socket.create_connection((ip, port), timeout=timeout) as s:
        # close with RST: thousands of connections per test leave no TIME_WAIT to run out of ports
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def udp_ask(ip: str, port: int, timeout: float = 2.0) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"ping", (ip, port))
        data, _ = s.recvfrom(2048)
    return data.decode().strip()
