"""Gateway API routes in `explain`: replay a Gateway location's dispatch maps for one request.

A Gateway host is one `location /` whose target comes from nginx maps (gateway/model.py):
one flag per condition, then the first choice whose pattern matches the flags, in the
spec's precedence order. This module evaluates the same maps in Python, from the same
Dispatch the templates print, so the answer names the route, rule and match nginx uses,
and what the rule's filters do to the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..gateway.model import Choice, Dispatch, HeaderMap, UriMap
from ..ingress.model import Location, Model
from .decide import Decision
from .request import Request

_STATUS_WHY = {
    "404": "no match of any route for this host: nginx answers 404",
    "500": "the backendRef cannot be resolved (missing Service or port, not permitted by a ReferenceGrant, "
           "not a Service): 500, as the spec requires",
    "503": "the backend Service has no ready endpoints: 503",
}


@dataclass(frozen=True)
class Chosen:
    """The route match nginx takes for the request (None when no choice matches)."""

    kind: str
    namespace: str
    name: str
    rule: int
    match: int


def _variable(var: str, req: Request, uri: str) -> str:
    """The value nginx gives one of the variables a condition tests."""
    if var == "$uri":
        return uri
    if var == "$request_method":
        return req.method
    if var == "$scheme":
        return req.scheme
    if var.startswith("$http_"):
        want = var[len("$http_"):]
        return next((v for k, v in req.headers.items() if k.lower().replace("-", "_") == want), "")
    if var.startswith("$arg_"):
        want = var[len("$arg_"):].lower()
        for part in req.query.split("&"):
            k, _, v = part.partition("=")
            if k.lower() == want:
                return v
        return ""
    return ""


def _key(d: Dispatch, req: Request, uri: str) -> str:
    flags = "".join("1" if re.search(c.regex, _variable(c.variable, req, uri)) else "0" for c in d.conditions)
    return flags or "x"


def _fill(value: str, m: re.Match[str], req: Request) -> str:
    out = value.replace("$is_args$args", f"?{req.query}" if req.query else "")
    out = out.replace("$request_uri", req.request_uri).replace("$host", req.host)
    return out.replace("$1", (m.group(1) or "") if m.re.groups else "")


def uri_value(u: UriMap, key: str, uri: str, req: Request) -> str:
    full = f"{key}|{uri}"
    for e in u.entries:
        m = re.search(e.pattern, full)
        if m:
            return _fill(e.value, m, req)
    return ""


def header_value(h: HeaderMap, key: str, original: str) -> str:
    for e in h.entries:
        if re.search(e.pattern, key):
            if e.keep:
                return original
            return f"{original},{e.value}" if e.append and original else e.value
    return original


def dispatch_decision(model: Model, loc: Location, req: Request, uri: str) -> tuple[Decision, Chosen | None]:
    d = Decision()
    dispatch = next((x for x in model.dispatches if x.variable == loc.dispatch), None)
    if dispatch is None:
        return d.answer(404, "the Gateway location has no dispatch (no route)"), None
    key = _key(dispatch, req, uri)
    index, choice = next(((i, ch) for i, ch in enumerate(dispatch.choices) if re.search(ch.pattern, key)),
                         (None, None))
    if choice is None or index is None:
        return d.answer(404, _STATUS_WHY["404"]), None
    ns, _, name = choice.route.partition("/")
    chosen = Chosen(choice.kind, ns, name, choice.rule, choice.match)
    d.reasons.append(f"{choice.kind} {choice.route} rules[{choice.rule}].matches[{choice.match}] is the first "
                     f"match in the spec's precedence order ({index + 1} of {len(dispatch.choices)} for this host)")
    _target(dispatch, choice, d, key, uri, req)
    if d.status is None:
        _effects(dispatch, key, uri, req, d)
    return d, chosen


def _target(dispatch: Dispatch, choice: Choice, d: Decision, key: str, uri: str, req: Request) -> None:
    target = choice.target
    if target in _STATUS_WHY:
        d.answer(int(target), _STATUS_WHY[target])
        return
    if target in ("301", "302", "303", "307", "308"):
        location = uri_value(dispatch.locations, key, uri, req) if dispatch.locations else ""
        d.answer(int(target), f"RequestRedirect: {target} to {location}", location)
        return
    split = next((s for s in dispatch.splits if s.variable == target), None)
    if split is None:
        d.upstream = target
        return
    shares = ", ".join(f"{share} to {t}" for share, t in split.shares) + f", the rest to {split.last}"
    d.reasons.append(f"weighted backendRefs: {shares} (random per request id); explained as the first")
    given = [(t, float(share.rstrip("%"))) for share, t in split.shares]
    d.weights = (*given, (split.last, round(100 - sum(p for _, p in given), 2)))
    first = split.shares[0][1] if split.shares else split.last
    if first in _STATUS_WHY:
        d.answer(int(first), _STATUS_WHY[first])
    else:
        d.upstream = first


def _effects(dispatch: Dispatch, key: str, uri: str, req: Request, d: Decision) -> None:
    """What the rule's filters do to the request on its way."""
    if dispatch.rewrites is not None:
        path = uri_value(dispatch.rewrites, key, uri, req)
        if path:
            d.reasons.append(f"URLRewrite: the backend is sent the path {path}")
    if dispatch.host is not None:
        host = header_value(dispatch.host, key, req.host)
        if host != req.host:
            d.reasons.append(f"URLRewrite: the backend is sent Host: {host}")
    for h in dispatch.headers:
        before = next((v for k, v in req.headers.items() if k.lower() == h.name), "")
        after = header_value(h, key, before)
        if after != before:
            d.reasons.append(f"RequestHeaderModifier: {h.name}: " + (repr(after) if after else "removed"))
    for h in dispatch.response_headers:
        if header_value(h, key, "\0") != "\0":
            d.reasons.append(f"ResponseHeaderModifier changes {h.name} in the answer")
    for m in dispatch.mirrors:
        target = header_value(m, key, "")
        if target:
            d.reasons.append(f"RequestMirror: a copy goes to {target} (its answer is ignored)")
    if dispatch.timeouts is not None:
        seconds = header_value(dispatch.timeouts, key, "")
        if seconds:
            d.reasons.append(f"timeouts: the backend must answer within {float(seconds):g} s, else 504")
