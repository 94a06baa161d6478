"""Snapshot -> Model: the Kubernetes Ingress semantics, as a pure function.

`build(snapshot, options)` returns `BuildResult(model, statuses, problems)`. It does no
I/O, reads no clock (`options.now` is given) and never raises on bad objects: an invalid
Ingress is skipped and reported, everything else is served.

Design choice: Ingresses are processed oldest first (creationTimestamp, then
namespace/name), so "first claim wins" is exactly "oldest wins" for host+path conflicts and
for a host's TLS certificate, and the result does not depend on the order objects arrived.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..objects import Ingress, IngressPath, ServiceBackend
from ..store import Snapshot
from . import values as v
from .annotate import AnnotationResolver, check_route
from .annotations import IngressConfig, parse_annotations
from .backends import BackendResolver, Resolution
from .classes import ClassFilter
from .model import Certificate, Location, Model, Problem, Server, StatusUpdate, Upstream
from .ownership import host_owners, steals
from .problems import Problems
from .settings import Settings
from .tls import TLSError, certificate_from_secret


@dataclass(frozen=True)
class BuildOptions:
    classes: ClassFilter = field(default_factory=ClassFilter)
    settings: Settings = field(default_factory=Settings)
    default_backend: str = ""  # "ns/name:port" (--default-backend-service), "" = 404
    now: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    lua: bool = True  # nginx can load the Lua module (Ingresses that need it are skipped otherwise)
    exclude: frozenset[str] = frozenset()  # "ns/name" of Ingresses left out (nginx refused them)
    default_certificate: str = ""  # --default-ssl-certificate "ns/name" ("" = the generated one)
    balancer: bool = True  # endpoints through the Lua balancer (--dynamic-endpoints); affinity needs it
    ssl_passthrough: bool = False  # --enable-ssl-passthrough
    # what the previous build made, reused where its inputs are the same (never changes the result)
    memo: BuildMemo | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BuildResult:
    model: Model
    statuses: tuple[StatusUpdate, ...]
    problems: tuple[Problem, ...]
    gateway: Any = None  # gateway.build.GatewayResult once gateway.merge added it (its status as data)


@dataclass(frozen=True)
class Route:
    """One validated host+path rule of one Ingress, before it becomes nginx locations."""

    host: str  # "" = every host
    kind: str  # exact | prefix | regex
    path: str  # prefix paths are stored without a trailing slash ("/" stays "/")
    ingress: Ingress
    backend: ServiceBackend | None
    config: IngressConfig

    @property
    def claim(self) -> tuple[str, str, str]:
        return (self.host, self.kind, self.path)


def _problem(ing: Ingress, reason: str, message: str, warning: bool = False) -> Problem:
    return Problem("Ingress", ing.meta.namespace, ing.meta.name, reason, message, warning)


def _route_kind(p: IngressPath, cfg: IngressConfig) -> tuple[str, str]:
    """(kind, normalised path) for one Ingress path; raises InvalidValue."""
    if p.path_type == "ImplementationSpecific" and cfg.regex:
        return "regex", v.regex_path(p.path)
    path = v.path(p.path)
    if p.path_type == "Exact":
        return "exact", path
    return "prefix", path.rstrip("/") or "/"


def ingress_routes(ing: Ingress, allow_snippets: bool) -> tuple[list[Route], list[Problem]]:
    """Validate one Ingress completely; any error makes it contribute no routes at all."""
    cfg, ann_problems = parse_annotations(ing.meta.annotations, allow_snippets)
    problems = [_problem(ing, "InvalidAnnotation" if not a.warning else "UnsupportedAnnotation",
                         str(a), a.warning) for a in ann_problems]
    routes: list[Route] = []
    try:
        v.k8s_name(ing.meta.namespace)
        v.k8s_name(ing.meta.name)
        paths = sum(len(rule.paths) for rule in ing.rules)
        if paths + sum(len(t.hosts) for t in ing.tls) > v.MAX_PATHS_PER_INGRESS:
            raise v.InvalidValue(f"more than {v.MAX_PATHS_PER_INGRESS} paths and TLS hosts together (split it "
                                 "into several Ingresses)")
        if cfg.auth_url is not None and paths * len(cfg.auth_response_headers) > v.MAX_AUTH_HEADER_LINES:
            raise v.InvalidValue(f"{paths} paths x {len(cfg.auth_response_headers)} auth-response-headers: at most "
                                 f"{v.MAX_AUTH_HEADER_LINES} (each is a directive in every location)")
        for rule in ing.rules:
            host = v.ingress_host(rule.host) if rule.host else ""
            for p in rule.paths:
                if p.backend is None:
                    raise v.InvalidValue(f"path {p.path}: backend {p.resource_kind} is not a Service (unsupported)")
                v.k8s_name(p.backend.name)
                kind, path = _route_kind(p, cfg)
                check_route(kind, path, cfg, host)
                routes.append(Route(host, kind, path, ing, p.backend, cfg))
        for t in ing.tls:
            for h in t.hosts:
                v.ingress_host(h)
            if t.secret_name:
                v.k8s_name(t.secret_name)
        if ing.default_backend is not None:
            v.k8s_name(ing.default_backend.name)
    except v.InvalidValue as e:
        problems.append(_problem(ing, "InvalidIngress", str(e)))
    if any(not p.warning for p in problems):
        return [], problems
    return routes, problems


Target = tuple[Upstream | None, int, str]  # upstream, status when None, service label


def _location(path: str, modifier: str, target: Target, ingress: str, cfg: IngressConfig) -> Location:
    up, status, service = target
    if up is None:
        return Location(path, modifier, "", status, ingress, service, cfg)
    return Location(path, modifier, up.name, 0, ingress, service, cfg, up.external_name, up.external_port)


def _locations(route: Route, target: Target, explicit_exact: set[str], regex_host: bool = False) -> list[Location]:
    ing = route.ingress.meta.key
    if route.kind == "regex":
        forms = [("~*", route.path)]
    elif route.kind == "exact":
        forms = [("=", route.path)]
    elif route.path == "/":
        forms = [("", "/")]
    elif regex_host:  # rewrite-target / use-regex on the host: caseless, as ingress-nginx
        forms = [("~*", _PREFIX_REGEX_ESCAPE.sub(r"\\\1", route.path) + "(/|$)")]
    else:
        forms = [("=", route.path)] if route.path not in explicit_exact else []
        forms.append(("", route.path + "/"))
    return [_location(path, mod, target, ing, route.config) for mod, path in forms]


_PREFIX_REGEX_ESCAPE = re.compile(r"([.+])")  # the regex metacharacters a valid Prefix path may hold


# One backend resolution a server made: (namespace, backend, resolution, and for an Ingress's
# route its Ingress, config and the upstream variant its annotations chose; None for the
# global default backend)
_Resolved = tuple[str, ServiceBackend, Resolution, Ingress | None, IngressConfig | None, Upstream | None]


@dataclass(frozen=True)
class _Made:
    """One host's server as a build made it, with what it was made from."""

    key: tuple[object, ...]  # its routes, its host-less routes, TLS, certificate, owner
    resolved: tuple[_Resolved, ...]  # in the order it made them
    problems: tuple[Problem, ...]
    server: Server


