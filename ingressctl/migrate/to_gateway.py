"""`ingressctl migrate to-gateway`: Ingresses (with the ingress-nginx annotations that route)
to a Gateway and HTTPRoutes, and the proof that both route the same way.

`convert` is pure: the Ingresses ingressctl serves in, Gateway API objects (plain dicts,
ready for YAML) and notes out. `prove` builds both inputs with ingressctl's own model and
replays a generated request set (every host x path form x scheme x canary header/cookie)
through `explain` on each, listing every request routed differently.

Design choice: the proof judges the output by the code that will serve it, not by the
conversion's own idea of what it wrote, so a conversion bug, a Gateway API limit (no 308
redirect in the standard channel) or a precedence difference all show up as differences.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..explain import explain, parse_request
from ..gateway.build import DEFAULT_CONTROLLER, REDIRECT_CODES
from ..ingress.annotations import PREFIX
from ..ingress.build import BuildResult
from ..ingress.classes import ClassFilter
from ..objects import Ingress, IngressPath, parse_object
from ..objects.gateway import GATEWAY_GROUP, Gateway, GatewayClass, HTTPRoute, ReferenceGrant
from ..store import Snapshot

G = f"{GATEWAY_GROUP}/v1"
# what the conversion reads; every other annotation of ours is listed as not converted
CONVERTED = frozenset({
    "canary", "canary-by-header", "canary-by-header-value", "canary-by-cookie", "canary-weight",
    "canary-weight-total", "use-regex", "permanent-redirect", "permanent-redirect-code", "temporal-redirect",
    "ssl-redirect", "force-ssl-redirect", "upstream-vhost", "rewrite-target"})
MAX_REQUESTS = 20_000
_NOT_NAME = "[^A-Za-z0-9_-]"  # what separates cookies ('; '): a ';' itself is not allowed in route regexes


@dataclass(frozen=True)
class ConvertOptions:
    gateway_name: str = "ingressctl"
    gateway_namespace: str = "ingressctl"
    gateway_class: str = "ingressctl"
    controller_name: str = DEFAULT_CONTROLLER
    http_port: int = 80
    https_port: int = 443


@dataclass
class Conversion:
    objects: list[dict[str, Any]] = field(default_factory=list)  # GatewayClass, Gateway, ReferenceGrants, routes
    notes: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)  # "ns/name" of the Ingresses the routes replace


def _ann(ing: Ingress, key: str) -> str:
    return ing.meta.annotations.get(PREFIX + key, "")


def _regex_literal(text: str) -> str | None:
    """`text` as a regex that our value checks accept (no '\\'): other characters in [ ];
    None when one cannot be written that way."""
    out = []
    for ch in text:
        if ch.isalnum() or ch in "_-":
            out.append(ch)
        elif ch in "]^\\" or ch.isspace() or ord(ch) < 32:
            return None
        else:
            out.append(f"[{ch}]")
    return "".join(out)


def _match_path(p: IngressPath, regex: bool) -> dict[str, str]:
    if regex:  # ingress-nginx: `location ~* ^<path>`: a case-insensitive prefix regex
        return {"type": "RegularExpression", "value": f"/(?i:{p.path[1:]}).*"}
    if p.path_type == "Exact":
        return {"type": "Exact", "value": p.path}
    return {"type": "PathPrefix", "value": p.path}


@dataclass
class _Converter:
    snap: Snapshot
    opts: ConvertOptions
    out: Conversion = field(default_factory=Conversion)
    listeners: list[dict[str, Any]] = field(default_factory=list)
    https: dict[str, str] = field(default_factory=dict)  # host -> listener name
    grants: set[str] = field(default_factory=set)  # namespaces whose Secrets the Gateway reads

    def port_number(self, ing: Ingress, p: IngressPath) -> int | None:
        assert p.backend is not None
        if isinstance(p.backend.port, int):
            return p.backend.port
        svc = self.snap.service(ing.meta.namespace, p.backend.name)
        sp = svc.port_for(p.backend.port) if svc is not None else None
        return sp.port if sp is not None else None

    def backend_ref(self, ing: Ingress, p: IngressPath, weight: int | None = None) -> dict[str, Any] | None:
        if p.backend is None:
            self.out.notes.append(f"Ingress {ing.meta.key}: path {p.path}: a resource backend is not converted")
            return None
        port = self.port_number(ing, p)
        if port is None:
            self.out.notes.append(f"Ingress {ing.meta.key}: path {p.path}: Service port {p.backend.port!r} "
                                  "not found: not converted")
            return None
        ref: dict[str, Any] = {"name": p.backend.name, "port": port}
        if weight is not None:
            ref["weight"] = weight
        return ref

    def listener_for_tls(self, ing: Ingress, host: str, secret: str) -> None:
        if host in self.https:
            return
        name = f"https-{len(self.https)}"
        self.https[host] = name
        ref: dict[str, Any] = {"name": secret}
        if ing.meta.namespace != self.opts.gateway_namespace:
            ref["namespace"] = ing.meta.namespace
            self.grants.add(ing.meta.namespace)
        self.listeners.append({"name": name, "protocol": "HTTPS", "port": self.opts.https_port, "hostname": host,
                               "tls": {"certificateRefs": [ref]}, "allowedRoutes": {"namespaces": {"from": "All"}}})

    def canary_rules(self, main: Ingress, canaries: list[Ingress], host: str, p: IngressPath,
                     regex: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        """Extra rules (header/cookie matches to the canary) and the weighted backendRefs of the
        main rule, from the canary Ingresses with the same host and path."""
        extra: list[dict[str, Any]] = []
        weighted = None
        for c in canaries:
            cp = next((x for r in c.rules if r.host == host for x in r.paths
                       if x.path.rstrip("/") == p.path.rstrip("/")), None)
            if cp is None:
                continue
            ref = self.backend_ref(c, cp)
            if ref is None:
                continue
            match = _match_path(p, regex)
            header, value, cookie = _ann(c, "canary-by-header"), _ann(c, "canary-by-header-value"), \
                _ann(c, "canary-by-cookie")
            if header and not value:  # "never" keeps the request on the main backend, weight or not
                main_ref = self.backend_ref(main, p)
                if main_ref is not None:
                    extra.append({"matches": [{"path": match, "headers": [
                        {"type": "RegularExpression", "name": header, "value": "(?i:never)"}]}],
                        "backendRefs": [main_ref]})
            if header:
                lit = _regex_literal(value or "always")
                if lit is None:
                    self.out.notes.append(f"Ingress {c.meta.key}: canary-by-header-value {value!r} is not converted")
                else:
                    extra.append({"matches": [{"path": match, "headers": [
                        {"type": "RegularExpression", "name": header, "value": f"(?i:{lit})"}]}],
                        "backendRefs": [ref]})
            if cookie:
                lit = _regex_literal(cookie)
                if lit is None:
                    self.out.notes.append(f"Ingress {c.meta.key}: canary-by-cookie {cookie!r} is not converted")
                else:
                    extra.append({"matches": [{"path": match, "headers": [
                        {"type": "RegularExpression", "name": "Cookie", "value": f"(.*{_NOT_NAME}|){lit}=always({_NOT_NAME}.*|)"}]}],
                        "backendRefs": [ref]})
            weight = _ann(c, "canary-weight")
            if weight.isdigit() and int(weight) > 0:
                total = int(_ann(c, "canary-weight-total") or 100)
                main_ref = self.backend_ref(main, p, max(total - int(weight), 0))
                if main_ref is not None:
                    weighted = [main_ref, {**ref, "weight": min(int(weight), total)}]
        return extra, weighted

    def redirect_filter(self, ing: Ingress) -> dict[str, Any] | None:
        code_text = _ann(ing, "permanent-redirect-code")
        url, code = _ann(ing, "permanent-redirect"), int(code_text) if code_text.isdigit() else 301
        if not url:
            url, code = _ann(ing, "temporal-redirect"), 302
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or "$" in url \
                or code not in REDIRECT_CODES:
            self.out.notes.append(f"Ingress {ing.meta.key}: redirect {url!r} ({code}) is not converted: a "
                                  "RequestRedirect names a fixed scheme, host, port and path")
            return None
        rr: dict[str, Any] = {"scheme": parts.scheme, "hostname": parts.hostname, "statusCode": code}
        if parts.port:
            rr["port"] = parts.port
        if parts.path:
            rr["path"] = {"type": "ReplaceFullPath", "replaceFullPath": parts.path}
        return {"type": "RequestRedirect", "requestRedirect": rr}

    def ingress(self, ing: Ingress, canaries: list[Ingress]) -> None:
        skipped = sorted(k[len(PREFIX):] for k in ing.meta.annotations
                         if k.startswith(PREFIX) and k[len(PREFIX):] not in CONVERTED)
        if skipped:
            self.out.notes.append(f"Ingress {ing.meta.key}: not converted (no Gateway API equivalent here): "
                                  + ", ".join(skipped))
        regex = _ann(ing, "use-regex") == "true"
        tls_hosts = {h: t.secret_name for t in ing.tls for h in t.hosts}
        by_host: dict[str, list[IngressPath]] = {}
        for ir in ing.rules:
            by_host.setdefault(ir.host, []).extend(ir.paths)
        if ing.default_backend is not None and not ing.rules:
            by_host.setdefault("", []).append(IngressPath("/", "Prefix", ing.default_backend))
        redirect = self.redirect_filter(ing)
        vhost, target = _ann(ing, "upstream-vhost"), _ann(ing, "rewrite-target")
        for i, (host, paths) in enumerate(sorted(by_host.items())):
            rules: list[dict[str, Any]] = []
            for p in paths:
                extra, weighted = self.canary_rules(ing, canaries, host, p, regex)
                rules += extra
                rule: dict[str, Any] = {"matches": [{"path": _match_path(p, regex)}]}  # one HTTPRoute rule
                filters = []
                if redirect is not None:
                    filters.append(redirect)
                else:
                    ref = self.backend_ref(ing, p)
                    if ref is None:
                        continue
                    rule["backendRefs"] = weighted or [ref]
                    rewrite: dict[str, Any] = {}
                    if vhost:
                        rewrite["hostname"] = vhost
                    if target == "/" and not regex and p.path_type != "Exact":
                        rewrite["path"] = {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
                    elif target:
                        self.out.notes.append(f"Ingress {ing.meta.key}: rewrite-target {target!r} is not "
                                              "converted (only '/' on a prefix path is)")
                    if rewrite:
                        filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
                if filters:
                    rule["filters"] = filters
                rules.append(rule)
            if not rules:
                continue
            name = ing.meta.name if len(by_host) == 1 else f"{ing.meta.name}-{i}"
            secret = tls_hosts.get(host) or ("" if not host else next(
                (s for h, s in tls_hosts.items() if h.startswith("*.") and host.endswith(h[1:])), ""))
            redirect_http = bool(secret) and _ann(ing, "ssl-redirect") != "false" or \
                _ann(ing, "force-ssl-redirect") == "true"
            if secret:
                self.listener_for_tls(ing, host, secret)
            self.route(ing, name, host, rules, bool(secret), redirect_http)
        self.out.converted.append(ing.meta.key)
        self.out.converted += [c.meta.key for c in canaries]

    def route(self, ing: Ingress, name: str, host: str, rules: list[dict[str, Any]], tls: bool,
              redirect_http: bool) -> None:
        gw = {"name": self.opts.gateway_name, "namespace": self.opts.gateway_namespace}
        hostnames = [host] if host else []

        def doc(route_name: str, section: str, rs: list[dict[str, Any]]) -> dict[str, Any]:
            return {"apiVersion": G, "kind": "HTTPRoute",
                    "metadata": {"name": route_name, "namespace": ing.meta.namespace,
                                 "labels": {"ingressctl.io/converted-from": ing.meta.name}},
                    "spec": {"parentRefs": [{**gw, "sectionName": section}], "hostnames": hostnames, "rules": rs}}
        if tls:
            self.out.objects.append(doc(name, self.https[host], rules))
        if tls and redirect_http:
            to_https: dict[str, Any] = {"scheme": "https", "statusCode": 308}  # as ingress-nginx
            if self.opts.https_port != 443:
                to_https["port"] = self.opts.https_port
            self.out.objects.append(doc(f"{name}-to-https", "http", [{"filters": [{
                "type": "RequestRedirect", "requestRedirect": to_https}]}]))
        else:
            self.out.objects.append(doc(name if not tls else f"{name}-http", "http", rules))

    def finish(self) -> Conversion:
        gateway = {"apiVersion": G, "kind": "Gateway",
                   "metadata": {"name": self.opts.gateway_name, "namespace": self.opts.gateway_namespace},
                   "spec": {"gatewayClassName": self.opts.gateway_class, "listeners": [
                       {"name": "http", "protocol": "HTTP", "port": self.opts.http_port,
                        "allowedRoutes": {"namespaces": {"from": "All"}}}, *self.listeners]}}
        grants = [{"apiVersion": f"{GATEWAY_GROUP}/v1beta1", "kind": "ReferenceGrant",
                   "metadata": {"name": f"{self.opts.gateway_name}-reads-secrets", "namespace": ns},
                   "spec": {"from": [{"group": GATEWAY_GROUP, "kind": "Gateway",
                                      "namespace": self.opts.gateway_namespace}],
                            "to": [{"group": "", "kind": "Secret"}]}} for ns in sorted(self.grants)]
        cls = {"apiVersion": G, "kind": "GatewayClass", "metadata": {"name": self.opts.gateway_class},
               "spec": {"controllerName": self.opts.controller_name}}
        self.out.objects[:0] = [cls, gateway, *grants]
        return self.out


def convert(snap: Snapshot, served: list[Ingress], opts: ConvertOptions = ConvertOptions()) -> Conversion:
    """Gateway API objects for the Ingresses ingressctl serves (canaries folded into their main)."""
    c = _Converter(snap, opts)
    mains = [i for i in served if _ann(i, "canary") != "true"]
    canaries = [i for i in served if _ann(i, "canary") == "true"]
    for ing in sorted(mains, key=lambda i: i.meta.age_key):
        mine = [x for x in canaries if x.meta.namespace == ing.meta.namespace
                and {r.host for r in x.rules} & {r.host for r in ing.rules}]
        c.ingress(ing, mine)
    return c.finish()


# -- the proof -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    request: str
    ingress: str  # what the Ingresses do
    gateway: str  # what the routes do


def _answer(e: Any) -> str:
    if e.status is not None:
        return f"{e.status}" + (f" to {e.redirect}" if e.redirect else "")
    if e.split:
        return "split " + ", ".join(f"{p:g}% to {s}" for s, p in sorted(e.split))
    return f"Service {e.backend['service']}" if e.backend else "nothing"


def requests_for(ingresses: list[Ingress]) -> list[tuple[str, tuple[str, ...]]]:
    """(URL, headers): every host x path form x scheme, with the canary headers and cookies."""
    out: dict[tuple[str, tuple[str, ...]], None] = {}
    for ing in ingresses:
        tls = {h for t in ing.tls for h in t.hosts}
        header, value, cookie = _ann(ing, "canary-by-header"), _ann(ing, "canary-by-header-value"), \
            _ann(ing, "canary-by-cookie")
        variants: list[tuple[str, ...]] = [()]
        if header:
            variants += [(f"{header}: {v}",) for v in ([value] if value else []) + ["always", "never", "other"]]
        if cookie:
            variants += [(f"Cookie: {cookie}=always",), (f"Cookie: a=1; {cookie}=always",), (f"Cookie: {cookie}=never",)]
        rules = list(ing.rules) or []
        hosts_paths = [(r.host, p) for r in rules for p in r.paths]
        if ing.default_backend is not None and not rules:
            hosts_paths.append(("", IngressPath("/", "Prefix", ing.default_backend)))
        for host, p in hosts_paths:
            h = "x" + host[1:] if host.startswith("*.") else host or "no-host.invalid"
            base = p.path.rstrip("/") or ""
            literal = re.split(r"[\[\](){}.*+?^$|\\]", p.path)[0].rstrip("/")
            forms = [p.path, p.path + "/"] if p.path_type == "Exact" else \
                [p.path, base + "/", base + "/x", base + "x"] if _ann(ing, "use-regex") != "true" else \
                [literal + "/", literal + "/x", literal + "x"]
            for scheme in ("http", "https") if host in tls or "*." + host.partition(".")[2] in tls else ("http",):
                for path in forms:
                    for hdrs in variants:
                        out[(f"{scheme}://{h}{path or '/'}", hdrs)] = None
    return list(out)[:MAX_REQUESTS]


def prove(before: tuple[Snapshot, BuildResult], after: tuple[Snapshot, BuildResult], classes: ClassFilter,
          requests: list[tuple[str, tuple[str, ...]]], http_port: int, https_port: int) -> list[Difference]:
    """Every request through `explain` on the Ingress build and on the Gateway build."""
    out = []
    for url, headers in requests:
        req = parse_request(url, headers)
        a = explain(before[0], before[1], req, classes, http_port, https_port)
        b = explain(after[0], after[1], req, classes, http_port, https_port)
        if _answer(a) != _answer(b):
            out.append(Difference(f"GET {url}" + "".join(f" [{h}]" for h in headers), _answer(a), _answer(b)))
    return out


def without_ingresses(snap: Snapshot, keys: list[str], conversion: Conversion) -> Snapshot:
    """The snapshot after the move: the converted Ingresses gone, the Gateway API objects in."""
    gone = set(keys)
    objs = [parse_object(o) for o in conversion.objects]
    return dataclasses.replace(
        snap, ingresses={k: i for k, i in snap.ingresses.items() if k not in gone},
        gateway_classes={**snap.gateway_classes, **{o.meta.name: o for o in objs if isinstance(o, GatewayClass)}},
        gateways={**snap.gateways, **{o.meta.key: o for o in objs if isinstance(o, Gateway)}},
        http_routes={**snap.http_routes, **{o.meta.key: o for o in objs if isinstance(o, HTTPRoute)}},
        reference_grants={**snap.reference_grants, **{o.meta.key: o for o in objs if isinstance(o, ReferenceGrant)}},
    )

