"""The request being explained, normalised the way nginx normalises it before matching.

nginx matches locations against `$uri`: the path percent-decoded, with `//` merged and
`.`/`..` segments resolved (a `..` above the root is a 400). Servers are matched on the
Host header, lower-cased, without port and trailing dot.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class RequestError(ValueError):
    """A request that cannot be explained (bad URL, header or address)."""


@dataclass(frozen=True)
class Request:
    scheme: str  # http | https
    host: str  # lower-case, no port, no trailing dot
    path: str  # as sent (before normalisation)
    query: str = ""
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    client_ip: str = "127.0.0.1"
    port: int = 0  # from the URL; 0 = not given (the Ingress ports)

    @property
    def uri(self) -> str | None:
        """nginx's $uri, or None when nginx answers 400 (a `..` above the root)."""
        return normalise_path(self.path)

    @property
    def request_uri(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            k, sep, val = part.strip().partition("=")
            if sep and k == name:
                return val
        return None


_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def normalise_path(path: str) -> str | None:
    decoded = _PCT.sub(lambda m: chr(int(m.group(1), 16)), path)
    out: list[str] = []
    segments = re.sub(r"/+", "/", decoded).split("/")[1:]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
            continue
        if seg == "..":
            if not out:
                return None
            out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)


def normal_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0].rstrip(".")


def parse_request(url: str, headers: Sequence[str] = (), method: str = "GET",
                  client_ip: str = "127.0.0.1") -> Request:
    """A Request from a URL (http:// or https://), `Name: value` headers, a method and a client IP."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https"):
        raise RequestError(f"URL {url!r}: scheme must be http or https")
    hdrs: dict[str, str] = {}
    for h in headers:
        name, sep, value = h.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name.strip()):
            raise RequestError(f"header {h!r}: expected 'Name: value'")
        hdrs[name.strip().lower()] = value.strip()
    host = normal_host(hdrs.get("host") or parts.netloc.rpartition("@")[2])
    if not host:
        raise RequestError(f"URL {url!r}: no host (give one in the URL or a Host header)")
    try:
        ip = str(ipaddress.ip_address(client_ip))
    except ValueError:
        raise RequestError(f"--client-ip {client_ip!r} is not an IP address") from None
    if not re.fullmatch(r"[A-Z]+", method):
        raise RequestError(f"--method {method!r}: expected an upper-case HTTP method")
    try:
        port = parts.port or 0
    except ValueError:
        raise RequestError(f"URL {url!r}: the port is not a number from 0 to 65535") from None
    return Request(parts.scheme, host, parts.path or "/", parts.query, method, hdrs, ip, port)
