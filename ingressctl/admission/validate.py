"""Admission checks for Ingress objects and Gateway API routes, shared by the webhook and
`ingressctl validate`.

`Validator.check(snapshot, candidate)` answers one question: may this Ingress enter the
cluster? It runs, in order: the object schema (`parse_object`), the class filter (an
Ingress of another controller is allowed untouched), the full per-Ingress validation of
`ingress_routes` (strict hosts and paths, regex paths only with `use-regex`, every
annotation's typed validator, the snippet policy), host+path conflicts with the other
Ingresses (naming them), then it builds and renders the candidate's configuration in memory
and hands it to `scan` as a second line of defence.

Design choice: nothing here runs nginx or any other program (that is how CVE-2025-1974
happened), and nothing rebuilds the whole cluster for one candidate. A `HostIndex` maps
each host to the Ingresses that use it and caches their validated routes; the candidate is
built together with only the Ingresses sharing its hosts (plus host-less ones), which is
all that can change the servers it appears in.

An HTTPRoute or GRPCRoute whose parents include a Gateway of ours is checked the same way: every value
the gateway build would refuse (`route_invalid`: regexes, header names and values, redirect
and rewrite fields, timeouts), then the Gateway API configuration with the candidate is
built (without any Ingress: they cannot change a route's maps), rendered and scanned
against the one without it. Routes of other controllers' Gateways pass untouched.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..gateway.build import GatewayOptions, route_invalid
from ..gateway.merge import with_gateway
from ..ingress.annotations import PREFIX, REGISTRY
from ..ingress.build import BuildOptions, Route, build, ingress_routes
from ..ingress.model import Model, Problem
from ..nginx.render import RenderContext, Renderer, RenderError
from ..objects import Ingress, ObjectError, parse_object
from ..objects.gateway import GATEWAY_GROUP, HTTPRoute
from ..store import Snapshot
from . import scan

ADMISSION_PREFIX = "/ingressctl-admission"  # render prefix: never a real directory
# Build problems that do not make the candidate's configuration unsafe and may go away when
# other objects arrive (`kubectl apply -f dir/` sends a canary before its main Ingress):
# warnings, not denials.
WARN_ONLY = frozenset({"InvalidExternalName", "CanaryWithoutMain"})


@dataclass(frozen=True)
class ValidateOptions:
    build: BuildOptions = field(default_factory=BuildOptions)
    render: RenderContext = field(default_factory=lambda: RenderContext(prefix=ADMISSION_PREFIX))
    template_dir: str | None = None  # the controller's template override directory, if any
    scan: bool = True
    gateway: GatewayOptions = field(default_factory=GatewayOptions)


@dataclass(frozen=True)
class Verdict:
    """The answer for one Ingress: allowed or not, why not, and what the user should know."""

    ingress: str  # ns/name
    allowed: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    kind: str = "Ingress"

    @property
    def message(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "allowed"


def _hosts(ing: Ingress) -> set[str]:
    """Every server an Ingress can appear in ("" is the catch-all and every host's fallback)."""
    hosts = {r.host for r in ing.rules}
    hosts.update(h for t in ing.tls for h in t.hosts)
    if not ing.rules:
        hosts.add("")
    return hosts


class HostIndex:
    """host -> Ingress keys, refreshed incrementally by object identity; caches routes."""

    def __init__(self, allow_snippets: bool) -> None:
        self.allow_snippets = allow_snippets
        self._source: Mapping[str, Ingress] | None = None
        self._objects: dict[str, Ingress] = {}
        self._by_host: dict[str, set[str]] = defaultdict(set)
        self._routes: dict[str, tuple[Ingress, list[Route], bool]] = {}

    def refresh(self, ingresses: Mapping[str, Ingress]) -> None:
        if ingresses is self._source:
            return
        for key in self._objects.keys() - ingresses.keys():
            self._remove(key)
        for key, ing in ingresses.items():
            old = self._objects.get(key)
            if old is not ing:
                if old is not None:
                    self._remove(key)
                self._objects[key] = ing
                for h in _hosts(ing):
                    self._by_host[h].add(key)
        self._source = ingresses

    def _remove(self, key: str) -> None:
        old = self._objects.pop(key)
        self._routes.pop(key, None)
        for h in _hosts(old):
            keys = self._by_host.get(h)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_host[h]

    def related(self, hosts: Iterable[str]) -> set[str]:
        out = set(self._by_host.get("", ()))
        for h in hosts:
            out.update(self._by_host.get(h, ()))
        return out

    def routes(self, ing: Ingress) -> tuple[list[Route], bool]:
        """(routes, valid) of an Ingress, cached while the object is unchanged."""
        key = ing.meta.key
        cached = self._routes.get(key)
        if cached is not None and cached[0] is ing:
            return cached[1], cached[2]
        routes, problems = ingress_routes(ing, self.allow_snippets)
        valid = not any(not p.warning for p in problems)
        self._routes[key] = (ing, routes, valid)
        return routes, valid


class Validator:
    """Holds the renderer, the template vocabulary and the host index between calls."""

    def __init__(self, options: ValidateOptions | None = None) -> None:
        self.options = options or ValidateOptions()
        self.renderer = Renderer(self.options.template_dir)
        self.vocabulary = scan.template_vocabulary(self.renderer.sources())
        self.index = HostIndex(self.options.build.settings.allow_snippet_annotations)
        self._index_lock = threading.Lock()  # the index is shared; a verdict's own work is not

    def check(self, snap: Snapshot, candidate: Ingress | Mapping[str, Any],
              only_older_conflicts: bool = False) -> Verdict:
        """Verdict for one candidate (a parsed Ingress or a raw object dict) against `snap`."""
        if not isinstance(candidate, Ingress):
            try:
                obj = parse_object(candidate)
            except ObjectError as e:
                return Verdict(_raw_key(candidate), False, (f"invalid object: {e}",))
            if isinstance(obj, HTTPRoute):
                return self.check_route(snap, obj)
            if not isinstance(obj, Ingress):
                return Verdict(_raw_key(candidate), False, (f"expected an Ingress or HTTPRoute, got {obj.meta.kind}",))
            candidate = obj
        key = candidate.meta.key
        opts = self.options.build
        if not opts.classes.is_ours(candidate, snap.classes):
            why = opts.classes.why_not(candidate, snap.classes)
            return Verdict(key, True, (), (f"not validated: not served by this controller ({why})",))
        reasons = _schema(candidate)
        routes, problems = ingress_routes(candidate, opts.settings.allow_snippet_annotations)
        reasons += [_reason(p) for p in problems if not p.warning]
        reasons += _foreign_snippets(candidate, opts.settings.allow_snippet_annotations)
        warnings = [_reason(p) for p in problems if p.warning]
        if reasons:
            return Verdict(key, False, tuple(reasons), tuple(warnings))
        with self._index_lock:
            self.index.refresh(snap.ingresses)
            related = self._related(snap, candidate)
        reasons += self._conflicts(candidate, routes, related, only_older_conflicts)
        if reasons:
            return Verdict(key, False, tuple(reasons), tuple(warnings))
        render_reasons, build_warnings = self._render_and_scan(snap, candidate, related)
        return Verdict(key, not render_reasons, tuple(render_reasons), tuple(dict.fromkeys(warnings + build_warnings)))

    def check_route(self, snap: Snapshot, route: HTTPRoute) -> Verdict:
        """Verdict for an HTTPRoute or GRPCRoute: its values, then its rendered configuration (see the module doc)."""
        key, kind = route.meta.key, route.meta.kind
        gw_opts = self.options.gateway
        ours = {n for n, c in snap.gateway_classes.items() if c.controller_name == gw_opts.controller_name}
        parents = [snap.gateways.get(f"{r.namespace or route.meta.namespace}/{r.name}") for r in route.parent_refs
                   if r.group == GATEWAY_GROUP and r.kind == "Gateway"]
        if not any(g is not None and g.class_name in ours for g in parents):
            return Verdict(key, True, (), ("not validated: no parent is a Gateway of this controller",), kind)
        why = route_invalid(route, gw_opts.balancer)
        if why:
            return Verdict(key, False, (f"UnsupportedValue: {why}",), (), kind)
        routes = dict(snap.grpc_routes if route.grpc else snap.http_routes)
        routes.pop(key, None)

        def routes_are(these: dict[str, HTTPRoute]) -> Snapshot:
            if route.grpc:
                return dataclasses.replace(snap, ingresses={}, grpc_routes=these)
            return dataclasses.replace(snap, ingresses={}, http_routes=these)
        without, with_route = routes_are(routes), routes_are({**routes, key: route})
        try:
            after = self._render_gateway(with_route)
            before = self._render_gateway(without) if self.options.scan else ""
        except RenderError as e:
            return Verdict(key, False, (f"rendering refused: {e}",), (), kind)
        if not self.options.scan:
            return Verdict(key, True, (), (), kind)
        vocabulary = None if self.options.build.settings.allow_snippet_annotations else self.vocabulary
        findings = scan.scan(before, after, vocabulary, lua_vocabulary=self.vocabulary)
        return Verdict(key, not findings, tuple(f"configuration scan: {f}" for f in findings), (), kind)

    def _render_gateway(self, snap: Snapshot) -> str:
        model = with_gateway(build(snap, self.options.build), snap,
                             dataclasses.replace(self.options.gateway, now=self.options.build.now)).model
        return self.renderer.render(model, self.options.render.for_model(model))

    def _related(self, snap: Snapshot, candidate: Ingress) -> dict[str, Ingress]:
        """The other Ingresses of ours that share a server with the candidate."""
        out: dict[str, Ingress] = {}
        for k in sorted(self.index.related(_hosts(candidate))):
            ing = snap.ingresses.get(k)
            if ing is not None and k != candidate.meta.key and self.options.build.classes.is_ours(ing, snap.classes):
                out[k] = ing
        return out

    def _conflicts(self, candidate: Ingress, routes: list[Route], related: Mapping[str, Ingress],
                   only_older: bool) -> list[str]:
        mine = {r.claim: r for r in routes}
        reasons: list[str] = []
        for other in sorted(related.values(), key=lambda i: i.meta.age_key):
            if only_older and other.meta.age_key >= candidate.meta.age_key:
                continue
            other_routes, valid = self.index.routes(other)
            if not valid:
                continue
            for r in other_routes:
                # a canary shares host+path with its main Ingress (build attaches it): no conflict
                if r.claim in mine and r.config.canary == mine[r.claim].config.canary:
                    reasons.append(f"host {r.host or '*'} path {r.path} ({r.kind}) is already defined in "
                                   f"Ingress {other.meta.key}")
        return sorted(set(reasons))

    def _render_and_scan(self, snap: Snapshot, candidate: Ingress,
                         related: Mapping[str, Ingress]) -> tuple[list[str], list[str]]:
        with_candidate = dict(related)
        with_candidate[candidate.meta.key] = candidate
        result = build(dataclasses.replace(snap, ingresses=with_candidate), self.options.build)
        mine = [p for p in result.problems if (p.namespace, p.name) == (candidate.meta.namespace,
                                                                         candidate.meta.name)]
        warnings = [_reason(p) for p in mine if p.warning or p.reason in WARN_ONLY]
        reasons = [_reason(p) for p in mine if not p.warning and p.reason not in WARN_ONLY]
        if reasons:
            return reasons, warnings
        try:
            ctx = self.options.render.for_model(result.model)  # modules the candidate needs: not a finding
            after = self.renderer.render(result.model, ctx)
            if not self.options.scan:
                return [], warnings
            before_model = build(dataclasses.replace(snap, ingresses=dict(related)), self.options.build).model
            before = self.renderer.render(before_model, ctx)
        except RenderError as e:
            return [f"rendering refused: {e}"], warnings
        vocabulary = None if self.options.build.settings.allow_snippet_annotations else self.vocabulary
        findings = scan.scan(before, after, vocabulary, lua_vocabulary=self.vocabulary)
        return [f"configuration scan: {f}" for f in findings], warnings

    def render(self, snap: Snapshot, candidate: Ingress, ctx: RenderContext | None = None) -> tuple[Model, str]:
        """The configuration of the candidate's slice, as the controller would write it (tests, tools)."""
        with self._index_lock:
            self.index.refresh(snap.ingresses)
            ingresses = self._related(snap, candidate)
        ingresses[candidate.meta.key] = candidate
        model = build(dataclasses.replace(snap, ingresses=ingresses), self.options.build).model
        return model, self.renderer.render(model, ctx or self.options.render)

    def check_all(self, snap: Snapshot) -> list[Verdict]:
        """A verdict for every Ingress in `snap` (conflicts are charged to the newer Ingress),
        then for every HTTPRoute."""
        return [*(self.check(snap, ing, only_older_conflicts=True) for _, ing in sorted(snap.ingresses.items())),
                *(self.check_route(snap, r) for _, r in sorted(snap.http_routes.items())),
                *(self.check_route(snap, r) for _, r in sorted(snap.grpc_routes.items()))]


def _schema(ing: Ingress) -> list[str]:
    """What the API server's own validation would refuse, and we rely on."""
    if not ing.rules and ing.default_backend is None:
        return ["spec: either defaultBackend or rules must be specified"]
    return []


def _foreign_snippets(ing: Ingress, allowed: bool) -> list[str]:
    """Snippet annotations ingressctl does not implement (stream-snippet, auth-snippet, ...).

    They would be ignored, but the snippet policy is about what users may ask for: refused
    while snippets are off, as they would be where they are implemented.
    """
    if allowed:
        return []
    return [f"InvalidAnnotation: annotation {k}={val!r}: snippet annotations are disabled (ConfigMap "
            "allow-snippet-annotations: false)" for k, val in sorted(ing.meta.annotations.items())
            if k.startswith(PREFIX) and k.endswith("-snippet") and k[len(PREFIX):] not in REGISTRY]


def _reason(p: Problem) -> str:
    return f"{p.reason}: {p.message}"


def _raw_key(raw: Any) -> str:
    meta = raw.get("metadata") if isinstance(raw, Mapping) else None
    if isinstance(meta, Mapping):
        return f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
    return "?"


def validate_candidate(snap: Snapshot, candidate: Ingress | Mapping[str, Any],
                       options: ValidateOptions | None = None) -> Verdict:
    """One-shot form of `Validator.check` (builds a fresh index; prefer a Validator for many calls)."""
    return Validator(options).check(snap, candidate)


def validate_snapshot(snap: Snapshot, options: ValidateOptions | None = None) -> list[Verdict]:
    """Every Ingress in a snapshot (a manifest directory), as `ingressctl validate` reports them."""
    return Validator(options).check_all(snap)