class BuildMemo:
    """What one build made that the next can reuse: each Ingress's validated routes, while the
    Ingress is the same (the store keeps unchanged objects), and each host's server, while all
    it was made from is the same.

    A server is reused only when its routes, host-less routes, TLS host, certificate and owner
    are the same, under the same options and settings, and its backend resolutions, made again
    in the same order, give the same upstreams: so upstream names, variants and problems come
    out as a full build makes them. A server that read anything else (Secrets, ConfigMaps,
    counters and names servers share, canaries, aliases: `AnnotationResolver.opaque`) is made
    afresh every time. `build` returns the same with a memo as without one
    (tests/test_build_memo.py). One build uses it at a time; a build that finds it in use
    builds without it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.scope: object = None
        self.routes: dict[str, tuple[Ingress, bool, tuple[list[Route], list[Problem]]]] = {}
        self.servers: dict[str, _Made] = {}
        self.next_routes: dict[str, tuple[Ingress, bool, tuple[list[Route], list[Problem]]]] = {}
        self.next_servers: dict[str, _Made] = {}
        self.reused = 0  # servers the last build reused

    def begin(self, opts: BuildOptions) -> None:
        scope = (opts.settings, opts.default_backend, opts.lua, opts.balancer, opts.ssl_passthrough)
        if scope != self.scope:
            self.scope, self.routes, self.servers = scope, {}, {}
        self.next_routes, self.next_servers, self.reused = {}, {}, 0

    def finish(self) -> None:
        """Keep only what this build used (a bound: one entry per Ingress and per host)."""
        self.routes, self.servers = self.next_routes, self.next_servers
        self.next_routes, self.next_servers = {}, {}


@dataclass
class _Build:
    """What one build knows so far; the steps of `_build` below read and extend it in order."""

    snap: Snapshot
    opts: BuildOptions
    problems: Problems
    backends: BackendResolver  # Services to upstreams, shared with the Gateway build
    annotate: AnnotationResolver  # what annotations need from other objects
    certs: dict[str, Certificate] = field(default_factory=dict)
    host_cert: dict[str, str] = field(default_factory=dict)  # host -> cert name ("" = default certificate)
    host_tls_owner: dict[str, str] = field(default_factory=dict)
    canary_ingresses: set[str] = field(default_factory=set)  # never own a host
    owner: dict[str, str] = field(default_factory=dict)  # host -> namespace that owns it (oldest Ingress naming it)
    memo: BuildMemo | None = None
    resolved: list[_Resolved] | None = None  # the resolutions of the server being made (for the memo)


def _start(snap: Snapshot, opts: BuildOptions) -> _Build:
    problems = Problems()
    backends = BackendResolver(snap)
    annotate = AnnotationResolver(snap, backends, problems.about, _global_default_ref(opts),
                                  balancer=opts.balancer, now=opts.now,
                                  custom_http_errors=opts.settings.custom_http_errors,
                                  allowed_response_headers=opts.settings.global_allowed_response_headers)
    return _Build(snap, opts, problems, backends, annotate)


def ours(b: _Build) -> list[Ingress]:
    """Our Ingresses (class filter, minus the excluded), oldest first."""
    f, classes = b.opts.classes, b.snap.classes
    return sorted((i for i in b.snap.ingresses.values()
                   if f.is_ours(i, classes) and i.meta.key not in b.opts.exclude),
                  key=lambda i: i.meta.age_key)


def claim_routes(b: _Build, ingresses: Iterable[Ingress]) -> tuple[list[Route], list[Ingress]]:
    """Validate each Ingress; the oldest claim of a host+path wins, canaries attach to theirs."""
    winners: dict[tuple[str, str, str], Route] = {}
    valid: list[Ingress] = []
    for ing in ingresses:
        routes, problems = _ingress_routes(b, ing)
        b.problems.extend(problems)
        if any(not p.warning for p in problems):
            continue
        if not b.opts.ssl_passthrough and any(r.config.ssl_passthrough for r in routes):
            b.problems.about(ing, "SSLPassthroughDisabled", "ssl-passthrough needs the controller's "
                             "--enable-ssl-passthrough; refused rather than ending its TLS at nginx")
            continue
        if not b.opts.lua and any(r.config.needs_escaped_request_uri for r in routes):
            b.problems.about(ing, "LuaRequired", "auth-signin needs nginx's Lua module "
                             "(nginx-extras), which this nginx lacks; Ingress skipped")
            continue
        valid.append(ing)
        for r in routes:
            if r.config.canary:  # shares host+path with its main Ingress: attached, never a conflict
                b.canary_ingresses.add(ing.meta.key)
                up, _, _ = target(b, r)
                b.annotate.canaries.add(r.claim, ing, r.config, up.name if up else "", b.problems.about)
                continue
            owner = winners.get(r.claim)
            if owner is None:
                winners[r.claim] = r
            elif owner.ingress is not ing:
                b.problems.about(ing, "PathConflict",
                                 f"host {r.host or '*'} path {r.path} ({r.kind}) is already served by the older "
                                 f"Ingress {owner.ingress.meta.key}; this rule is ignored")
    return list(winners.values()), valid


def _ingress_routes(b: _Build, ing: Ingress) -> tuple[list[Route], list[Problem]]:
    snippets = b.opts.settings.allow_snippet_annotations
    if b.memo is None:
        return ingress_routes(ing, snippets)
    key = ing.meta.key
    hit = b.memo.routes.get(key)
    if hit is None or hit[0] is not ing or hit[1] != snippets:
        hit = (ing, snippets, ingress_routes(ing, snippets))
    b.memo.next_routes[key] = hit
    return hit[2]


def target(b: _Build, route: Route) -> Target:
    """Where a route's requests go: the Service's upstream (the variant its annotations ask
    for), or the status to answer."""
    if route.backend is None:
        return None, 404, ""
    res = b.backends.resolve(route.ingress.meta.namespace, route.backend)
    for reason, msg, warning in res.problems:
        b.problems.about(route.ingress, reason, msg, warning)
    up = b.annotate.upstream(route.ingress, route.config, route.backend, res.upstream)
    if b.resolved is not None:
        b.resolved.append((route.ingress.meta.namespace, route.backend, res, route.ingress, route.config, up))
    return up, 503, res.service


def tls(b: _Build, ing: Ingress) -> None:
    """The certificate of each TLS host this Ingress's namespace owns (the oldest one wins)."""
    rule_hosts = [r.host for r in ing.rules if r.host]
    for t in ing.tls:
        hosts = [h for h in (list(t.hosts) or rule_hosts) if owns(b, ing, h)]
        cert = certificate(b, ing, t.secret_name) if t.secret_name and hosts else ""
        for h in hosts:
            if h not in b.host_cert:
                b.host_cert[h] = cert
                b.host_tls_owner[h] = ing.meta.key
            elif b.host_cert[h] != cert:
                b.problems.about(ing, "TLSConflict", f"host {h} already takes its certificate from the older "
                                 f"Ingress {b.host_tls_owner[h]}", warning=True)


