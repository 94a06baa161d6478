"""The nginx-shaped model that `build` produces and templates format.

Everything here is frozen and already validated: a template can print any field without
further checks. Names (upstream names, server names, paths) have passed the validators in
`values.py`, so they contain no nginx syntax.

Design choice: the model is close to nginx (servers, locations, upstreams) but holds no
nginx text; the templates decide only layout. A location already knows its nginx match
modifier so templates never compute precedence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from .annotations import IngressConfig
from .settings import Settings


@dataclass(frozen=True)
class Endpoint:
    address: str  # an IP; IPv6 without brackets
    port: int

    @property
    def hostport(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Upstream:
    name: str  # ns-service-port, safe as an nginx identifier
    service: str  # ns/name
    endpoints: tuple[Endpoint, ...]
    external_name: str = ""  # ExternalName Service: resolved by nginx at request time
    external_port: int = 0
    load_balance: str = "round_robin"
    hash_by: str = ""
    keepalive: int = 32

    @property
    def dynamic(self) -> bool:
        return bool(self.external_name)


@dataclass(frozen=True)
class Location:
    """One nginx `location`: match modifier + path, and where requests go."""

    path: str
    modifier: str  # "=" exact, "" prefix, "~" regex (case sensitive), "~*" regex (case-insensitive)
    upstream: str  # upstream name; "" when `status` answers instead
    status: int  # 0 when proxied; 503 (no endpoints), 404 (no default backend)
    ingress: str  # ns/name of the Ingress this came from ("" for the built-in default)
    service: str  # ns/name:port for logs
    config: IngressConfig = field(default_factory=IngressConfig)
    external_name: str = ""
    external_port: int = 0
    canaries: tuple[Any, ...] = ()

    @property
    def sort_key(self) -> tuple[int, int, str]:
        # nginx picks exact first, then regex in order, then longest prefix: order for reading.
        order = {"=": 0, "~": 1, "~*": 1, "": 2}[self.modifier]
        return (order, -len(self.path), self.path)


@dataclass(frozen=True)
class Certificate:
    """A validated certificate and key pair; written to the state dir by the process layer."""

    name: str  # ns-secretname, safe as a file name
    cert_pem: bytes
    key_pem: bytes
    not_after: str = ""

    @property
    def file_name(self) -> str:
        """Content-addressed: a rotated Secret gets a new file, so a live config's files never change."""
        digest = hashlib.sha256(self.cert_pem + b"\0" + self.key_pem).hexdigest()[:12]
        return f"{self.name}-{digest}.pem"


@dataclass(frozen=True)
class Server:
    host: str  # "" for the catch-all server; may start with "*."
    locations: tuple[Location, ...]
    tls: bool = False
    certificate: str = ""  # Certificate.file_name; "" with tls=True means the default certificate
    ssl_redirect: bool = False
    aliases: tuple[str, ...] = ()
    config: IngressConfig = field(default_factory=IngressConfig)

    @property
    def server_name(self) -> str:
        """What nginx matches: exact name, or a regex limiting a wildcard to one label."""
        if not self.host:
            return "_"
        if self.host.startswith("*."):
            rest = self.host[2:].replace(".", r"\.")
            return f"~^[^.]+\\.{rest}$"
        return self.host


@dataclass(frozen=True)
class Model:
    servers: tuple[Server, ...]  # catch-all server first, then hosts sorted
    upstreams: tuple[Upstream, ...]
    certificates: tuple[Certificate, ...]
    settings: Settings = field(default_factory=Settings)

    def server(self, host: str) -> Server | None:
        for s in self.servers:
            if s.host == host:
                return s
        return None


@dataclass(frozen=True)
class Problem:
    """Something wrong with one object, reported instead of raised."""

    kind: str
    namespace: str
    name: str
    reason: str  # CamelCase, as in Kubernetes Events: InvalidPath, ServiceNotFound, ...
    message: str
    warning: bool = False  # True: served anyway, with a fallback

    @property
    def object(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def __str__(self) -> str:
        return f"{self.object}: {self.reason}: {self.message}"


@dataclass(frozen=True)
class StatusUpdate:
    """An Ingress whose status.loadBalancer we own (it is of our class and was built)."""

    namespace: str
    name: str
