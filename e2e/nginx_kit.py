"""e2e kit: one `ingressctl.nginx.process.Nginx` in this process, on a minimal configuration.

For tests of the master's lifecycle (reloads, worker generations, deaths) that need no
Ingress: `conf(cid)` is an nginx.conf that answers `cid` on the HTTP port and on the private
status socket, as the real templates do. `worker_states(master)` reads /proc on its own (it
does not use the module under test).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingressctl.nginx.process import Nginx

from .harness import free_port

CONF = """
worker_processes 2; pid {prefix}/nginx.pid; error_log stderr error;
events {{ worker_connections 256; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{cid}"; }} }}
  server {{ listen unix:{prefix}/status.sock; location = /ingressctl/config-id {{ return 200 "{cid}"; }} }} }}
"""


class MiniNginx:
    def __init__(self) -> None:
        state = Path(tempfile.mkdtemp(prefix="ingressctl-e2e-mini-"))
        os.chmod(state, 0o755)
        self.state = state
        self.port = free_port()
        self.nginx = Nginx(state / "nginx", reload_timeout=10)
        self.nginx.prepare()

    def conf(self, cid: str) -> str:
        return CONF.format(prefix=self.nginx.prefix, port=self.port, cid=cid)

    def apply(self, cid: str) -> None:
        result = self.nginx.apply(self.conf(cid), cid, {})
        assert result.ok, result.message

    def stop(self) -> None:
        self.nginx.stop(graceful=False, timeout=5)
        import shutil

        shutil.rmtree(self.state, ignore_errors=True)


def worker_states(master: int) -> dict[int, str]:
    """PID -> process title of every child of `master`, from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == master:
            out[int(entry)] = title
    return out


@pytest.fixture
def mini() -> Iterator[MiniNginx]:
    m = MiniNginx()
    yield m
    m.stop()
