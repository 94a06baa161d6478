"""The nginx-shaped model that `build` produces and templates format.

Everything here is frozen and already validated: a template can print any field without
further checks. Names (upstream names, server names, paths) have passed the validators in
`values.py`, so they contain no nginx syntax.

Design choice: the model is close to nginx (servers, locations, upstreams) but holds no
nginx text; the templates decide only layout. A location already knows its nginx match
modifier so templates never compute precedence.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field

from ..gateway.model import Dispatch
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
    port: int = 0  # the Service port number this upstream was resolved from

    @property
    def external(self) -> bool:
        """An ExternalName Service: no upstream block, nginx resolves the name per request."""
        return bool(self.external_name)

    @property
    def lua_balanced(self) -> bool:
        """Round-robin upstreams whose endpoints nginx can take without a reload (nginx/dynamic.py)."""
        return not self.external_name and self.load_balance == "round_robin" and not self.hash_by


@dataclass(frozen=True)
class Canary:
    """A canary backend attached to a main location; header beats cookie beats weight."""

    id: int  # unique in the model; names the nginx variables
    upstream: str  # canary upstream
    main_upstream: str
    header: str = ""  # header name ("" = not by header)
    header_value: str = ""  # "" = 'always'/'never' semantics (or header_pattern)
    header_pattern: str = ""  # regex over the header's value (when no header_value)
    cookie: str = ""
    weight_percent: str = "0"  # split_clients share, e.g. "12.5"

    @property
    def header_variable(self) -> str:
        return "$http_" + self.header.lower().replace("-", "_")

    def cookie_is(self, value: str) -> str:
        """A map regex over $http_cookie for `<cookie>=<value>`: `$cookie_<name>` ends the name
        at the first character outside [A-Za-z0-9_], so `Canary-By-Cookie` would never match."""
        return "~(^|;\\s*)" + self.cookie.replace(".", "\\.") + "=" + value + "(;|$)"

    @property
    def variable(self) -> str:
        return f"$ingressctl_canary_{self.id}"

    @property
    def alternative_variable(self) -> str:
        """The canary's upstream name when the canary answers, else "" ($proxy_alternative_upstream_name)."""
        return f"$ingressctl_canary_{self.id}_alt"

    @property
    def header_flag(self) -> str:
        """Variable that is 1 (canary), 0 (main) or empty (undecided) from the header."""
        return f"$ingressctl_canary_h_{self.id}" if self.header else ""

    @property
    def cookie_flag(self) -> str:
        return f"$ingressctl_canary_c_{self.id}" if self.cookie else ""

    @property
    def weight_flag(self) -> str:
        return f"$ingressctl_canary_w_{self.id}" if self.weight_percent not in ("0", "100") else ""

    @property
    def weight_all(self) -> bool:
        return self.weight_percent == "100"

    @property
    def split_share(self) -> str:
        """The split_clients entry name, e.g. "12.5%" (one template slot: the admission scan
        accepts any entry name in split_clients, not a slot glued to a '%')."""
        return f"{self.weight_percent}%"


@dataclass(frozen=True)
class RateLimit:
    """limit_req / limit_conn zones of one Ingress (per client address, per replica)."""

    zone: str  # zone name prefix, from the validated namespace and name
    rps: int = 0
    rpm: int = 0
    connections: int = 0
    burst_multiplier: int = 5
    whitelist: tuple[str, ...] = ()

    @property
    def rps_burst(self) -> int:
        return self.rps * self.burst_multiplier

    @property
    def rpm_burst(self) -> int:
        return self.rpm * self.burst_multiplier

    @property
    def key_variable(self) -> str:
        """The key limits count on: the client address, or empty (= not limited) when allowlisted."""
        if not self.whitelist:
            return "$binary_remote_addr"
        return "$ingressctl_limit_key_" + self.zone.replace("-", "_").replace(".", "_")

    @property
    def whitelist_variable(self) -> str:
        return "$ingressctl_limit_exempt_" + self.zone.replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class AuthHeader:
    """A header copied from the auth-url response (auth_request_set) to the backend request."""

    name: str  # validated header name
    index: int

    @property
    def variable(self) -> str:
        return f"$ingressctl_auth_header_{self.index}"

    @property
    def upstream_variable(self) -> str:
        return "$upstream_http_" + self.name.lower().replace("-", "_")


MAX_FILE_STEM = 160  # + "-<digest>.pem.tmp" stays far below the kernel's 255 bytes


def _file_name(name: str, digest: str) -> str:
    """`<name>-<digest>.pem`, the name cut short: a namespace (63) and a Secret name (253)
    together are too long for one file name, and the write would fail every sync."""
    return f"{name[:MAX_FILE_STEM]}-{digest}.pem"