def owns(b: _Build, ing: Ingress, host: str) -> bool:
    owner = b.owner.get(host, ing.meta.namespace)
    if owner != ing.meta.namespace:
        b.problems.about(ing, "HostOwned", f"host {host} belongs to namespace {owner} (its oldest "
                         "Ingress); server-level settings of this Ingress are ignored there", warning=True)
    return owner == ing.meta.namespace


def foreign_routes_that_steal(b: _Build, routes: list[Route]) -> list[Route]:
    """Routes of other namespaces that could win requests a host's owner matches (reported)."""
    owned: dict[str, list[tuple[str, str]]] = {}
    everything: set[str] = set()
    for r in routes:
        if r.host and b.owner.get(r.host) == r.ingress.meta.namespace:
            owned.setdefault(r.host, []).append((r.kind, r.path))
            if r.ingress.default_backend is not None:
                everything.add(r.host)
    out = []
    for r in routes:
        if not r.host or b.owner.get(r.host) == r.ingress.meta.namespace:
            continue
        why = steals((r.kind, r.path), owned.get(r.host, []), r.host in everything)
        if why:
            out.append(r)
            b.problems.about(r.ingress, "HostOwned", f"host {r.host} belongs to namespace {b.owner[r.host]} (its "
                             f"oldest Ingress); path {r.path} ({r.kind}) is not served: {why}")
    return out


