"""Endpoint updates without a reload, through nginx's Lua balancer (nginx-extras has it).

Round-robin upstreams are rendered with a placeholder server and `balancer_by_lua`; their
endpoints live in a shared dict filled from `<prefix>/endpoints.txt` whenever nginx loads its
configuration (init_by_lua), and from POSTs of changed lines to the private status socket
while it runs. The file is rewritten before every push, so a reload or a restart of nginx
always starts from the current endpoints.

Design choice: the table is plain text, one line per upstream (`name ip|port ip|port`), built
only from validated names and addresses, so the Lua side needs no JSON library and no user
text ever reaches Lua code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from ..ingress.model import Model, Upstream
from .process import UnixHTTPConnection
from .render import LUA_MODULES

log = logging.getLogger(__name__)


EndpointTable = dict[str, str]  # upstream name -> "ip|port ip|port"


def lua_available() -> bool:
    """True when nginx can load the Lua module (Debian's nginx-extras)."""
    return all(Path(p).exists() for p in LUA_MODULES)


def endpoint_line(upstream: Upstream) -> str:
    return " ".join(f"{e.address}|{e.port}" for e in upstream.endpoints)


CERTIFICATE = "@cert|"  # table entries "@cert|<listener>|<name pattern>" -> certificate file name


def certificate_table(model: Model) -> EndpointTable:
    """Which certificate the Lua callback gives each SNI name, per listener: servers without
    an SSL context of their own (Server.own_tls_context). Same names: the first server wins,
    as nginx ignores a later server_name that conflicts."""
    out: EndpointTable = {}
    for server in model.servers:
        if server.certificate and server.serves_tls and not server.own_tls_context:
            for pattern in server.sni_patterns:
                out.setdefault(f"{CERTIFICATE}{server.listener_key}|{pattern}", server.certificate)
    return out


def endpoint_table(model: Model, certificates: bool = False) -> EndpointTable:
    """What the shared dict holds: endpoints of Lua-balanced upstreams and, with
    `certificates` (RenderContext.lua_certificates), the certificate table."""
    table = {u.name: endpoint_line(u) for u in model.upstreams if u.lua_balanced and u.endpoints}
    if certificates:
        table.update(certificate_table(model))
    return table


class EndpointPusher:
    """Keeps nginx's shared dict equal to the endpoint table, without reloads."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.file = prefix / "endpoints.txt"
        self.socket = prefix / "status.sock"
        self.live: EndpointTable = {}  # what nginx holds now, as far as we know

    def install_lua(self) -> None:
        lua_dir = self.prefix / "lua"
        lua_dir.mkdir(parents=True, exist_ok=True)
        for name in ("ingressctl.lua", "ingressctl_metrics.lua"):
            source = resources.files("ingressctl.templates").joinpath(name).read_bytes()
            target = lua_dir / name
            if not target.exists() or target.read_bytes() != source:
                target.write_bytes(source)
        os.chmod(lua_dir, 0o755)

    def write_file(self, table: Mapping[str, str]) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text("".join(f"{name} {line}\n" for name, line in sorted(table.items())))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.file)

    def loaded(self, table: Mapping[str, str]) -> None:
        """nginx just (re)loaded its configuration, and with it the file."""
        self.live = dict(table)

    def push(self, table: Mapping[str, str]) -> int:
        """Make nginx hold `table`: send the lines that differ from what it holds; returns how
        many changed."""
        changed = {n: line for n, line in table.items() if self.live.get(n) != line}
        changed.update({n: "" for n in self.live if n not in table})
        if not changed:
            return 0
        self.write_file(table)
        self._post(changed)
        self.live = dict(table)
        return len(changed)

    def push_lines(self, lines: Mapping[str, str]) -> int:
        """The fast path: only these upstreams changed (no name appears or goes): send the ones
        that differ, then rewrite the file a reload or restart reads. Work follows the change,
        not the number of upstreams (but for the file, written after traffic follows)."""
        changed = {n: line for n, line in lines.items() if self.live.get(n) != line}
        if not changed:
            return 0
        self._post(changed)
        self.live.update(changed)
        self.write_file(self.live)
        return len(changed)

    def _post(self, changed: Mapping[str, str]) -> None:
        body = "".join(f"{n} {line}\n" for n, line in sorted(changed.items())).encode()
        conn = UnixHTTPConnection(str(self.socket), timeout=5.0)
        try:
            conn.request("POST", "/ingressctl/endpoints", body=body,
                         headers={"Content-Type": "text/plain", "Connection": "close"})
            resp = conn.getresponse()
            answer = resp.read().decode().strip()
            if resp.status != 200:
                raise OSError(f"nginx answered {resp.status} to an endpoint update: {answer[:200]}")
        finally:
            conn.close()
