"""Typed validators for every value that may reach nginx syntax.

Each function takes user text and returns a value of a narrow type, or raises
`InvalidValue` with a reason a user can act on. Templates never receive raw user strings:
they receive the results of these functions, which by construction contain no character
nginx could read as syntax (`;`, `{`, `}`, quotes, `#`, `$`, whitespace, newlines).

Design choice: allow-lists (regular expressions anchored at both ends) rather than
deny-lists; anything outside the documented shape is refused. The end anchor is `\\Z`, never
`$`: Python's `$` also matches before a trailing newline.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from dataclasses import dataclass
from re import _constants as re_constants  # type: ignore[attr-defined]
from re import _parser as re_parser  # type: ignore[attr-defined]
from typing import Any

from .regexcost import ambiguous_repeats


class InvalidValue(ValueError):
    """A user value that does not have the shape we accept."""


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_IPV4_HOST_RE = re.compile(r"^[0-9]+(\.[0-9]+){3}\Z")
_HOST_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*\Z")
# RFC 3986 path characters minus those nginx or a shell could read as syntax.
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~%!+,:@=/-]*\Z")
_DURATION_RE = re.compile(r"^([0-9]{1,6})(ms|s|m|h|d)?\Z")
_SIZE_RE = re.compile(r"^([0-9]{1,9})([kKmMgG]?)\Z")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")
_HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")


def host(value: str) -> str:
    """A DNS name (lower case, optionally a leading `*.` wildcard)."""
    if len(value) > 253 or not _HOST_RE.match(value):
        raise InvalidValue(f"host {value!r} is not a valid DNS name (lower-case labels, optional leading '*.')")
    return value


def ingress_host(value: str) -> str:
    """The host of an Ingress rule or TLS entry: a DNS name and never an IP address (the API
    server refuses one; URLs in annotations may still name an address)."""
    if _IPV4_HOST_RE.match(value):
        raise InvalidValue(f"host {value!r} is an IP address, not a DNS name")
    return host(value)


RESERVED_PATH = "/_ingressctl"


def path(value: str, max_len: int = 1024) -> str:
    """An Exact or Prefix path: starts with '/', only safe URI characters."""
    if len(value) > max_len:
        raise InvalidValue(f"path is longer than {max_len} characters")
    if not _PATH_RE.match(value):
        raise InvalidValue(
            f"path {value!r} must start with '/' and use only letters, digits and ._~%!+,:@=/-"
        )
    if "//" in value or "/../" in value or value.endswith("/.."):
        raise InvalidValue(f"path {value!r} contains '//' or '..' segments")
    if value.startswith(RESERVED_PATH):  # auth_request / mirror locations: a duplicate fails nginx -t
        raise InvalidValue(f"path {value!r}: paths starting with {RESERVED_PATH} are ingressctl's own")
    return value


# '$' only as nginx's q_re filter takes it: an end anchor, before ')' or '|', or $1..$9.
_REGEX_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f;{}'\"#`\\]|\$(?![1-9)|]|\Z)")
# Python's re and nginx's PCRE read these group openers alike; PCRE refuses others Python
# takes ('(?a:', '(?u:', non-ASCII group names), which would fail nginx -t for everyone.
_REGEX_GROUP = re.compile(r"\((?=\?)(?!\?([:=!>]|<[=!]|P<[A-Za-z_][A-Za-z0-9_]*>|P=[A-Za-z_][A-Za-z0-9_]*\)"
                          r"|[imsx]*(-[imsx]+)?[:)]))")
_POSIX_CLASSES = "alnum|alpha|ascii|blank|cntrl|digit|graph|lower|print|punct|space|upper|word|xdigit"
_REGEX_POSIX = re.compile(rf"\[[.=]|\[:(?!({_POSIX_CLASSES}):\])")


# Escapes Python and PCRE read alike: '\\.', '\\/' and the classes digit, word, space.
_ALLOWED_ESCAPES = re.compile(r"\\[./dDwWsS]")
MAX_AMBIGUOUS_REPEATS = 1


def pcre_compatible(value: str, what: str) -> None:
    """Refuse the group and class syntax Python's re takes and nginx's PCRE does not."""
    bad = _REGEX_GROUP.search(value) or _REGEX_POSIX.search(value)
    if bad:
        raise InvalidValue(f"{what} {value!r}: {value[bad.start():bad.start() + 6]!r}... is not a group or "
                           "class nginx's PCRE reads as Python does")


def regex_path(value: str, max_len: int = 256) -> str:
    """A path regular expression for nginx `location ~`; compiled and bounded."""
    if len(value) > max_len:
        raise InvalidValue(f"regex path is longer than {max_len} characters")
    if not value.startswith("/"):
        raise InvalidValue(f"regex path {value!r} must start with '/'")
    bad = _REGEX_FORBIDDEN.search(_ALLOWED_ESCAPES.sub("", value))
    if bad:
        raise InvalidValue(f"regex path {value!r} contains {bad.group(0)!r}, which nginx could read as syntax")
    pcre_compatible(value, "regex path")
    compiled_without_nested_repeats(value, "regex path")
    return value


def regex_value(value: str, what: str, max_len: int = 256) -> str:
    """A regular expression matched against a request value (a Gateway API header or path
    match): the same rules as `regex_path` without the leading '/'."""
    if len(value) > max_len:
        raise InvalidValue(f"{what} is longer than {max_len} characters")
    bad = _REGEX_FORBIDDEN.search(_ALLOWED_ESCAPES.sub("", value))
    if bad:
        raise InvalidValue(f"{what} {value!r} contains {bad.group(0)!r}, which nginx could read as syntax")
    pcre_compatible(value, what)
    compiled_without_nested_repeats(value, what)
    return value


def compiled_without_nested_repeats(value: str, what: str) -> None:
    """The regex compiles and repeats no part that itself repeats or alternates ('(a+)+',
    '(a|aa)*'): nginx matches it on every request, and such a match backtracks exponentially."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # '[[:alpha:]]': a possible nested set to Python
            parsed = re_parser.parse(value)
    except re.error as e:
        raise InvalidValue(f"{what} {value!r} does not compile: {e}") from None
    if _nested_repeat(list(parsed), False):
        raise InvalidValue(f"{what} {value!r} repeats a group that itself repeats or alternates "
                           "('(a+)+', '(a|aa)*'): matching it can backtrack exponentially on every request")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ambiguous = ambiguous_repeats(value)
    if ambiguous > MAX_AMBIGUOUS_REPEATS:
        raise InvalidValue(f"{what} {value!r} has {ambiguous} repeats that can match what follows them ('a*a*', "
                           f"'.*x.*y'); at most {MAX_AMBIGUOUS_REPEATS} is allowed: on a URI that does not match, "
                           "each one multiplies the backtracking by the URI's length")