def certificate(b: _Build, ing: Ingress, secret_name: str) -> str:
    secret = b.snap.secret(ing.meta.namespace, secret_name)
    if secret is None:
        b.problems.about(ing, "SecretNotFound", f"TLS Secret {ing.meta.namespace}/{secret_name} "
                         "not found; serving the default certificate", warning=True)
        return ""
    try:
        cert = certificate_from_secret(secret, b.opts.now)
    except TLSError as e:
        b.problems.about(ing, "InvalidCertificate", f"TLS Secret {secret.meta.key}: {e}; "
                         "serving the default certificate", warning=True)
        return ""
    b.certs[cert.file_name] = cert
    return cert.file_name


def _own_hostless(host: str, routes: list[Route], hostless: list[Route], b: _Build) -> list[Route]:
    """The host-less rules a named host takes: only those of the namespace that serves the host
    (else any namespace could take, say, /admin of every host with a longer host-less prefix).
    A host served from several namespaces takes none."""
    owners = {r.ingress.meta.namespace for r in routes} or {b.host_tls_owner.get(host, "").partition("/")[0]}
    return [r for r in hostless if owners == {r.ingress.meta.namespace}]


def _server(host: str, routes: list[Route], fallback: list[Route], b: _Build) -> Server:
    if host:
        fallback = _own_hostless(host, routes, fallback, b)
    canaries = b.annotate.canaries.hosts
    if b.memo is None or not host or host in canaries or (fallback and "" in canaries):
        return _make_server(host, routes, fallback, b)  # a canary attaches (or is orphaned) as it is made
    key = (tuple(routes), tuple(fallback), host in b.host_cert, b.host_cert.get(host, ""), b.owner.get(host))
    made = b.memo.servers.get(host)
    if made is not None and made.key == key and _replay(b, made):
        b.memo.reused += 1
    else:
        b.resolved, b.annotate.opaque, first_problem = [], False, len(b.problems.items)
        server = _make_server(host, routes, fallback, b)
        if b.annotate.opaque:
            b.resolved = None
            return server
        made = _Made(key, tuple(b.resolved), tuple(b.problems.items[first_problem:]), server)
        b.resolved = None
    b.memo.next_servers[host] = made
    return made.server


