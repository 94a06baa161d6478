"""The typed result of parsing one Ingress's annotations (see the registry in __init__)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import values as v


@dataclass(frozen=True)
class IngressConfig:
    """One field per supported annotation; None means 'use the global setting'."""

    # routing
    use_regex: bool = False
    ssl_redirect: bool | None = None
    force_ssl_redirect: bool = False
    # proxy
    proxy_connect_timeout: v.Duration | None = None
    proxy_read_timeout: v.Duration | None = None
    proxy_send_timeout: v.Duration | None = None
    proxy_body_size: v.Size | None = None
    backend_protocol: str = "HTTP"

    @property
    def grpc(self) -> bool:
        return self.backend_protocol in ("GRPC", "GRPCS")

    @property
    def scheme(self) -> str:
        return "https" if self.backend_protocol == "HTTPS" else "http"

    @property
    def grpc_scheme(self) -> str:
        return "grpcs" if self.backend_protocol == "GRPCS" else "grpc"