@dataclass(frozen=True)
class AuthFile:
    """A file made from a Secret (htpasswd users, client CA), written next to the certificates."""

    name: str  # safe as a file name
    content: bytes

    @property
    def file_name(self) -> str:
        """Content-addressed like certificates: a changed Secret gets a new file."""
        return _file_name(self.name, hashlib.sha256(self.content).hexdigest()[:12])


@dataclass(frozen=True)
class ErrorPage:
    """A named location answering one status code from an error backend (custom-http-errors)."""

    code: int
    upstream: str

    @property
    def name(self) -> str:
        return f"@ingressctl_error_{self.upstream}_{self.code}"


@dataclass(frozen=True)
class Affinity:
    """Cookie session affinity of one location. The Lua balancer (templates/ingressctl.lua) reads
    it from two nginx variables: `setting` (what decides the endpoint and the request-dependent
    cookie attributes) and `attributes` (the cookie attributes that never change)."""

    mode: str  # balanced | persistent
    cookie: str  # cookie name (a token)
    path: str
    domain: str = ""
    expires: int = 0  # seconds after the response; 0 = a session cookie
    max_age: int = 0  # 0 = none
    samesite: str = ""  # "" | None | Lax | Strict
    conditional_samesite_none: bool = False
    secure: str = "auto"  # on | off | auto (on over HTTPS, as ingress-nginx)
    change_on_failure: bool = False

    @property
    def setting(self) -> str:
        return " ".join((self.mode, self.cookie, "1" if self.change_on_failure else "0", str(self.expires),
                         self.secure, self.samesite or "-", "1" if self.conditional_samesite_none else "0"))

    @property
    def attributes(self) -> str:
        """In the order ingress-nginx writes them (after Expires, which Lua adds per response)."""
        parts = [f"; Max-Age={self.max_age}"] if self.max_age else []
        if self.domain:
            parts.append(f"; Domain={self.domain}")
        parts.append(f"; Path={self.path}")
        return "".join(parts)


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
    # Resolved from annotations by ingress/annotate.py (see there):
    rewrite_regex: str = ""  # regex for `rewrite` when config.rewrite_target is set
    auth_file: str = ""  # AuthFile.file_name of the htpasswd file (basic auth)
    auth_location: str = ""  # internal location path for auth_request ("" = no external auth)
    mirror_location: str = ""  # internal location path for `mirror`
    canary: Canary | None = None
    error_upstream: str = ""  # upstream answering custom-http-errors
    rate_limit: RateLimit | None = None
    ssl_redirect: bool = False  # plain HTTP gets 308 to HTTPS (ssl-redirect / force-ssl-redirect of its Ingress)
    fallback_code: int = 0  # proxied to a default backend in place of this status (error-backend headers)
    dispatch: str = ""  # Gateway API: the variable (gateway/model.py Dispatch) naming the upstream or a status
    dispatch_redirect: str = ""  # Gateway API: the variable holding a RequestRedirect's Location
    dispatch_rewrite: str = ""  # Gateway API: the variable holding a URLRewrite's new path ("" = unchanged)
    upstream_host: str = ""  # Gateway API: the variable holding the Host header sent (URLRewrite hostname)
    mirrors: tuple[str, ...] = ()  # Gateway API: variables naming the upstream a copy goes to ("" = none)
    timeouts: str = ""  # Gateway API: the variable holding the rule's timeout for the Lua balancer
    header_sets: tuple[tuple[str, str], ...] = ()  # Gateway API: (header name, variable) sent upstream
    response_header_sets: tuple[tuple[str, str], ...] = ()  # Gateway API: (header name, variable) answered
    affinity: Affinity | None = None  # session cookie (affinity: cookie), through the Lua balancer
    proxy_ssl_client: str = ""  # AuthFile.file_name: client certificate + key for TLS to the backend
    proxy_ssl_ca: str = ""  # AuthFile.file_name: CAs the backend's certificate must chain to
    response_headers: tuple[tuple[str, str], ...] = ()  # custom-headers: added to responses
    auth_request_headers: tuple[tuple[str, str], ...] = ()  # auth-proxy-set-headers: sent to auth-url

    @property
    def is_regex(self) -> bool:
        return self.modifier in ("~", "~*")

    @property
    def metric_labels(self) -> str:
        """path, namespace, Ingress and Service labels of request metrics, space-separated (none
        holds a space): the Ingress path (a prefix location's trailing '/' dropped), with the
        characters a quoted nginx value may not hold made '_'."""
        path = self.path.rstrip("/") or "/" if self.modifier == "" else self.path
        path = re.sub(r'["\\$\s\x00-\x1f\x7f]', "_", path)
        return f"{path} {self.namespace} {self.ingress_name} {self.service_name}"

    @property
    def regex_match(self) -> str:
        """Regex paths match from the start of the URI, as in ingress-nginx."""
        return "^" + self.path

    @property
    def namespace(self) -> str:
        return self.ingress.partition("/")[0]

    @property
    def ingress_name(self) -> str:
        return self.ingress.partition("/")[2]

    @property
    def service_name(self) -> str:
        return self.service.partition("/")[2].partition(":")[0]

    @property
    def service_port(self) -> str:
        return self.service.rpartition(":")[2] if ":" in self.service else ""

    @property
    def auth_headers(self) -> tuple[AuthHeader, ...]:
        return tuple(AuthHeader(h, i) for i, h in enumerate(self.config.auth_response_headers))

    @property
    def error_pages(self) -> tuple[ErrorPage, ...]:
        if not self.error_upstream:
            return ()
        return tuple(ErrorPage(c, self.error_upstream) for c in self.config.custom_http_errors)

    @property
    def own_proxy_headers(self) -> bool:
        """True when this location sets proxy headers itself (and so must repeat the standard ones:
        nginx inherits proxy_set_header only into levels that define none)."""
        c = self.config
        return bool(self.external_name or c.upstream_vhost or c.x_forwarded_prefix or c.auth_response_headers
                    or c.auth_tls_pass_certificate_to_upstream or self.fallback_code or self.header_sets or self.upstream_host
                    or c.connection_proxy_header)

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
    namespace: str = ""  # of the Secret
    secret: str = ""

    @property
    def file_name(self) -> str:
        """Content-addressed: a rotated Secret gets a new file, so a live config's files never change."""
        return _file_name(self.name, hashlib.sha256(self.cert_pem + b"\0" + self.key_pem).hexdigest()[:12])