def _replay(b: _Build, made: _Made) -> bool:
    """Make `made`'s backend resolutions again, in order; True (and its problems reported)
    when each gives what it gave then."""
    for namespace, backend, res, ing, cfg, up in made.resolved:
        now = b.backends.resolve(namespace, backend)
        if now != res:
            return False
        if ing is not None and cfg is not None and b.annotate.upstream(ing, cfg, backend, now.upstream) != up:
            return False
    b.problems.extend(made.problems)
    return True


def _make_server(host: str, routes: list[Route], fallback: list[Route], b: _Build) -> Server:
    claimed = {(r.kind, r.path) for r in routes}
    # Host-less rules apply to every host, but not regex ones: nginx tries regex locations
    # before prefix ones, so one would shadow the host's own paths (of any namespace).
    merged = routes + [r for r in fallback if (r.kind, r.path) not in claimed and r.kind != "regex"]
    explicit_exact = {r.path for r in merged if r.kind == "exact"}
    tls = host in b.host_cert
    # ingress-nginx makes every path of a server a caseless regex when one of its Ingresses
    # sets rewrite-target or use-regex; only the host owner's Ingresses decide that here.
    regex_host = any((r.config.rewrite_target is not None or r.config.use_regex)
                     and (not host or b.owner.get(host) == r.ingress.meta.namespace) for r in merged)
    locations: list[Location] = []
    for r in merged:
        for loc in _locations(r, target(b, r), explicit_exact, regex_host):
            done = b.annotate.location(loc, r.ingress, r.kind, r.claim)
            redirect = _ssl_redirect(r.config, tls, b, loc.path)
            locations.append(done if done.ssl_redirect == redirect else dataclasses.replace(done, ssl_redirect=redirect))
    if not any(loc.modifier == "" and loc.path == "/" for loc in locations):
        default = _default_location(b, routes)
        if routes:  # unmatched paths follow the host's oldest Ingress
            default = dataclasses.replace(default, ssl_redirect=_ssl_redirect(routes[0].config, tls, b))
        locations.append(default)
    locations += _no_auto_redirect(locations)
    server = Server(host=host, locations=tuple(sorted(locations, key=lambda loc: loc.sort_key)), tls=tls,
                    certificate=b.host_cert.get(host, ""))
    owners = list({id(r.ingress): (r.ingress, r.config) for r in routes
                   if not host or b.owner.get(host) == r.ingress.meta.namespace}.values())
    return b.annotate.server(server, owners)


def _no_auto_redirect(locations: list[Location]) -> list[Location]:
    """For each `location = /p/` (an Exact path with a trailing slash), `location = /p` serving
    what the host serves for /p: nginx would otherwise answer /p with a 301 to /p/ (its
    auto-redirect for locations ending in '/'), and the Ingress spec says /p does not match.
    A regex location that matches /p would take it first: then no copy is made."""
    taken = {(loc.modifier, loc.path) for loc in locations}
    out = []
    for loc in locations:
        bare = loc.path[:-1]
        if loc.modifier != "=" or not loc.path.endswith("/") or not bare or ("=", bare) in taken:
            continue
        if any(loc.is_regex and _regex_matches(loc, bare) for loc in locations):
            continue
        prefixes = [p for p in locations if p.modifier == "" and bare.startswith(p.path)]
        if prefixes:
            best = max(prefixes, key=lambda p: len(p.path))
            out.append(dataclasses.replace(best, modifier="=", path=bare))
            taken.add(("=", bare))
    return out


