"""Session affinity annotations: a cookie keeps a client on one endpoint (Lua balancer).

`balanced` picks the endpoint by consistent hashing of a random cookie value, so when an
endpoint leaves only its sessions move (and a joining endpoint takes its share);
`persistent` names the endpoint in the cookie and never moves a session whose endpoint is
still there. Cookie attributes follow ingress-nginx's names and defaults.
"""

from __future__ import annotations

import re

from .. import values as v
from . import Annotation, register

_DOMAIN_RE = re.compile(r"^\.?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\Z")
TEN_YEARS = 10 * 365 * 86_400


def _domain(value: str) -> str:
    text = value.strip()
    if len(text) > 253 or not _DOMAIN_RE.match(text):
        raise v.InvalidValue(f"{value!r} is not a cookie domain (a host name, optionally with a leading '.')")
    return text


def _seconds(value: str) -> int:
    return v.integer(value, 1, TEN_YEARS)


ANNOTATIONS = (
    Annotation("affinity", "affinity", lambda s: v.enum(s.strip(), ("cookie",)), "enum", "",
               "cookie: keep each client on one endpoint with a session cookie (needs the Lua balancer: "
               "--dynamic-endpoints, on by default with nginx-extras). Wins over load-balance and "
               "upstream-hash-by, as in ingress-nginx."),
    Annotation("affinity-mode", "affinity_mode", lambda s: v.enum(s.strip(), ("balanced", "persistent")), "enum",
               "balanced", "balanced: consistent hashing, only the sessions of an endpoint that left move (and a "
               "new endpoint takes its share); persistent: a session stays while its endpoint exists."),
    Annotation("session-cookie-name", "session_cookie_name", v.token, "cookie name", "INGRESSCOOKIE",
               "Name of the affinity cookie."),
    Annotation("session-cookie-path", "session_cookie_path", v.path, "path", "(the location's path)",
               "Path attribute of the cookie; regex paths use '/' unless this is set."),
    Annotation("session-cookie-domain", "session_cookie_domain", _domain, "domain", "",
               "Domain attribute of the cookie."),
    Annotation("session-cookie-expires", "session_cookie_expires", _seconds, "seconds", "",
               "Expires attribute, this many seconds after the response (a session cookie when unset)."),
    Annotation("session-cookie-max-age", "session_cookie_max_age", _seconds, "seconds", "",
               "Max-Age attribute of the cookie."),
    Annotation("session-cookie-samesite", "session_cookie_samesite",
               lambda s: v.enum(s.strip(), ("None", "Lax", "Strict")), "enum", "", "SameSite attribute."),
    Annotation("session-cookie-conditional-samesite-none", "session_cookie_conditional_samesite_none",
               v.boolean, "bool", "false",
               "Leave out SameSite=None for browsers known to reject it (Chrome 4x-6x, iOS 12, macOS 10.14 Safari)."),
    Annotation("session-cookie-secure", "session_cookie_secure", v.boolean, "bool", "(true over HTTPS)",
               "Secure attribute; by default set on HTTPS requests only."),
    Annotation("session-cookie-change-on-failure", "session_cookie_change_on_failure", v.boolean, "bool", "false",
               "When the session's endpoint fails, retry on another and move the session there (by default "
               "the retry goes to the same endpoint)."),
)
register(*ANNOTATIONS)