_REPEATS = (re_constants.MAX_REPEAT, re_constants.MIN_REPEAT, re_constants.POSSESSIVE_REPEAT)


def _nested_repeat(items: list[tuple[Any, Any]], in_repeat: bool) -> bool:
    """True if a repeated (more than once) part contains another repeat or an alternation."""
    for op, av in items:
        if op in _REPEATS:
            many = av[1] > 1
            if (in_repeat and many) or _nested_repeat(list(av[2]), in_repeat or many):
                return True
        elif op is re_constants.BRANCH:
            if in_repeat or any(_nested_repeat(list(alt), in_repeat) for alt in av[1]):
                return True
        elif op is re_constants.SUBPATTERN:
            if _nested_repeat(list(av[3]), in_repeat):
                return True
        elif op in (re_constants.ASSERT, re_constants.ASSERT_NOT):
            if _nested_repeat(list(av[1]), in_repeat):
                return True
        elif op is re_constants.ATOMIC_GROUP and _nested_repeat(list(av), in_repeat):
            return True
    return False


def k8s_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise InvalidValue(f"{value!r} is not a valid Kubernetes name")
    return value


def token(value: str) -> str:
    """A short identifier: letters, digits, '.', '_' and '-'."""
    if not _TOKEN_RE.match(value):
        raise InvalidValue(f"{value!r} may only contain letters, digits, '.', '_' and '-' (max 128)")
    return value


def header_name(value: str) -> str:
    if not _HEADER_RE.match(value):
        raise InvalidValue(f"{value!r} is not a valid HTTP header name")
    return value