def _regex_matches(loc: Location, uri: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.match(loc.regex_match, uri, re.IGNORECASE if loc.modifier == "~*" else 0) is not None


def _ssl_redirect(cfg: IngressConfig, tls: bool, b: _Build, path: str = "/") -> bool:
    """ssl-redirect (TLS hosts, default from the ConfigMap) or force-ssl-redirect (any host);
    never for no-tls-redirect-locations (cert-manager's HTTP-01 challenge path)."""
    if any(path.startswith(p) for p in b.opts.settings.no_tls_redirect_locations):
        return False
    wanted = cfg.ssl_redirect if cfg.ssl_redirect is not None else b.opts.settings.ssl_redirect
    return (tls and wanted) or cfg.force_ssl_redirect


def _default_location(b: _Build, routes: list[Route]) -> Location:
    """`location /` for unmatched paths: the Ingress's defaultBackend, the global one, or 404."""
    for r in routes:
        if r.ingress.default_backend is not None:
            return _backend_location(b, Route(r.host, "prefix", "/", r.ingress, r.ingress.default_backend, r.config))
    return _global_default(b)


def _backend_location(b: _Build, route: Route) -> Location:
    """`location /` of an Ingress's spec.defaultBackend, with every annotation of that Ingress
    (allowlists, auth, limits...): ingress-nginx applies them there too."""
    loc = _location("/", "", target(b, route), route.ingress.meta.key, route.config)
    return b.annotate.location(loc, route.ingress, "prefix", route.claim)


def _global_default_ref(opts: BuildOptions) -> tuple[str, ServiceBackend] | None:
    """(namespace, backend) of --default-backend-service ("ns/name:port"), if set."""
    if not opts.default_backend:
        return None
    ns_name, _, port = opts.default_backend.rpartition(":")
    ns, _, name = ns_name.partition("/")
    return ns, ServiceBackend(name, int(port) if port.isdigit() else port)


def _global_default(b: _Build) -> Location:
    ref = _global_default_ref(b.opts)
    if ref is not None:
        res = b.backends.resolve(*ref)
        if b.resolved is not None:
            b.resolved.append((ref[0], ref[1], res, None, None, None))
        return _location("/", "", (res.upstream, 503, res.service), "", IngressConfig())
    return Location("/", "", "", 404, "", "")


def build(snap: Snapshot, opts: BuildOptions = BuildOptions()) -> BuildResult:
    """The model for `snap`. An exception that one Ingress's content provokes (a bug of ours:
    content we could not understand should have been reported by a validator) leaves out that
    Ingress, reported as InternalError, instead of stopping the build for everyone."""
    try:
        return _build(snap, opts)
    except Exception:
        return _build_isolating(snap, opts)


MAX_ISOLATION_ROUNDS = 8


def _build_isolating(snap: Snapshot, opts: BuildOptions) -> BuildResult:
    """Group testing over our Ingresses (oldest first): the smallest set found whose absence
    lets the build finish. A failure that needs two Ingresses together costs the younger half."""
    keys = [i.meta.key for i in ours(_start(snap, opts))]
    everyone = frozenset(keys)
    errors: dict[str, str] = {}

    def fails(subset: list[str], excluded: frozenset[str]) -> bool:
        try:
            _build(snap, dataclasses.replace(opts, exclude=opts.exclude | excluded | (everyone - set(subset))))
        except Exception as e:
            if len(subset) == 1:
                errors[subset[0]] = f"{type(e).__name__}: {e}"[:200]
            return True
        return False

    def culprits(group: list[str], excluded: frozenset[str]) -> list[str]:
        if not fails(group, excluded):
            return []
        if len(group) == 1:
            return group
        older, younger = group[: len(group) // 2], group[len(group) // 2:]
        found = culprits(older, excluded) + culprits(younger, excluded)
        return found or younger

    excluded: frozenset[str] = frozenset()
    for _ in range(MAX_ISOLATION_ROUNDS):
        try:
            result = _build(snap, dataclasses.replace(opts, exclude=opts.exclude | excluded))
        except Exception:
            remaining = [k for k in keys if k not in excluded]
            if not remaining or fails([], excluded):
                raise  # the build fails without any of our Ingresses: not one tenant's doing
            excluded |= frozenset(culprits(remaining, excluded))
            continue
        problems = [Problem("Ingress", k.partition("/")[0], k.partition("/")[2], "InternalError",
                            f"building this Ingress failed ({errors.get(k, 'together with other Ingresses')}); "
                            "it is left out until it changes")
                    for k in sorted(excluded)]
        return dataclasses.replace(result, problems=tuple(sorted(
            (*result.problems, *problems), key=lambda p: (p.namespace, p.name, p.reason, p.message))))
    raise RuntimeError("the build fails whichever Ingresses are left out")


def _build(snap: Snapshot, opts: BuildOptions) -> BuildResult:
    memo = opts.memo
    if memo is None or not memo.lock.acquire(blocking=False):
        return _decide(_start(snap, opts))
    try:
        memo.begin(opts)
        b = _start(snap, opts)
        b.memo = memo
        result = _decide(b)
        memo.finish()
        return result
    finally:
        memo.lock.release()


def _decide(b: _Build) -> BuildResult:
    """The order of decisions, top to bottom."""
    opts = b.opts
    # 1. our Ingresses, validated; the oldest claim of a host+path wins, canaries attach
    routes, valid = claim_routes(b, ours(b))
    # 2. each host belongs to the namespace of its oldest Ingress; others may not take its paths
    b.owner = host_owners(i for i in valid if i.meta.key not in b.canary_ingresses)
    stolen = {id(r) for r in foreign_routes_that_steal(b, routes)}
    routes = [r for r in routes if id(r) not in stolen]
    # 3. certificates of the TLS hosts
    for ing in valid:
        tls(b, ing)
    # 4. one server per host (host-less rules go to the default server and, for their own
    #    namespace, to its hosts); locations resolve their backends and annotations
    by_host: dict[str, list[Route]] = {}
    for r in routes:
        by_host.setdefault(r.host, []).append(r)
    hostless = by_host.pop("", [])
    for h in b.host_cert:
        by_host.setdefault(h, [])
    servers = [_catch_all(b, hostless, valid)] + [_server(h, by_host[h], hostless, b) for h in sorted(by_host)]
    # 5. server-level annotations across servers: aliases, www redirects, canaries without a main
    servers = b.annotate.drop_taken_aliases(servers)
    servers += sorted(b.annotate.www_redirects(servers), key=lambda s: s.host)
    b.annotate.canaries.report_orphans(b.problems.about)
    # 6. the model
    default_cert = _default_certificate(b)
    upstreams = {u.name: u for u in (*b.backends.upstreams(), *b.annotate.variants.values())}
    model = Model(
        servers=tuple(servers),
        upstreams=tuple(upstreams[k] for k in sorted(upstreams)),
        certificates=tuple(b.certs[k] for k in sorted(b.certs)),
        settings=opts.settings,
        default_certificate=default_cert,
        **b.annotate.model_parts(),  # type: ignore[arg-type]
    )
    statuses = tuple(StatusUpdate(i.meta.namespace, i.meta.name) for i in valid)
    return BuildResult(model, statuses, b.problems.sorted())


def _default_certificate(b: _Build) -> str:
    """--default-ssl-certificate: served for TLS hosts without a certificate of their own and
    by the default server; a missing or invalid Secret leaves the generated one (reported)."""
    ref = b.opts.default_certificate
    if not ref:
        return ""
    ns, _, name = ref.partition("/")
    secret = b.snap.secret(ns, name)
    if secret is None:
        b.problems.add(Problem("Secret", ns, name, "DefaultCertificateNotFound",
                                  "--default-ssl-certificate names a Secret that does not exist; serving the "
                                  "generated certificate", True))
        return ""
    try:
        cert = certificate_from_secret(secret, b.opts.now)
    except TLSError as e:
        b.problems.add(Problem("Secret", ns, name, "InvalidDefaultCertificate",
                                  f"--default-ssl-certificate: {e}; serving the generated certificate", True))
        return ""
    b.certs[cert.file_name] = cert
    return cert.file_name


def _catch_all(b: _Build, hostless: list[Route], valid: list[Ingress]) -> Server:
    """The default server: host-less rules, then the oldest rule-less defaultBackend, else 404."""
    server = _server("", hostless, [], b)
    if any(r.path == "/" and r.kind == "prefix" for r in hostless) or b.opts.default_backend:
        return server
    for ing in valid:
        if ing.default_backend is not None and not ing.rules:
            cfg, _ = parse_annotations(ing.meta.annotations, b.opts.settings.allow_snippet_annotations)
            root = _backend_location(b, Route("", "prefix", "/", ing, ing.default_backend, cfg))
            rest = tuple(loc for loc in server.locations if not (loc.modifier == "" and loc.path == "/"))
            return Server(host="", locations=tuple(sorted(rest + (root,), key=lambda loc: loc.sort_key)))
    return server


__all__ = ["BuildMemo", "BuildOptions", "BuildResult", "Route", "build", "ingress_routes", "Upstream"]
