"""Annotation registry: every supported `nginx.ingress.kubernetes.io/*` annotation.

Each family module (`proxy.py`, `routing.py`, ...) registers its annotations with a parser
that turns the user's text into a typed value (or raises `InvalidValue`). `parse_annotations`
applies them all to one Ingress and returns an `IngressConfig` plus the problems and
warnings it found; it never raises. The same registry drives the admission webhook,
`ingressctl validate` and the generated reference `docs/annotations.md`.

Design choice: one flat, frozen `IngressConfig` with a field per annotation; `None` means
"not set, use the global setting", so templates never see an unparsed string.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import values as v
from .config import IngressConfig

PREFIX = "nginx.ingress.kubernetes.io/"

__all__ = [
    "PREFIX",
    "REGISTRY",
    "Annotation",
    "AnnotationProblem",
    "IngressConfig",
    "parse_annotations",
    "register",
    "register_check",
]


@dataclass(frozen=True)
class Annotation:
    name: str  # without the prefix
    field: str  # IngressConfig field it sets
    parse: Callable[[str], Any]
    type: str  # for the reference table: bool, duration, size, enum, ...
    default: str
    doc: str
    risk: str = "Low"  # Low, Medium, High, Critical (ingress-nginx's scale)
    snippet: bool = False  # only with allow-snippet-annotations


@dataclass(frozen=True)
class AnnotationProblem:
    annotation: str  # full name with prefix
    value: str
    reason: str
    warning: bool = False

    def __str__(self) -> str:
        shown = self.value if len(self.value) <= 400 else f"{self.value[:200]}... ({len(self.value)} characters)"
        return f"annotation {self.annotation}={shown!r}: {self.reason}"


REGISTRY: dict[str, Annotation] = {}

# Unsupported annotations that would weaken security or move where TLS ends if ignored:
# (name prefix, what it does). Served without them, an Ingress would be less protected than
# its author asked for, so it is refused until ingressctl implements them. Any other unknown
# annotation is a warning.
SECURITY_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("proxy-ssl-", "sets TLS (and its verification) towards the backend"),
    ("auth-", "controls authentication"),
    ("enable-modsecurity", "enables the web application firewall"),
    ("modsecurity-", "configures the web application firewall"),
    ("enable-owasp-core-rules", "enables the web application firewall's rules"),
    ("whitelist-", "limits who may connect"),
    ("allowlist-", "limits who may connect"),
    ("denylist-", "limits who may connect"),
    ("global-rate-limit", "limits request rates"),
    ("limit-", "limits request rates or bandwidth"),
)


def security_category(name: str) -> str:
    """What an unsupported annotation would protect (its category), or "" when it is harmless."""
    return next((what for prefix, what in SECURITY_CATEGORIES if name.startswith(prefix)), "")
# nginx reads at most 4,096 bytes per parameter ("too long parameter"); a value becomes at
# most one parameter, with a few bytes of ours around it. Snippets have their own bound.
MAX_VALUE = 3072
# Values that become one parameter per item (allow lines, server names, ...): bounded by
# their item counts instead.
MANY_PARAMETERS = frozenset({"allowlist-source-range", "denylist-source-range", "whitelist-source-range",
                             "limit-whitelist", "auth-response-headers", "server-alias", "custom-http-errors",
                             "proxy-next-upstream"})

# Checks across annotations (e.g. canary-weight <= canary-weight-total): each returns
# (annotation name without prefix, reason) pairs for a parsed config.
ConsistencyCheck = Callable[[IngressConfig], list[tuple[str, str]]]
CHECKS: list[ConsistencyCheck] = []


def register_check(check: ConsistencyCheck) -> ConsistencyCheck:
    CHECKS.append(check)
    return check


def register(*annotations: Annotation) -> None:
    for a in annotations:
        if a.name in REGISTRY:
            raise RuntimeError(f"annotation {a.name} registered twice")
        if a.field not in IngressConfig.__dataclass_fields__:
            raise RuntimeError(f"annotation {a.name}: IngressConfig has no field {a.field}")
        REGISTRY[a.name] = a


def parse_annotations(
    annotations: Mapping[str, str], allow_snippets: bool = False
) -> tuple[IngressConfig, list[AnnotationProblem]]:
    """Typed config for one Ingress; invalid or unsupported annotations come back as problems.

    Memoised on the Ingress's own annotations: thousands of Ingresses usually share a few
    annotation sets, and parsing is pure.
    """
    ours = tuple(sorted((k, val) for k, val in annotations.items() if k.startswith(PREFIX)))
    if not ours:
        return _DEFAULT_CONFIG, []
    cfg, problems = _parse_cached(ours, allow_snippets)
    return cfg, list(problems)


@functools.lru_cache(maxsize=4096)
def _parse_cached(
    items: tuple[tuple[str, str], ...], allow_snippets: bool
) -> tuple[IngressConfig, tuple[AnnotationProblem, ...]]:
    cfg, problems = _parse(dict(items), allow_snippets)
    return cfg, tuple(problems)


def _parse(
    annotations: Mapping[str, str], allow_snippets: bool
) -> tuple[IngressConfig, list[AnnotationProblem]]:
    values: dict[str, Any] = {}
    problems: list[AnnotationProblem] = []
    for full in sorted(annotations):
        if not full.startswith(PREFIX):
            continue
        raw = annotations[full]
        spec = REGISTRY.get(full[len(PREFIX):])
        if spec is None:
            category = security_category(full[len(PREFIX):])
            if category:
                problems.append(AnnotationProblem(
                    full, raw, f"not supported by ingressctl, and it {category}: the Ingress is refused rather "
                    "than served without it"))
            else:
                problems.append(AnnotationProblem(full, raw, "not supported by ingressctl, ignored", warning=True))
            continue
        if spec.snippet and not allow_snippets:
            problems.append(AnnotationProblem(
                full, raw, "snippet annotations are disabled (ConfigMap allow-snippet-annotations: false)"))
            continue
        if len(raw) > MAX_VALUE and not spec.snippet and spec.name not in MANY_PARAMETERS:
            problems.append(AnnotationProblem(full, raw, f"is longer than {MAX_VALUE} characters (nginx reads at "
                                              "most 4,096 bytes per parameter)"))
            continue
        try:
            values[spec.field] = spec.parse(raw)
        except v.InvalidValue as e:
            problems.append(AnnotationProblem(full, raw, str(e)))
    cfg = dataclasses.replace(IngressConfig(), **values)
    for check in CHECKS:
        for name, reason in check(cfg):
            full = PREFIX + name
            problems.append(AnnotationProblem(full, annotations.get(full, ""), reason))
    return cfg, problems


_DEFAULT_CONFIG = IngressConfig()

# Family modules register themselves on import.
from . import access, affinity, backendtls, canary, cors, errors, limits, proxy, routing, snippet  # noqa: F401

if not REGISTRY.keys() >= MANY_PARAMETERS:
    raise RuntimeError(f"MANY_PARAMETERS names unknown annotations: {sorted(MANY_PARAMETERS - REGISTRY.keys())}")
