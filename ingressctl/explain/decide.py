"""What the chosen server and location do with the request, in nginx's phase order.

Rewrite phase (server redirects, the HTTPS redirect, `return`, redirect annotations,
app-root, client certificates, CORS preflight, rewrite-target), then preaccess (limits),
access (deny/allow, basic auth, auth_request), then the canary maps pick the upstream.

Design choice: a decision that depends on something explain cannot know (a password, the
answer of an auth service, a random draw for canary weights) is stated as a reason and the
request is explained as if it passed, so `status` is only set when nginx itself answers.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ..ingress.model import Canary, Location, Server
from .request import Request


@dataclass
class Decision:
    status: int | None = None  # the code nginx answers itself; None = proxied
    upstream: str = ""  # the upstream name the request goes to
    redirect: str = ""  # Location header of a redirect nginx answers
    canary: bool = False  # the canary backend was chosen
    weights: tuple[tuple[str, float], ...] = ()  # a random split: (upstream, percent); `upstream` is the first
    reasons: list[str] = field(default_factory=list)

    def answer(self, status: int, why: str, redirect: str = "") -> Decision:
        self.status, self.redirect = status, redirect
        self.reasons.append(why)
        return self


def port_suffix(scheme: str, port: int) -> str:
    return "" if (scheme, port) in (("http", 80), ("https", 443)) else f":{port}"


def server_redirect(server: Server, req: Request, http_port: int, https_port: int) -> Decision | None:
    """from-to-www-redirect twins answer 308 before any location is chosen."""
    if not server.redirect_to:
        return None
    port = http_port if req.scheme == "http" else https_port
    suffix = "" if (http_port, https_port) == (80, 443) else f":{port}"
    url = f"{req.scheme}://{server.redirect_to}{suffix}{req.request_uri}"
    return Decision().answer(308, f"server {server.host} only redirects to {server.redirect_to} "
                                  "(from-to-www-redirect)", url)


def decide(server: Server, loc: Location, req: Request, uri: str, https_port: int) -> Decision:
    d = Decision()
    c = loc.config
    if loc.ssl_redirect and req.scheme == "http":
        url = f"https://{req.host}{port_suffix('https', https_port)}{req.request_uri}"
        return d.answer(308, "plain HTTP is redirected to HTTPS (ssl-redirect/force-ssl-redirect)", url)
    if c.redirect:  # before the backend: nginx answers in the rewrite phase
        return d.answer(c.redirect_code, f"redirect annotation: {c.redirect_code} to {c.redirect_url}",
                        c.redirect_url)
    if c.app_root and uri == "/":
        return d.answer(302, f"app-root: / redirects to {c.app_root}", c.app_root)
    if loc.status:
        why = {404: "no backend: nginx answers 404 (no rule and no default backend)",
               503: "the backend has no usable endpoints (or a required Secret is missing): nginx answers 503"}
        return d.answer(loc.status, why.get(loc.status, f"nginx answers {loc.status}"))
    if c.requires_client_cert:
        return d.answer(403, "auth-tls-secret: nginx answers 403 unless the client sends a verified "
                             "certificate (explain sends none)")
    if c.enable_cors and req.method == "OPTIONS":
        return d.answer(204, "enable-cors: nginx answers the OPTIONS preflight itself (204)")
    if c.rewrite_target is not None:
        d.reasons.append(f"rewrite-target: the backend receives {_rewritten(loc, uri)}")
    if loc.rate_limit:
        rl = loc.rate_limit
        d.reasons.append(f"rate limits per client address apply (rps={rl.rps} rpm={rl.rpm} "
                         f"connections={rl.connections}); excess requests get 503")
    access = _access(c.denylist_source_range, c.allowlist_source_range, req.client_ip)
    if access:
        return d.answer(403, access)
    if loc.auth_file:
        if "authorization" not in req.headers:
            return d.answer(401, "basic auth (auth-type basic): no Authorization header: 401")
        d.reasons.append("basic auth: the Authorization header is checked against the htpasswd Secret")
    if loc.auth_location:
        d.reasons.append("external auth (auth-url): the request goes on only if the auth service answers 2xx")
    if loc.mirror_location:
        d.reasons.append("mirror-target: a copy of the request is sent to the mirror")
    if c.custom_http_errors:
        d.reasons.append(f"custom-http-errors {list(c.custom_http_errors)}: those answers come from the "
                         "default backend")
    d.upstream = loc.upstream
    if loc.canary is not None:
        _canary(loc.canary, req, d)
    return d


def _rewritten(loc: Location, uri: str) -> str:
    target = loc.config.rewrite_target
    assert target is not None
    m = re.match(loc.regex_match, uri, re.IGNORECASE) if loc.is_regex else None
    groups = m.groups() if m else ()
    return re.sub(r"\$(\d)", lambda g: (groups[int(g.group(1)) - 1] or "") if 0 < int(g.group(1)) <= len(groups)
                  else "", target.text)


def _access(deny: tuple[str, ...], allow: tuple[str, ...], client: str) -> str:
    """The first deny/allow rule that matches the client, in the order nginx checks them."""
    ip = ipaddress.ip_address(client)
    for cidr in deny:
        if ip in ipaddress.ip_network(cidr, strict=False):
            return f"denylist-source-range {cidr} matches client {client}: 403"
    for cidr in allow:
        if ip in ipaddress.ip_network(cidr, strict=False):
            return ""
    if allow:
        return f"client {client} is not in whitelist-source-range {', '.join(allow)}: 403"
    return ""


def _canary(c: Canary, req: Request, d: Decision) -> None:
    """header, then cookie, then weight (the maps of http_annotations.j2: header values match
    case-insensitively, the cookie regexes case-sensitively)."""
    if c.header:
        got = req.headers.get(c.header.lower())
        if got is not None:
            v = got.lower()
            if c.header_value:
                flag = "1" if v == c.header_value.lower() else ""
            else:
                flag = {"always": "1", "never": "0"}.get(v, "")
            if flag:
                _pick(d, c, flag == "1", f"canary-by-header {c.header}: {got!r}")
                return
        d.reasons.append(f"canary-by-header {c.header}: " + ("not sent" if got is None else
                                                              f"{got!r} decides nothing"))
    if c.cookie:
        got = req.cookie(c.cookie)
        header = req.headers.get("cookie", "")  # the map's regexes over $http_cookie, as rendered
        flag = "1" if re.search(c.cookie_is("always")[1:], header) else \
            "0" if re.search(c.cookie_is("never")[1:], header) else ""
        if flag:
            _pick(d, c, flag == "1", f"canary-by-cookie {c.cookie}={got}")
            return
        d.reasons.append(f"canary-by-cookie {c.cookie}: " + ("not sent" if got is None else f"{got!r} decides nothing"))
    if c.weight_all:
        _pick(d, c, True, "canary-weight: 100% of the rest")
    elif c.weight_flag:
        share = float(c.weight_percent)
        d.weights = ((c.main_upstream, 100 - share), (c.upstream, share))
        d.reasons.append(f"canary-weight: {c.weight_percent}% of these requests go to the canary "
                         f"({c.upstream}), the rest to the main backend (random per request id)")
    else:
        d.reasons.append("canary: no header, cookie or weight sends this request to the canary")


def _pick(d: Decision, c: Canary, canary: bool, why: str) -> None:
    d.canary = canary
    d.upstream = c.upstream if canary else c.main_upstream
    d.reasons.append(f"{why}: {'canary' if canary else 'main'} backend")