@dataclass(frozen=True, order=True)
class Duration:
    """A time span in milliseconds; rendered in nginx's own units."""

    ms: int

    def __str__(self) -> str:
        if self.ms % 1000 == 0:
            return f"{self.ms // 1000}s"
        return f"{self.ms}ms"

    @property
    def seconds(self) -> int:
        return self.ms // 1000


_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration(value: str, default_unit: str = "s", max_ms: int = 7 * 86_400_000) -> Duration:
    """'60', '60s', '500ms', '5m' -> Duration; a bare number uses `default_unit`."""
    m = _DURATION_RE.match(value.strip())
    if not m:
        raise InvalidValue(f"{value!r} is not a duration (a number, optionally with ms, s, m, h or d)")
    ms = int(m.group(1)) * _UNIT_MS[m.group(2) or default_unit]
    if ms > max_ms:
        raise InvalidValue(f"{value!r} is longer than the maximum allowed")
    return Duration(ms)


@dataclass(frozen=True, order=True)
class Size:
    """A byte size rendered as nginx writes sizes (k, m, g suffixes)."""

    bytes: int

    def __str__(self) -> str:
        for unit, mult in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if self.bytes and self.bytes % mult == 0:
                return f"{self.bytes // mult}{unit}"
        return str(self.bytes)


def size(value: str, lo: int = 0, hi: int | None = None) -> Size:
    """'1m', '512k', '8192', '0' -> Size, optionally bounded (lo, hi in bytes)."""
    m = _SIZE_RE.match(value.strip())
    if not m:
        raise InvalidValue(f"{value!r} is not a size (a number with an optional k, m or g suffix)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    out = Size(int(m.group(1)) * mult)
    if out.bytes < lo or (hi is not None and out.bytes > hi):
        raise InvalidValue(f"{value!r} is not in {Size(lo)}-{Size(hi) if hi is not None else ''}")
    return out


def boolean(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise InvalidValue(f"{value!r} is not true or false")


def integer(value: str, lo: int, hi: int) -> int:
    v = value.strip()
    if not re.fullmatch(r"-?[0-9]{1,10}", v):
        raise InvalidValue(f"{value!r} is not an integer")
    n = int(v)
    if not lo <= n <= hi:
        raise InvalidValue(f"{n} is not in {lo}-{hi}")
    return n


def number(value: str, lo: float, hi: float) -> float:
    v = value.strip()
    if not re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,6})?", v):
        raise InvalidValue(f"{value!r} is not a number")
    n = float(v)
    if not lo <= n <= hi:
        raise InvalidValue(f"{n:g} is not in {lo:g}-{hi:g}")
    return n


def enum(value: str, allowed: tuple[str, ...]) -> str:
    v = value.strip()
    if v not in allowed:
        raise InvalidValue(f"{value!r} is not one of {', '.join(allowed)}")
    return v


def _no_zone(value: str) -> str:
    """ipaddress takes any text after '%' as an IPv6 zone id and prints it back: refused."""
    if "%" in value:
        raise InvalidValue(f"{value!r}: IPv6 zone ids ('%...') are not accepted")
    return value


def cidr(value: str) -> str:
    """One IPv4/IPv6 address or network, normalised (host bits are cleared: '10.0.0.1/8' -> '10.0.0.0/8')."""
    text = _no_zone(value.strip())
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidValue(f"{value!r} is not an IP address or CIDR") from None
    return str(net)


# Cost bounds per object: nginx -t took 11 s on one Ingress with 20,000 paths, and the
# directives of a CIDR list are repeated in every location of the Ingress.
MAX_PATHS_PER_INGRESS = 1000  # rule paths and TLS hosts together
MAX_AUTH_HEADER_LINES = 2000  # paths x auth-response-headers of one Ingress
MAX_CIDRS = 500


def cidr_list(value: str) -> tuple[str, ...]:
    items = [v for v in (x.strip() for x in value.split(",")) if v]
    if not items:
        raise InvalidValue("empty list of CIDRs")
    if len(items) > MAX_CIDRS:
        raise InvalidValue(f"{len(items)} CIDRs: at most {MAX_CIDRS}")
    return tuple(cidr(v) for v in items)


def ip_address(value: str) -> str:
    text = _no_zone(value.strip())
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidValue(f"{value!r} is not an IP address") from None
