"""Typed shapes of annotation values that `ingress/values.py` does not cover.

URLs, rewrite targets, hash keys, CORS origins, header and method lists, status codes and
the like. Each parser returns a value that is safe to print in nginx syntax (or to pass to
the `q` / `q_re` filters) and raises `InvalidValue` with a reason otherwise.

Design choice: every shape is an allow-list anchored at both ends; the only `$` ever
accepted is a capture reference `$1`..`$9` (rewrite targets) or a variable from a fixed
list (hash keys, mirror targets, `URL_VARIABLES` in auth-url / auth-signin), so no user
value can name an arbitrary nginx variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import values as v

InvalidValue = v.InvalidValue

# Safe URL characters: RFC 3986 unreserved + most sub-delims, never quotes, '$', '\', ';',
# braces, whitespace or '#'.
_URL_CHARS = r"[A-Za-z0-9._~%!+,:@=/?&*-]"
_URL_RE = re.compile(rf"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{{1,5}})?(/{_URL_CHARS}*)?\Z")
_REWRITE_RE = re.compile(rf"^(/|https?://)({_URL_CHARS}|\$[1-9])*\Z")
_TEXT_RE = re.compile(r"^[A-Za-z0-9 ._,:()/@!?+*=-]{1,128}\Z")


def url(value: str) -> str:
    """An absolute http(s) URL without variables, quotes or whitespace."""
    s = value.strip()
    m = _URL_RE.match(s)
    if not m:
        raise InvalidValue(f"{value!r} is not an http(s) URL made of safe characters (no '$', quotes, spaces, ';')")
    host = m.group(2)
    if not host.startswith("["):
        v.host(host.rstrip("."))
    if m.group(3) and not 1 <= int(m.group(3)[1:]) <= 65535:
        raise InvalidValue(f"{value!r} has an invalid port")
    return s


# nginx variables an auth-url / auth-signin may use (the oauth2-proxy pattern
# `https://$host/oauth2/start?rd=$escaped_request_uri`). Only values nginx itself derives and
# checks: $host is the validated, lower-cased Host (never `/`), $server_port digits, $scheme
# http/https, $request_uri the raw request target (no spaces or control characters), and
# $escaped_request_uri the same percent-encoded by Lua. Raw client headers ($http_*,
# $cookie_*, $arg_*) and $remote_addr-style values are not needed by this pattern: refused.
URL_VARIABLES = ("scheme", "host", "server_port", "request_uri", "escaped_request_uri")
_URL_SAMPLES = {"scheme": "https", "host": "example.com", "server_port": "443", "request_uri": "/p?a=1",
                "escaped_request_uri": "%2Fp"}
_VAR_RE = re.compile(r"\$(\{[^}]*\}?|[A-Za-z0-9_]*)")  # how nginx reads a variable name after '$'
MAX_URL = 1024


class VariableURL(str):
    """An http(s) URL validated by `url_with_variables`: its only `$` are `URL_VARIABLES`."""

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(m.group(1) for m in _VAR_RE.finditer(self))

    def uses(self, name: str) -> bool:
        return name in self.variables


def url_with_variables(value: str) -> VariableURL:
    """An absolute http(s) URL that may use the nginx variables of `URL_VARIABLES`.

    Each variable is replaced by a sample value and the result must pass `url` (scheme,
    host syntax, port, safe characters), so `$scheme` only fits where a scheme may stand
    and a variable cannot smuggle quotes, spaces, `;`, braces or `#` into the text.
    """
    s = value.strip()
    if len(s) > MAX_URL:
        raise InvalidValue(f"URL longer than {MAX_URL} characters")
    allowed = ", ".join("$" + n for n in URL_VARIABLES)
    for m in _VAR_RE.finditer(s):
        name = m.group(1)
        if not name:
            raise InvalidValue(f"{value!r} has a '$' that does not start a variable name")
        if name.startswith("{"):
            raise InvalidValue(f"{value!r}: write variables as $name, not ${name} (allowed: {allowed})")
        if name not in URL_VARIABLES:
            raise InvalidValue(f"{value!r} uses the nginx variable ${name}, which is not allowed here "
                               f"(allowed: {allowed})")
    try:
        url(_VAR_RE.sub(lambda m: _URL_SAMPLES[m.group(1)], s))
    except InvalidValue as e:
        raise InvalidValue(f"{value!r} (variables replaced by examples): {e}") from None
    return VariableURL(s)


@dataclass(frozen=True)
class MirrorTarget:
    """A mirror URL, optionally followed by nginx's `$request_uri` (the only variable allowed)."""

    url: str
    append_request_uri: bool


