"""Canary Ingresses: grouped by the host+path they share with a main Ingress.

`build` sets canary routes aside instead of letting them claim host+path (so they are never
a conflict), registers each here with its resolved upstream, and asks for the canary of a
main location when it makes one. One canary per host+path (the oldest); a canary without a
main Ingress is reported and not served, and so is one whose main Ingress is in another
namespace (else anyone could take a share, up to all, of another team's host+path). Canaries
are kept per namespace, so one from another namespace never blocks the main Ingress's own.

Design choice: the routing decision (header beats cookie beats weight) is rendered as nginx
`map`s and `split_clients` over typed values, so no `if` and no Lua is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..objects import Ingress
from .annotations import IngressConfig
from .model import Canary

Claim = tuple[str, str, str]  # host, kind, path
Report = Callable[[Ingress, str, str, bool], None]


@dataclass
class _Pending:
    ingress: Ingress
    config: IngressConfig
    upstream: str  # "" when the canary backend has no endpoints
    canary: Canary | None = None
    foreign: bool = False  # the main Ingress is in another namespace: never attached


def weight_percent(weight: int, total: int) -> str:
    """split_clients share with at most two decimals, e.g. 1/3 -> '33.33'."""
    hundredths = (weight * 10_000) // total
    whole, frac = divmod(hundredths, 100)
    return f"{whole}" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")


class CanaryIndex:
    def __init__(self) -> None:
        self.pending: dict[tuple[Claim, str], _Pending] = {}  # (claim, namespace) -> canary
        self.claims: set[Claim] = set()  # the claims some canary names, in any namespace
        self.hosts: set[str] = set()  # their hosts
        self.next_id = 0

    def involves(self, claim: Claim) -> bool:
        """Whether `attach` for this claim could find, report or number a canary."""
        return claim in self.claims

    def add(self, claim: Claim, ing: Ingress, cfg: IngressConfig, upstream: str, report: Report) -> None:
        """Register a canary route (oldest first); a second canary for the same path is reported."""
        first = self.pending.get((claim, ing.meta.namespace))
        if first is not None and first.ingress is not ing:
            report(ing, "CanaryConflict", f"host {claim[0] or '*'} path {claim[2]} already has the canary "
                   f"{first.ingress.meta.key}; this canary is ignored", False)
            return
        if first is None:
            self.pending[(claim, ing.meta.namespace)] = _Pending(ing, cfg, upstream)
            self.claims.add(claim)
            self.hosts.add(claim[0])

    def attach(self, claim: Claim, main_upstream: str, report: Report, namespace: str) -> Canary | None:
        """The canary of the main location for `claim`, whose Ingress is in `namespace`."""
        for (other, ns), foreign in self.pending.items():
            if other == claim and ns != namespace and not foreign.foreign:
                foreign.foreign = True
                report(foreign.ingress, "CanaryNamespace", f"the main Ingress of host {claim[0] or '*'} path "
                       f"{claim[2]} is in namespace {namespace}; a canary must be in the same namespace; not served",
                       False)
        p = self.pending.get((claim, namespace))
        if p is None:
            return None
        if not p.upstream:
            report(p.ingress, "CanaryNoEndpoints", f"canary backend for {claim[0] or '*'}{claim[2]} has no "
                   "endpoints; all traffic goes to the main Ingress", True)
            return None
        if p.canary is None:
            c = p.config
            p.canary = Canary(
                id=self.next_id, upstream=p.upstream, main_upstream=main_upstream,
                header=c.canary_by_header or "", header_value=c.canary_by_header_value or "",
                header_pattern=c.canary_by_header_pattern or "",
                cookie=c.canary_by_cookie or "",
                weight_percent=weight_percent(c.canary_weight or 0, c.canary_weight_total))
            self.next_id += 1
        return p.canary

    def report_orphans(self, report: Report) -> None:
        for (claim, _), p in self.pending.items():
            if p.canary is None and p.upstream and not p.foreign:
                report(p.ingress, "CanaryWithoutMain", f"no main Ingress serves host {claim[0] or '*'} path "
                       f"{claim[2]}; the canary is not served", False)

    def used(self) -> tuple[Canary, ...]:
        return tuple(p.canary for p in sorted(self.pending.values(), key=lambda p: p.canary.id if p.canary else 0)
                     if p.canary is not None)
