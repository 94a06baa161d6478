"""e2e: TCP and UDP services from ConfigMaps (issue 14 §4) with real nginx: a TCP echo and a UDP
echo reached through the ConfigMaps' ports, the PROXY protocol taken from the client and sent
on to the backend, and an endpoint change followed (a reload)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from .annotation_kit import ingress, service, started_controller
from .harness import Backends, LocalController, free_port, wait_until


class _TCPEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(65536)
        self.request.sendall(b"tcp:" + data)


class _UDPEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(b"udp:" + data, self.client_address)


def _serve(server: socketserver.BaseServer) -> socketserver.BaseServer:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _configmap(name: str, data: dict[str, str]) -> str:
    entries = "".join(f'\n  "{k}": "{v}"' for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata:{entries}\n"


def _udp_service(name: str, port: int) -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec: {{ports: [{{name: dns, port: 53, protocol: UDP}}]}}\n---\n"
            f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\n"
            f"addressType: IPv4\nports: [{{name: dns, port: {port}, protocol: UDP}}]\n"
            f"endpoints: [{{addresses: [127.0.0.1]}}]\n")


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[LocalController, dict[str, int]]]:
    tcp = _serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _TCPEcho))
    udp = _serve(socketserver.ThreadingUDPServer(("127.0.0.1", 0), _UDPEcho))
    ports = {"tcp": free_port(), "proxy": free_port(), "udp": _udp_port(), "missing": free_port()}
    b = Backends()
    try:
        manifests = {
            "web.yaml": service("web", [b.start("web")]), "ing.yaml": ingress("web", "web.test", [("/", "Prefix", "web")]),
            "echo.yaml": service("echo", [tcp.server_address[1]]),
            "dns.yaml": _udp_service("dns", udp.server_address[1]),
            "tcp.yaml": _configmap("tcp", {str(ports["tcp"]): "default/echo:80",
                                           str(ports["proxy"]): "default/echo:80:PROXY:PROXY",
                                           str(ports["missing"]): "default/nope:80"}),
            "udp.yaml": _configmap("udp", {str(ports["udp"]): "default/dns:53"}),
        }
        yield from ((c, ports) for c in started_controller(
            manifests, lambda c: c.get("web.test").status == 200,
            extra_args=["--tcp-services-configmap", "default/tcp", "--udp-services-configmap", "default/udp"]))
    finally:
        b.stop()
        tcp.shutdown()
        udp.shutdown()


def _tcp(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(65536)


def test_a_tcp_service_reaches_its_endpoints(setup: tuple[LocalController, dict[str, int]]) -> None:
    _, ports = setup
    assert _tcp(ports["tcp"], b"hello") == b"tcp:hello"


def test_a_udp_service_reaches_its_endpoints(setup: tuple[LocalController, dict[str, int]]) -> None:
    _, ports = setup
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"ping", ("127.0.0.1", ports["udp"]))
        assert s.recvfrom(65536)[0] == b"udp:ping"


def test_the_proxy_protocol_is_taken_and_passed_on(setup: tuple[LocalController, dict[str, int]]) -> None:
    _, ports = setup
    answer = _tcp(ports["proxy"], b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\nhello")
    assert answer.startswith(b"tcp:PROXY TCP4 192.0.2.9 "), answer  # the client's address, re-encoded
    assert answer.endswith(b"\r\nhello"), answer


def test_an_entry_without_a_service_is_reported_and_not_listened(setup: tuple[LocalController, dict[str, int]]) -> None:
    ctl, ports = setup
    with pytest.raises(OSError):
        _tcp(ports["missing"], b"x")
    wait_until(lambda: 'ingressctl_problems{reason="ServiceNotFound"}' in ctl.status("/metrics")[1], 5, "reported")