def mirror_target(value: str) -> MirrorTarget:
    s = value.strip()
    append = s.endswith("$request_uri")
    base = s[: -len("$request_uri")] if append else s
    return MirrorTarget(url(base), append)


@dataclass(frozen=True)
class RewriteTarget:
    """A rewrite replacement: a path or URL whose only variables are captures $1..$9."""

    text: str

    @property
    def max_capture(self) -> int:
        return max((int(n) for n in re.findall(r"\$([1-9])", self.text)), default=0)

    def __str__(self) -> str:
        return self.text


def rewrite_target(value: str) -> RewriteTarget:
    s = value.strip()
    if len(s) > 512 or not _REWRITE_RE.match(s):
        raise InvalidValue(
            f"{value!r} must start with '/' or http(s)://, use safe URL characters and no '$' other than $1..$9")
    return RewriteTarget(s)


def text(value: str) -> str:
    """A short human-readable text (auth realm): letters, digits, spaces, basic punctuation."""
    if not _TEXT_RE.match(value):
        raise InvalidValue(f"{value!r} may only contain letters, digits, spaces and ._,:()/@!?+*=- (max 128)")
    return value


_HASH_VARS = ("$request_uri", "$uri", "$remote_addr", "$binary_remote_addr", "$host",
              "$args", "$query_string", "$server_name", "$scheme")
_HASH_PART = re.compile(r"\$(http|cookie|arg)_[a-z0-9_]{1,64}|" + "|".join(re.escape(x) for x in _HASH_VARS))


def hash_key(value: str) -> str:
    """`upstream-hash-by`: one or more allowed nginx variables, concatenated."""
    s = value.strip()
    pos = 0
    while pos < len(s):
        m = _HASH_PART.match(s, pos)
        if not m:
            raise InvalidValue(
                f"{value!r} must be made of the variables {', '.join(_HASH_VARS)}, $http_*, $cookie_*, $arg_*")
        pos = m.end()
    if not s:
        raise InvalidValue("empty hash key")
    return s


_ORIGIN_RE = re.compile(r"^(https?)://(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)"
                        r"(:[0-9]{1,5})?\Z")


def origin_list(value: str) -> tuple[str, ...]:
    """`cors-allow-origin`: '*' or a comma-separated list of origins, '*.' wildcard subdomains."""
    items = tuple(x.strip().lower() for x in value.split(",") if x.strip())
    if items == ("*",):
        return items
    if not items:
        raise InvalidValue("empty origin list")
    for o in items:
        if not _ORIGIN_RE.match(o):
            raise InvalidValue(f"origin {o!r} is not scheme://host[:port] (a leading '*.' is allowed)")
    return items


_ONE_LABEL = r"[a-z0-9-]+\."


def origin_regex(origins: tuple[str, ...]) -> str:
    """An anchored regex matching any of the origins ('*.' = exactly one extra label)."""
    parts = []
    for o in origins:
        scheme, rest = o.split("://", 1)
        wild = rest.startswith("*.")
        body = re.escape(rest[2:] if wild else rest)
        parts.append(f"{scheme}://{_ONE_LABEL if wild else ''}{body}")
    return "^(" + "|".join(parts) + ")$"


MAX_LIST_ITEMS = 64  # headers, aliases: each item is a directive or a server name of its own


def header_list(value: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in value.split(",") if x.strip())
    if not items:
        raise InvalidValue("empty header list")
    if len(items) > MAX_LIST_ITEMS:
        raise InvalidValue(f"{len(items)} headers: at most {MAX_LIST_ITEMS}")
    return tuple(v.header_name(h) for h in items)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")


def method(value: str) -> str:
    return v.enum(value.strip().upper(), _METHODS)


def method_list(value: str) -> tuple[str, ...]:
    items = tuple(x.strip().upper() for x in value.split(",") if x.strip())
    if not items:
        raise InvalidValue("empty method list")
    return tuple(v.enum(m, _METHODS) for m in items)


def status_codes(value: str) -> tuple[int, ...]:
    """`custom-http-errors`: comma-separated codes 400-599, except 499."""
    items = [x.strip() for x in value.split(",") if x.strip()]
    if not items:
        raise InvalidValue("empty list of status codes")
    codes = tuple(sorted({v.integer(x, 400, 599) for x in items}))
    if 499 in codes:  # nginx's error_page refuses it (nginx -t would fail for everyone)
        raise InvalidValue("499 cannot be intercepted (nginx's own code for a closed client connection)")
    return codes


_NEXT_UPSTREAM = ("error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
                  "http_403", "http_404", "http_429", "non_idempotent", "off")