@dataclass(frozen=True)
class Server:
    host: str  # "" for the catch-all server; may start with "*."
    locations: tuple[Location, ...]
    tls: bool = False
    certificate: str = ""  # Certificate.file_name; "" with tls=True means the default certificate
    aliases: tuple[str, ...] = ()
    config: IngressConfig = field(default_factory=IngressConfig)
    redirect_to: str = ""  # from-to-www-redirect: this server only redirects (308) to that host
    client_ca: str = ""  # AuthFile.file_name of the CA for client certificates (auth-tls-secret)
    error_pages: tuple[ErrorPage, ...] = ()
    any_depth_wildcard: bool = False  # Gateway API "*.a.b" matches any number of labels (nginx's own "*.")
    ports: tuple[int, ...] = ()  # Gateway API listener ports (plain HTTP); () = the Ingress HTTP and HTTPS ports
    http2: bool = False  # Gateway API: the listener port speaks HTTP/2 (ALPN with TLS; h2c only without)

    @property
    def ssl_redirect(self) -> bool:
        """Some location redirects plain HTTP (decided per Ingress, as ingress-nginx does)."""
        return any(loc.ssl_redirect for loc in self.locations)

    @property
    def auth_subrequests(self) -> tuple[Location, ...]:
        """One location per internal auth location (copies of a location share theirs)."""
        return tuple({loc.auth_location: loc for loc in self.locations if loc.auth_location}.values())

    @property
    def subrequests(self) -> bool:
        """Some location makes auth or mirror subrequests (they share the request's variables)."""
        return any(loc.auth_location or loc.mirror_location or loc.mirrors for loc in self.locations)

    @property
    def mirror_subrequests(self) -> tuple[Location, ...]:
        return tuple({loc.mirror_location: loc for loc in self.locations if loc.mirror_location}.values())

    @property
    def alias_names(self) -> tuple[str, ...]:
        return tuple(_server_name(a) for a in self.aliases)

    @property
    def is_default(self) -> bool:
        """The catch-all server (no host): nginx's default_server."""
        return not self.host

    @property
    def serves_tls(self) -> bool:
        """Listens with TLS: on the Ingress HTTPS port (every Ingress server) or a TLS listener."""
        return self.tls or not self.ports

    @property
    def own_tls_context(self) -> bool:
        """nginx must build this server an SSL context of its own: the default server of its
        port, or settings that act in the handshake (ciphers, client certificates). Every other
        server keeps its port's default context, whose Lua callback picks the certificate."""
        if not self.serves_tls:
            return False
        ciphers = self.tls and (bool(self.config.ssl_ciphers) or self.config.ssl_prefer_server_ciphers is not None)
        return self.is_default or bool(self.client_ca) or ciphers

    @property
    def listener_key(self) -> str:
        """Which default server's certificate callback serves this server: "-" for the Ingress
        HTTPS port (and its passthrough socket), else the Gateway listener's port."""
        return ",".join(str(p) for p in self.ports) or "-"

    @property
    def sni_patterns(self) -> tuple[str, ...]:
        """The names this server answers, as the certificate callback looks them up: exact,
        "*.x" (one label, Ingress wildcards and aliases) or "**.x" (any depth, Gateway API)."""
        out = []
        for name in (self.host, *self.aliases):
            if name.startswith("*.") and self.any_depth_wildcard and name == self.host:
                out.append("*" + name)
            elif name:
                out.append(name)
        return tuple(out)

    @property
    def server_name(self) -> str:
        """What nginx matches: exact name, or a regex limiting a wildcard to one label."""
        if not self.host:
            return "_"
        if self.any_depth_wildcard:
            return self.host
        return _server_name(self.host)


