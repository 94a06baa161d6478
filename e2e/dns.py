"""A tiny authoritative DNS server on loopback for e2e tests (A records only, short TTL).

Enough of RFC 1035 for nginx's resolver: one question per query, answers from a dict that a
test may change while it runs; unknown names get NXDOMAIN.
"""

from __future__ import annotations

import socket
import struct
import threading


class DNSServer:
    def __init__(self, records: dict[str, str], ttl: int = 1) -> None:
        self.records = records
        self.ttl = ttl
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> DNSServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except (TimeoutError, OSError):
                continue
            answer = self.answer(data)
            if answer:
                self.sock.sendto(answer, peer)

    def answer(self, query: bytes) -> bytes:
        if len(query) < 12:
            return b""
        qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
        if qdcount != 1:
            return b""
        labels, i = [], 12
        while i < len(query) and query[i]:
            n = query[i]
            labels.append(query[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += n + 1
        question = query[12:i + 5]
        qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
        name = ".".join(labels).lower()
        self.queries += 1
        ip = self.records.get(name)
        if ip is None:
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        if qtype != 1:  # AAAA and others: no data
            return struct.pack("!HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, self.ttl, 4) + socket.inet_aton(ip)
        return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + rr
