"""Judge every Ingress of the ingress-nginx class as ingressctl would serve it.

The Ingresses are checked with the admission webhook's `Validator`, with a class filter that
selects what ingress-nginx selected (as `--controller-class k8s.io/ingress-nginx` does when
ingressctl takes over the class) and the settings of ingress-nginx's ConfigMap. A refusal is
`refused` with the webhook's reasons; an allowed Ingress `differs` when ingressctl ignores
one of its annotations, reports something ingress-nginx would not, or when ingress-nginx's
host-wide use-regex would have turned its paths into regexes; else it is `same`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..admission.validate import ValidateOptions, Validator
from ..ingress.annotations import PREFIX, REGISTRY, parse_annotations
from ..ingress.build import BuildOptions, build
from ..ingress.model import Model
from ..ingress.settings import KEYS, parse_settings
from ..objects import ConfigMap, Ingress
from ..store import Snapshot
from .differences import DEFAULTS, FLAGS, INGRESS_NGINX_DOES, SAME
from .export import Export, Source


@dataclass(frozen=True)
class Difference:
    what: str  # "annotation nginx.ingress.kubernetes.io/x='v'", "ConfigMap key k='v'", "flag --x", ...
    ingress_nginx: str
    ingressctl: str

    def to_json(self) -> dict[str, str]:
        return {"what": self.what, "ingress-nginx": self.ingress_nginx, "ingressctl": self.ingressctl}


@dataclass(frozen=True)
class IngressReport:
    ingress: str
    verdict: str  # same | differs | refused
    differences: tuple[Difference, ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    source: Source
    ingresses: tuple[IngressReport, ...]
    other_classes: tuple[str, ...] = ()
    configmap: tuple[Difference, ...] = ()
    flags: tuple[Difference, ...] = ()
    read_problems: tuple[str, ...] = ()
    notes: tuple[Difference, ...] = ()  # defaults that differ: listed, not counted in the exit code
    skipped: dict[str, int] = field(default_factory=dict)

    def count(self, verdict: str) -> int:
        return sum(1 for i in self.ingresses if i.verdict == verdict)

    @property
    def exit_code(self) -> int:
        """2: some Ingress refused; 1: something differs (an Ingress, a ConfigMap key, a flag) or some
        object could not be read (it was not checked); 0: all same."""
        if self.count("refused"):
            return 2
        return 1 if self.count("differs") or self.configmap or self.flags or self.read_problems else 0

    def to_json(self) -> dict[str, Any]:
        c = self.source.classes
        return {
            "source": {"controller": c.controller, "ingressClass": c.ingress_class,
                       "watchIngressWithoutClass": c.watch_without_class, "configmap": self.source.configmap or None,
                       "controllerWorkload": self.source.controller or None},
            "summary": {v: self.count(v) for v in ("same", "differs", "refused")} | {
                "otherClasses": len(self.other_classes)},
            "ingresses": [{"ingress": i.ingress, "verdict": i.verdict,
                           "differences": [d.to_json() for d in i.differences], "reasons": list(i.reasons)}
                          for i in self.ingresses],
            "configmap": [d.to_json() for d in self.configmap],
            "flags": [d.to_json() for d in self.flags],
            "notes": [d.to_json() for d in self.notes],
            "otherClasses": list(self.other_classes),
            "readProblems": list(self.read_problems),
            "exitCode": self.exit_code,
        }


def check(export: Export, source: Source, now: datetime) -> Report:
    snap = Snapshot.of(export.objects)
    settings, _ = parse_settings(_configmap(snap, source.configmap))
    validator = Validator(ValidateOptions(build=BuildOptions(classes=source.classes, settings=settings, now=now)))
    theirs = [i for _, i in sorted(snap.ingresses.items()) if source.classes.is_ours(i, snap.classes)]
    regex_hosts = _regex_hosts(theirs)
    borrowed = _hostless_on_named_hosts(snap, build(snap, validator.options.build).model)
    reports = []
    for ing in theirs:
        verdict = validator.check(snap, ing, only_older_conflicts=True)
        if not verdict.allowed:
            reports.append(IngressReport(ing.meta.key, "refused", reasons=verdict.reasons))
            continue
        diffs = _annotation_differences(ing) + _warning_differences(verdict.warnings)
        diffs += _regex_spread(ing, regex_hosts)
        if borrowed.get(ing.meta.key):
            diffs.append(Difference(
                "rule without host", "serves its paths only on the default server (a Host no rule names)",
                f"also serves them on hosts of its namespace that lack those paths: {', '.join(borrowed[ing.meta.key])}"))
        reports.append(IngressReport(ing.meta.key, "differs" if diffs else "same", tuple(diffs)))
    others = tuple(k for k, i in sorted(snap.ingresses.items()) if not source.classes.is_ours(i, snap.classes))
    return Report(source, tuple(reports), others, _configmap_differences(snap, source.configmap),
                  _flag_differences(export), export.problems, _default_notes(snap, source.configmap),
                  dict(export.skipped))


def _configmap(snap: Snapshot, name: str) -> dict[str, str]:
    ns, _, n = name.partition("/")
    cm: ConfigMap | None = snap.configmap(ns, n) if name else None
    return dict(cm.data) if cm is not None else {}


def _annotation_differences(ing: Ingress) -> list[Difference]:
    return [Difference(f"annotation {k}={val!r}", "applies it", "ignores it (not supported)")
            for k, val in sorted(ing.meta.annotations.items())
            if k.startswith(PREFIX) and k[len(PREFIX):] not in REGISTRY and not k.endswith("-snippet")]


def _warning_differences(warnings: tuple[str, ...]) -> list[Difference]:
    out = []
    for w in warnings:
        reason, _, message = w.partition(": ")
        if reason in SAME or (reason == "UnsupportedAnnotation" and message.endswith("not supported by ingressctl, ignored")):
            continue
        out.append(Difference(reason, INGRESS_NGINX_DOES.get(reason, "has no such restriction"), message))
    return out


def _hostless_on_named_hosts(snap: Snapshot, model: Model) -> dict[str, list[str]]:
    """Ingress -> named hosts whose server carries its host-less rules (ingressctl applies a rule
    without host to the hosts of its namespace; ingress-nginx only to the default server)."""
    out: dict[str, set[str]] = {}
    for s in model.servers:
        for loc in s.locations if s.host else ():
            ing = snap.ingresses.get(loc.ingress) if loc.ingress else None
            if ing is not None and any(not r.host for r in ing.rules) and all(r.host != s.host for r in ing.rules):
                out.setdefault(loc.ingress, set()).add(s.host)
    return {k: sorted(v) for k, v in out.items()}


def _regex_hosts(ingresses: list[Ingress]) -> dict[str, str]:
    """host -> the oldest Ingress whose use-regex (or rewrite-target) ingress-nginx applies host-wide."""
    out: dict[str, str] = {}
    for ing in sorted(ingresses, key=lambda i: i.meta.age_key):
        cfg, _ = parse_annotations(ing.meta.annotations, allow_snippets=True)
        if cfg.regex:
            for r in ing.rules:
                out.setdefault(r.host, ing.meta.key)
    return out


REGEX_NGINX = ("matches this Ingress's paths on the host as case-insensitive regexes with any continuation "
               "(Prefix /cart also matches /cartoon; Exact paths too)")
REGEX_OURS = ("matches Prefix paths case-insensitively by whole path elements (/CART/x yes, /cartoon no) and Exact "
              "paths exactly; only a use-regex Ingress of the host owner's namespace has this effect")


def _regex_spread(ing: Ingress, regex_hosts: dict[str, str]) -> list[Difference]:
    cfg, _ = parse_annotations(ing.meta.annotations, allow_snippets=True)
    if cfg.regex:
        typed = sorted({p.path_type for r in ing.rules for p in r.paths} - {"ImplementationSpecific"})
        if not typed:
            return []
        return [Difference(f"use-regex (or rewrite-target) with {'/'.join(typed)} paths", REGEX_NGINX, REGEX_OURS)]
    out = []
    for host in sorted({r.host for r in ing.rules if r.host in regex_hosts and r.paths}):
        out.append(Difference(f"use-regex of Ingress {regex_hosts[host]} on host {host or '*'}", REGEX_NGINX, REGEX_OURS))
    return out


def _configmap_differences(snap: Snapshot, name: str) -> tuple[Difference, ...]:
    data = _configmap(snap, name)
    _, problems = parse_settings(data)
    return tuple(Difference(f"ConfigMap key {p.key}={p.value!r}", "applies it",
                            "ignores it (not supported)" if p.reason.startswith("unknown key") else p.reason)
                 for p in problems)


def _default_notes(snap: Snapshot, name: str) -> tuple[Difference, ...]:
    data = _configmap(snap, name)
    return tuple(Difference(f"ConfigMap key {k} (not set)", f"default {a}", f"default {b}")
                 for k, (a, b) in sorted(DEFAULTS.items()) if k not in data and k in KEYS)


def _flag_differences(export: Export) -> tuple[Difference, ...]:
    if not export.controllers:
        return ()
    out = []
    for name, value in export.controllers[0].flags:
        if name not in FLAGS:
            out.append(Difference(f"flag {name}={value}", "applies it", "has no such flag"))
    return tuple(out)