def next_upstream(value: str) -> tuple[str, ...]:
    """`proxy-next-upstream`: space-separated conditions from nginx's list."""
    items = tuple(value.split())
    if not items:
        raise InvalidValue("empty list")
    for x in items:
        v.enum(x, _NEXT_UPSTREAM)
    if "off" in items and len(items) > 1:
        raise InvalidValue("'off' cannot be combined with other conditions")
    return items


def on_off(value: str) -> str:
    s = value.strip().lower()
    if s in ("on", "true"):
        return "on"
    if s in ("off", "false"):
        return "off"
    raise InvalidValue(f"{value!r} is not on or off")


def host_list(value: str) -> tuple[str, ...]:
    items = tuple(x.strip().lower() for x in value.split(",") if x.strip())
    if not items:
        raise InvalidValue("empty host list")
    if len(items) > MAX_LIST_ITEMS:
        raise InvalidValue(f"{len(items)} hosts: at most {MAX_LIST_ITEMS}")
    return tuple(v.host(h) for h in items)


@dataclass(frozen=True)
class SecretRef:
    """`name` or `namespace/name`; the namespace must be the Ingress's own (checked in build)."""

    namespace: str  # "" = the Ingress's namespace
    name: str


def secret_ref(value: str) -> SecretRef:
    ns, _, name = value.strip().rpartition("/")
    return SecretRef(v.k8s_name(ns) if ns else "", v.k8s_name(name))


_MAP_PARAMETERS = ("default", "hostnames", "include", "volatile")


def header_value(value: str) -> str:
    """A canary header value: printable, no quotes, backslashes or '$'. It becomes a key of an
    nginx `map`, so it may not start with '~' (a regex) nor be one of map's parameters."""
    if not re.fullmatch(r"[A-Za-z0-9 ._~:/=+,@-]{1,256}", value):
        raise InvalidValue(f"{value!r} may only contain letters, digits, spaces and ._~:/=+,@- (max 256)")
    if value.startswith("~") or value in _MAP_PARAMETERS:
        raise InvalidValue(f"{value!r} may not start with '~' nor be one of {', '.join(_MAP_PARAMETERS)}")
    return value


_CN_RE = re.compile(r"^[A-Za-z0-9 =,.*_()|^+?:-]{1,256}\Z")


def cn_regex(value: str) -> str:
    """`auth-tls-match-cn`: a regex over the client DN (e.g. 'CN=(alice|bob)'), no quotes or '$'."""
    if not _CN_RE.match(value):
        raise InvalidValue(f"{value!r} may only contain letters, digits, spaces and =,.*_()|^+?:-")
    v.pcre_compatible(value, "client DN regex")
    v.compiled_without_nested_repeats(value, "client DN regex")
    return value


_CIPHERS_RE = re.compile(r"^[A-Za-z0-9!+@:._=-]{1,2048}\Z")


def ciphers(value: str) -> str:
    """An OpenSSL cipher list (ssl_ciphers / proxy_ssl_ciphers)."""
    if not _CIPHERS_RE.match(value.strip()):
        raise v.InvalidValue("must be an OpenSSL cipher list (letters, digits and !+@:._=-)")
    return value.strip()


_CACHE_KEY_RE = re.compile(r'^[^"\\\s\x00-\x1f\x7f;{}#]{1,512}\Z')
_CACHE_VARS = ("remote_user", "remote_addr", "host", "request_uri", "uri", "scheme")
_CACHE_VAR_RE = re.compile(r"\$\{?([A-Za-z0-9_]*)\}?")


def cache_key(value: str) -> str:
    """auth-cache-key: text and variables that are always defined (an unknown one would fail
    `nginx -t` for everyone): headers, cookies, arguments and a few request variables."""
    if not _CACHE_KEY_RE.match(value):
        raise InvalidValue(f"{value[:80]!r}: 1-512 characters without spaces, quotes, backslashes, ';', '{{', '}}', '#'")
    for m in _CACHE_VAR_RE.finditer(value):
        name = m.group(1)
        if name not in _CACHE_VARS and not re.fullmatch(r"(http|cookie|arg)_[a-z0-9_]{1,64}", name):
            raise InvalidValue(f"${name} cannot be used in auth-cache-key")
    return value


def cache_durations(value: str) -> tuple[str, ...]:
    """auth-cache-duration: comma-separated '[CODE ...] DURATION' items, as proxy_cache_valid takes them."""
    out = []
    for item in (x.strip() for x in value.split(",") if x.strip()):
        *codes, duration = item.split()
        for code in codes:
            if code != "any":
                v.integer(code, 100, 599)
        out.append(" ".join([*codes, str(v.duration(duration))]))
    if not out or len(out) > 10:
        raise InvalidValue("1-10 items like '200 202 5m'")
    return tuple(out)
