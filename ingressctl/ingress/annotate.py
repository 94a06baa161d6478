"""Resolves what annotations need beyond the annotation text: Secrets, Services, names.

`build.py` makes plain locations and servers from the Kubernetes semantics and hands each
one to an `AnnotationResolver`, which fills the model fields that depend on other objects
or on a counter: the htpasswd and CA files (from Secrets, via `auth.py`), the default
backend and custom error pages, rate-limit zones, upstream variants for `load-balance` /
`upstream-hash-by` / `service-upstream`, canaries (via `canary.py`), internal locations for
auth_request and mirror, and the www redirect servers.

Design choice: everything that can fail here fails closed and is reported: a missing auth
Secret makes the location answer 503 instead of serving without authentication.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

from ..objects import Ingress, Secret, ServiceBackend
from ..store import Snapshot
from . import values as v
from .annotations import IngressConfig
from .annotations.shapes import SecretRef
from .auth import AuthError, client_ca_file, htpasswd_file, proxy_ssl_files
from .backends import BackendResolver, normal_ip
from .canary import CanaryIndex
from .model import Affinity, AuthFile, Endpoint, ErrorPage, Location, Passthrough, RateLimit, Server, Upstream
from .settings import headers_from

Report = Callable[[Ingress, str, str, bool], None]  # ingress, reason, message, warning


def answering(loc: Location, status: int) -> Location:
    """`loc` answering `status` itself: nothing is proxied, authenticated or mirrored there
    (the internal auth and mirror locations would refer to variables only a proxied location sets)."""
    return dataclasses.replace(loc, status=status, upstream="", auth_location="", mirror_location="", canary=None,
                               affinity=None)


def check_route(kind: str, path: str, cfg: IngressConfig, host: str | None = None) -> None:
    """Checks of one path (of a rule for `host`, "" = any host) against its annotations; raises
    InvalidValue."""
    if (host == "" or (host or "").startswith("*.")) and cfg.auth_url is not None and cfg.auth_url.uses("host"):
        # A catch-all or wildcard rule matches Host headers the client chooses: it would choose
        # where its own authentication request goes (and a server that always says 200).
        raise v.InvalidValue(f"annotation auth-url {str(cfg.auth_url)!r} uses $host, which needs a rule with "
                             "an exact host")
    if cfg.rewrite_target is None:
        return
    with warnings.catch_warnings():  # Python's FutureWarning on '[[' is noise: the path was validated
        warnings.simplefilter("ignore", FutureWarning)
        groups = re.compile(path).groups if kind == "regex" else 0
    if cfg.rewrite_target.max_capture > groups:
        raise v.InvalidValue(
            f"annotation rewrite-target {cfg.rewrite_target.text!r} uses ${cfg.rewrite_target.max_capture} but "
            f"path {path!r} has {groups} capture group(s)")


class AnnotationResolver:
    def __init__(self, snap: Snapshot, backends: BackendResolver, report: Report,
                 global_default: tuple[str, ServiceBackend] | None = None, balancer: bool = True,
                 now: datetime = datetime(2000, 1, 1, tzinfo=UTC), custom_http_errors: tuple[int, ...] = (),
                 allowed_response_headers: tuple[str, ...] = ()) -> None:
        self._snap, self.backends, self.report = snap, backends, report
        # set when a location or server read anything besides its own Ingress, config and
        # backends (other objects, counters and names shared by servers, canaries, aliases):
        # such a server is made afresh by every build (build.BuildMemo)
        self.opaque = False
        self.balancer = balancer  # endpoints through the Lua balancer (affinity needs it)
        self.now = now  # certificates are checked against it
        self.custom_http_errors = custom_http_errors  # the ConfigMap's, for locations without the annotation
        self.allowed_response_headers = allowed_response_headers  # what custom-headers may set
        self.global_default = global_default  # --default-backend-service: custom-http-errors' fallback
        self.auth_files: dict[str, AuthFile] = {}
        self.rate_limits: dict[str, RateLimit] = {}
        self.variants: dict[str, Upstream] = {}
        self.canaries = CanaryIndex()
        self.counter = 0
        self.alias_owner: dict[str, Ingress] = {}
        self.zone_owner: dict[str, str] = {}  # rate-limit zone, '-' and '.' as '_' -> Ingress ns/name
        self.passthrough: dict[str, str] = {}  # host -> upstream name (ssl-passthrough)

    @property
    def snap(self) -> Snapshot:
        self.opaque = True
        return self._snap

    # -- upstreams -------------------------------------------------------------------------
    def upstream(self, ing: Ingress, cfg: IngressConfig, backend: ServiceBackend,
                 up: Upstream | None) -> Upstream | None:
        """The upstream variant this Ingress's annotations ask for (shared when identical)."""
        if up is None or up.external:
            return up
        if cfg.service_upstream:
            up = self._cluster_ip(ing, backend, up)
        if cfg.backend_protocol != "HTTP":
            # nginx caches keepalive connections per upstream block: a TLS or HTTP/2 (gRPC)
            # connection must never be reused by a location speaking another protocol.
            up = dataclasses.replace(up, name=f"{up.name}-{cfg.backend_protocol.lower()}")
        if cfg.proxy_ssl_configured:
            # ...nor a TLS connection made with other proxy-ssl-* settings: a connection verified
            # (or presenting a client certificate) for one location would serve another.
            tls = (cfg.proxy_ssl_secret, cfg.proxy_ssl_verify, cfg.proxy_ssl_verify_depth, cfg.proxy_ssl_name,
                   cfg.proxy_ssl_server_name, cfg.proxy_ssl_protocols, cfg.proxy_ssl_ciphers, ing.meta.namespace)
            up = dataclasses.replace(up, name=f"{up.name}-tls-{_short_hash(repr(tls))}")
        if cfg.affinity and (cfg.upstream_hash_by or cfg.load_balance):
            self.report(ing, "AffinityOverridesBalancing", "affinity: cookie wins over load-balance and "
                        "upstream-hash-by (as in ingress-nginx); they are ignored", True)
        elif cfg.upstream_hash_by:
            digest = _short_hash(cfg.upstream_hash_by)
            up = dataclasses.replace(up, name=f"{up.name}-hash-{digest}", hash_by=cfg.upstream_hash_by,
                                     load_balance="round_robin")
        elif cfg.load_balance and cfg.load_balance != up.load_balance:
            up = dataclasses.replace(up, name=f"{up.name}-{cfg.load_balance.replace('_', '-')}",
                                     load_balance=cfg.load_balance)
        self.variants[up.name] = up
        return up

    def _cluster_ip(self, ing: Ingress, backend: ServiceBackend, up: Upstream) -> Upstream:
        svc = self.snap.service(ing.meta.namespace, backend.name)
        sp = svc.port_for(backend.port) if svc else None
        if svc is None or sp is None or not normal_ip(svc.cluster_ip):
            self.report(ing, "ServiceUpstreamUnavailable", f"service-upstream: Service {backend.name} has no "
                        "cluster IP; using its endpoints", True)
            return up
        return dataclasses.replace(up, name=f"{up.name}-cluster-ip", endpoints=(Endpoint(normal_ip(svc.cluster_ip), sp.port),))

    def default_backend(self, ing: Ingress, cfg: IngressConfig) -> Upstream | None:
        if not cfg.default_backend:
            return None
        svc = self.snap.service(ing.meta.namespace, cfg.default_backend)
        if svc is None or not svc.ports:
            self.report(ing, "DefaultBackendNotFound", f"default-backend Service {ing.meta.namespace}/"
                        f"{cfg.default_backend} not found or has no ports", True)
            return None
        res = self.backends.resolve(ing.meta.namespace, ServiceBackend(svc.meta.name, svc.ports[0].port))
        for reason, msg, warning in res.problems:
            self.report(ing, reason, msg, warning)
        return res.upstream

    def _global_default_upstream(self) -> Upstream | None:
        if self.global_default is None:
            return None
        self.opaque = True
        return self.backends.resolve(*self.global_default).upstream

    # -- locations -------------------------------------------------------------------------
    def location(self, loc: Location, ing: Ingress | None, kind: str, claim: tuple[str, str, str]) -> Location:
        if ing is None:
            return loc
        cfg = loc.config
        changes: dict[str, object] = {}
        if self.custom_http_errors and not cfg.custom_http_errors and self.global_default is not None:
            cfg = dataclasses.replace(cfg, custom_http_errors=self.custom_http_errors)
            changes["config"] = cfg
        fallback = self.default_backend(ing, cfg)
        if loc.status == 503 and fallback is not None:
            changes.update(upstream=fallback.name, status=0, external_name=fallback.external_name,
                           external_port=fallback.external_port, fallback_code=503)
        if cfg.custom_http_errors:
            pages = fallback or self._global_default_upstream()
            if pages is None or pages.external:
                self.report(ing, "CustomErrorsIgnored", "custom-http-errors needs a default backend with endpoints, "
                            "not ExternalName (default-backend annotation or --default-backend-service); ignored",
                            True)
            else:
                changes["error_upstream"] = pages.name
        if cfg.affinity:
            affinity = self._affinity(ing, cfg, loc, kind)
            if affinity is not None:
                changes["affinity"] = affinity
        if cfg.rewrite_target is not None:
            changes["rewrite_regex"] = ("(?i)" + loc.regex_match) if kind == "regex" else "^"
        if cfg.basic_auth and cfg.auth_secret is not None:
            name = self._auth_file(ing, cfg, htpasswd_file, cfg.auth_secret, "auth")
            if name:
                changes["auth_file"] = name
            else:
                changes.update(status=503, upstream="")
        if cfg.proxy_ssl_secret is not None:
            files = self._proxy_ssl(ing, cfg)
            if files is None:
                changes.update(status=503, upstream="")
            else:
                changes.update(proxy_ssl_client=files[0], proxy_ssl_ca=files[1])
        if cfg.custom_headers is not None:
            allowed = {h.lower() for h in self.allowed_response_headers}
            pairs = self._headers(ing, cfg.custom_headers, "custom-headers")
            refused = [n for n, _ in pairs if n.lower() not in allowed]
            if refused:
                self.report(ing, "ResponseHeaderNotAllowed", f"custom-headers: {', '.join(refused[:10])} not in the "
                            "ConfigMap's global-allowed-response-headers; left out", True)
            changes["response_headers"] = tuple((n, val) for n, val in pairs if n.lower() in allowed)
        if cfg.auth_url and cfg.auth_proxy_set_headers is not None:
            changes["auth_request_headers"] = self._headers(ing, cfg.auth_proxy_set_headers, "auth-proxy-set-headers")
        if cfg.auth_url:
            changes["auth_location"] = f"/_ingressctl_auth_{self._next()}"
        if cfg.mirror_target is not None:
            changes["mirror_location"] = f"/_ingressctl_mirror_{self._next()}"
        if cfg.rate_limited:
            changes["rate_limit"] = self._rate_limit(ing, cfg)
        upstream = str(changes.get("upstream", loc.upstream))
        if upstream and not changes.get("status", loc.status) and self.canaries.involves(claim):
            self.opaque = True
            canary = self.canaries.attach(claim, upstream, self.report, ing.meta.namespace)
            if canary is not None:
                changes["canary"] = canary
        out = dataclasses.replace(loc, **changes) if changes else loc  # type: ignore[arg-type]
        return answering(out, out.status) if out.status else out

    def _affinity(self, ing: Ingress, cfg: IngressConfig, loc: Location, kind: str) -> Affinity | None:
        if not self.balancer:
            self.report(ing, "AffinityNeedsBalancer", "affinity: cookie needs the Lua balancer "
                        "(--dynamic-endpoints with nginx-extras); served without affinity", True)
            return None
        if loc.external_name:
            self.report(ing, "AffinityExternalName", "affinity: cookie does not apply to an ExternalName "
                        "Service (one DNS name, no endpoints to choose); ignored", True)
            return None
        # the Ingress path (a prefix location is rendered with a trailing '/'); regexes: '/'
        path = cfg.session_cookie_path or {"regex": "/", "prefix": loc.path.rstrip("/") or "/"}.get(kind, loc.path)
        secure = "auto" if cfg.session_cookie_secure is None else ("on" if cfg.session_cookie_secure else "off")
        return Affinity(cfg.affinity_mode, cfg.session_cookie_name, path, cfg.session_cookie_domain or "",
                        cfg.session_cookie_expires or 0, cfg.session_cookie_max_age or 0,
                        cfg.session_cookie_samesite or "", cfg.session_cookie_conditional_samesite_none, secure,
                        cfg.session_cookie_change_on_failure)

    def _next(self) -> int:
        self.opaque = True
        self.counter += 1
        return self.counter

    def _zone(self, ing: Ingress) -> str:
        """`ns-name` of the Ingress, unique: zones and the variables named after them ('-' and
        '.' become '_') would otherwise be shared by 'a-b'/'c' and 'a'/'b-c', or 'x.y' and 'x-y'
        (nginx -t then fails for everyone, or one Ingress spends another's limit). Cut to 96
        characters: the variables must fit nginx's variables_hash_bucket_size (256)."""
        self.opaque = True
        key, n = ing.meta.key, 0
        base = f"{ing.meta.namespace}-{ing.meta.name}"
        zone = base if len(base) <= 96 else f"{base[:87]}-{_short_hash(key)}"
        while self.zone_owner.setdefault(zone.replace("-", "_").replace(".", "_"), key) != key:
            n += 1
            zone = f"{base[:87]}-{_short_hash(f'{key}#{n}')}"
        return zone

    def _rate_limit(self, ing: Ingress, cfg: IngressConfig) -> RateLimit:
        zone = self._zone(ing)
        rl = RateLimit(zone, cfg.limit_rps or 0, cfg.limit_rpm or 0, cfg.limit_connections or 0,
                       cfg.limit_burst_multiplier, cfg.limit_whitelist)
        self.rate_limits[zone] = rl
        return rl

    def _headers(self, ing: Ingress, ref: SecretRef, what: str) -> tuple[tuple[str, str], ...]:
        """The valid headers of a ConfigMap of the Ingress's own namespace; the rest reported."""
        ns = ref.namespace or ing.meta.namespace
        if ns != ing.meta.namespace:
            self.report(ing, "ConfigMapNamespace", f"{what} ConfigMap {ns}/{ref.name} is in another namespace; only "
                        "the Ingress's own is allowed; no headers", False)
            return ()
        cm = self.snap.configmap(ns, ref.name)
        if cm is None:
            self.report(ing, "ConfigMapNotFound", f"{what} ConfigMap {ns}/{ref.name} not found; no headers", True)
            return ()
        pairs, reasons = headers_from(cm.data)
        for reason in reasons[:5]:
            self.report(ing, "InvalidHeader", f"{what} ConfigMap {ns}/{ref.name}: {reason}; left out", True)
        return pairs

    def _own_secret(self, ing: Ingress, ref: SecretRef, what: str) -> Secret | None:
        """The Secret `ref` names in the Ingress's own namespace; reported (deny with 503) otherwise."""
        ns = ref.namespace or ing.meta.namespace
        if ns != ing.meta.namespace:
            self.report(ing, "SecretNamespace", f"{what} Secret {ns}/{ref.name} is in another namespace; "
                        "only the Ingress's own namespace is allowed; denying with 503", False)
            return None
        secret = self.snap.secret(ns, ref.name)
        if secret is None:
            self.report(ing, "AuthSecretNotFound", f"{what} Secret {ns}/{ref.name} not found; denying with 503",
                        True)
        return secret

    def _proxy_ssl(self, ing: Ingress, cfg: IngressConfig) -> tuple[str, str] | None:
        """(client certificate file, CA file) names of proxy-ssl-secret, "" where absent."""
        assert cfg.proxy_ssl_secret is not None
        secret = self._own_secret(ing, cfg.proxy_ssl_secret, "proxy-ssl")
        if secret is None:
            return None
        try:
            client, ca = proxy_ssl_files(secret, cfg, self.now)
        except AuthError as e:
            self.report(ing, "InvalidProxySSLSecret", f"proxy-ssl Secret {secret.meta.key}: {e}; denying with 503",
                        True)
            return None
        for f in (client, ca):
            if f is not None:
                self.auth_files[f.file_name] = f
        return (client.file_name if client else "", ca.file_name if ca else "")

    def _auth_file(self, ing: Ingress, cfg: IngressConfig, make: Callable[[Secret, IngressConfig], AuthFile],
                   ref: SecretRef, what: str) -> str:
        secret = self._own_secret(ing, ref, what)
        if secret is None:
            return ""
        ns = secret.meta.namespace
        try:
            f = make(secret, cfg)
        except AuthError as e:
            self.report(ing, "InvalidAuthSecret", f"{what} Secret {ns}/{ref.name}: {e}; denying with 503", True)
            return ""
        self.auth_files[f.file_name] = f
        return f.file_name

    # -- servers ---------------------------------------------------------------------------
    def server(self, server: Server, owners: list[tuple[Ingress, IngressConfig]]) -> Server:
        """Server-level annotations: the oldest Ingress of the host; auth-tls from the oldest setting it."""
        if not owners:
            return server
        cfg = owners[0][1]
        changes: dict[str, object] = {"config": cfg}
        if cfg.ssl_passthrough and server.host:
            self._passthrough(server, owners[0][0])
        aliases = tuple(a for a in cfg.server_alias if a != server.host)
        if aliases:
            self.opaque = True
            changes["aliases"] = aliases
            self.alias_owner[server.host] = owners[0][0]
        for ing, c in owners:
            if c.auth_tls_secret is not None:
                name = self._auth_file(ing, c, client_ca_file, c.auth_tls_secret, "auth-tls")
                changes["config"] = dataclasses.replace(cfg, auth_tls_verify_client=c.auth_tls_verify_client,
                                                        auth_tls_verify_depth=c.auth_tls_verify_depth)
                if name:
                    changes["client_ca"] = name
                else:
                    changes["locations"] = tuple(answering(loc, 503) for loc in server.locations)
                break
        pages = {ErrorPage(code, loc.error_upstream) for loc in server.locations if loc.error_upstream
                 for code in loc.config.custom_http_errors}
        if pages:
            changes["error_pages"] = tuple(sorted(pages, key=lambda p: (p.upstream, p.code)))
        return dataclasses.replace(server, **changes)  # type: ignore[arg-type]

    def drop_taken_aliases(self, servers: list[Server]) -> list[Server]:
        """server-alias never takes a name another server (or an older alias) already has."""
        taken = {s.host for s in servers}
        out = []
        for s in servers:
            keep = []
            for a in s.aliases:
                if a in taken:
                    self.report(self.alias_owner[s.host], "AliasConflict",
                                f"server-alias {a} is already served by another server; ignored", True)
                else:
                    taken.add(a)
                    keep.append(a)
            out.append(dataclasses.replace(s, aliases=tuple(keep)) if len(keep) != len(s.aliases) else s)
        return out

    def www_redirects(self, servers: list[Server]) -> list[Server]:
        """from-to-www-redirect: a redirect-only server for the www / non-www twin of a host."""
        hosts = {s.host for s in servers} | {a for s in servers for a in s.aliases}
        out = []
        for s in servers:
            if not s.host or s.host.startswith("*.") or not s.config.from_to_www_redirect:
                continue
            twin = s.host[4:] if s.host.startswith("www.") else f"www.{s.host}"
            if twin in hosts or not twin:
                continue
            hosts.add(twin)
            out.append(Server(host=twin, locations=(), tls=s.tls, certificate=s.certificate, redirect_to=s.host))
        return out

    def _passthrough(self, server: Server, ing: Ingress) -> None:
        self.opaque = True
        root = next((loc for loc in server.locations if loc.modifier == "" and loc.path == "/" and loc.upstream
                     and loc.ingress == ing.meta.key), None)
        if root is None or root.external_name:
            self.report(ing, "PassthroughWithoutBackend", f"ssl-passthrough: host {server.host} has no '/' path "
                        "with endpoints of this Ingress; its TLS is ended by nginx", True)
            return
        self.passthrough[server.host] = root.upstream

    def model_parts(self) -> dict[str, object]:
        known = {u.name: u for u in (*self.backends.upstreams(), *self.variants.values())}
        return {
            "passthrough": tuple(Passthrough(h, known[n]) for h, n in sorted(self.passthrough.items()) if n in known),
            "auth_files": tuple(self.auth_files[k] for k in sorted(self.auth_files)),
            "rate_limits": tuple(self.rate_limits[k] for k in sorted(self.rate_limits)),
            "canaries": self.canaries.used(),
        }


def _short_hash(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()[:8]


__all__ = ["AnnotationResolver", "check_route"]