def _server_name(host: str) -> str:
    if host.startswith("*."):
        rest = host[2:].replace(".", r"\.")
        return f"~^[^.]+\\.{rest}$"
    return host


@dataclass(frozen=True)
class Passthrough:
    """A host whose TLS connections go to its backend as they are (ssl-passthrough), by SNI."""

    host: str
    upstream: Upstream

    @property
    def socket_name(self) -> str:
        """The internal stream listener that strips the PROXY header before the backend."""
        return f"passthrough-{self.upstream.name}.sock"


@dataclass(frozen=True)
class StreamService:
    """A TCP or UDP port nginx forwards to a Service's endpoints (ingress/streams.py)."""

    port: int
    protocol: str  # TCP | UDP
    upstream: str  # stream upstream name, safe as an nginx identifier
    service: str  # ns/name
    endpoints: tuple[Endpoint, ...]
    decode_proxy: bool = False  # clients send the PROXY protocol
    encode_proxy: bool = False  # send the PROXY protocol to the endpoints


@dataclass(frozen=True)
class Model:
    servers: tuple[Server, ...]  # catch-all server first, then hosts sorted
    upstreams: tuple[Upstream, ...]
    certificates: tuple[Certificate, ...]
    settings: Settings = field(default_factory=Settings)
    auth_files: tuple[AuthFile, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    canaries: tuple[Canary, ...] = ()
    dispatches: tuple[Dispatch, ...] = ()  # Gateway API request dispatch (gateway/model.py)
    default_certificate: str = ""  # Certificate.file_name of --default-ssl-certificate ("" = generated one)
    streams: tuple[StreamService, ...] = ()  # TCP/UDP services (--tcp/udp-services-configmap)
    passthrough: tuple[Passthrough, ...] = ()  # ssl-passthrough hosts (--enable-ssl-passthrough)

    @property
    def auth_cache(self) -> bool:
        """Some auth-url location caches its answers (auth-cache-key)."""
        return any(loc.config.auth_cache_key for s in self.servers for loc in s.auth_subrequests)

    @functools.cached_property
    def balanced_directly(self) -> frozenset[str]:
        """Lua-balanced upstreams that only plain HTTP locations name by their own name: with the
        Lua balancer they need no `upstream` block of their own. Those locations proxy to one
        shared block whose balancer takes the name from $proxy_upstream_name (ingress-nginx's
        layout): nginx finds upstream blocks by a linear scan, so one block per Service made
        loading grow with the square of their number. Upstreams a variable may name (canary,
        Gateway dispatch, splits, mirrors), error pages use, or that speak TLS or HTTP/2 to the
        backend keep their block (a kept-alive connection must not serve another protocol)."""
        by_variable: set[str] = set()
        direct: set[str] = set()
        for s in self.servers:
            by_variable.update(p.upstream for p in s.error_pages)
            for loc in s.locations:
                if loc.canary is not None:
                    by_variable.update((loc.canary.upstream, loc.canary.main_upstream, loc.upstream))
                elif loc.upstream and not loc.dispatch and not loc.external_name and not loc.config.grpc \
                        and loc.config.scheme == "http" and not loc.config.proxy_ssl_configured:
                    direct.add(loc.upstream)
                elif loc.upstream:
                    by_variable.add(loc.upstream)
        for d in self.dispatches:  # Gateway routes name upstreams through map variables
            by_variable.update(ch.target for ch in d.choices)
            by_variable.update(t for sp in d.splits for _, t in sp.shares)
            by_variable.update(sp.last for sp in d.splits)
            by_variable.update(e.value for m in d.mirrors for e in m.entries)
        lua = {u.name for u in self.upstreams if u.lua_balanced}
        return frozenset((direct & lua) - by_variable)

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
