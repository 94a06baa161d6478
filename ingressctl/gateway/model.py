"""The part of the nginx model only Gateway API routes need: request dispatch by conditions.

An HTTPRoute match can test the path, headers, query parameters and method together, and
the spec orders matches across routes. nginx locations test only the path, so a Gateway
host is one `location /` whose target comes from maps: one map per condition (a regex on
one nginx variable, giving 1 or 0), and one map over the concatenated flags whose regexes
are listed in the spec's precedence order (nginx tries map regexes in order of appearance).

Design choice: every regex here is built by `gateway.build` from validated values (literal
values are written byte by byte as `\\xHH` escapes), so templates only print fields.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    """`map <variable> <flag> { "~<regex>" 1; default 0; }`."""

    variable: str  # an nginx variable: $uri, $request_method, $http_<name>, $arg_<name>
    regex: str
    flag: str  # $gw_c_<dispatch>_<index>


@dataclass(frozen=True)
class Choice:
    """One route match: the flags it needs (a regex over the concatenated flags) and its target."""

    pattern: str  # e.g. "^1.1": flags 0 and 2 must be 1
    target: str  # an upstream name, "404" / "500" / "503", or a Split variable
    route: str  # "ns/name" of the HTTPRoute (comment for readers)
    kind: str = "HTTPRoute"  # or GRPCRoute
    rule: int = 0  # spec.rules[rule].matches[match] of the route (explain names it)
    match: int = 0


@dataclass(frozen=True)
class Split:
    """`split_clients $request_id <variable> { <percent> <target>; ... * <last>; }`: weighted backendRefs."""

    variable: str  # $gw_w_<dispatch>_<index>
    shares: tuple[tuple[str, str], ...]  # ("37.50%", target)
    last: str  # takes the rest


@dataclass(frozen=True)
class HeaderEntry:
    pattern: str  # the same pattern as the choice it belongs to
    keep: bool  # pass the client's value on
    value: str = ""  # else this value ("" = the header is not sent)
    append: bool = False  # add: the client's value (if any), ',' and this value


@dataclass(frozen=True)
class HeaderMap:
    """A value that differs per choice of a dispatch (mostly a header a HeaderModifier sets or
    removes): a map with the same patterns, in the same order, giving the value."""

    name: str  # validated header name
    variable: str  # $gw_h_<dispatch>_<index>
    original: str  # $http_<name>: the client's value, for choices that leave it alone
    entries: tuple[HeaderEntry, ...]

    @property
    def appends(self) -> bool:
        return any(e.append for e in self.entries)

    @property
    def prefix_variable(self) -> str:
        """The client's value followed by ',' ("" without one), for `add`; ${...} form."""
        return "${" + self.variable[1:] + "_p}"

    @property
    def prefix_map_variable(self) -> str:
        return self.variable + "_p"

@dataclass(frozen=True)
class UriEntry:
    pattern: str  # over the dispatch's `uri_key`: the choice's flags, '|', then the path
    value: str  # may name $1 (the path after a replaced prefix), $host, $request_uri, $is_args$args


@dataclass(frozen=True)
class UriMap:
    """A value per choice that depends on the request path too (a redirect's Location, a
    URLRewrite's new path): `map "<flags>|$uri" <variable>`, entries in the choices' order."""

    variable: str
    entries: tuple[UriEntry, ...]


@dataclass(frozen=True)
class Dispatch:
    id: int
    conditions: tuple[Condition, ...]
    choices: tuple[Choice, ...]  # in the spec's precedence order; a target may be a Split variable
    splits: tuple[Split, ...] = ()
    headers: tuple[HeaderMap, ...] = ()
    response_headers: tuple[HeaderMap, ...] = ()  # ResponseHeaderModifier (original: $sent_http_<name>)
    locations: UriMap | None = None  # RequestRedirect: the Location per choice
    rewrites: UriMap | None = None  # URLRewrite: the new path ("" = unchanged)
    host: HeaderMap | None = None  # URLRewrite hostname: the Host header sent (original: $host)
    mirrors: tuple[HeaderMap, ...] = ()  # RequestMirror: per slot, the upstream a copy goes to ("" = none)
    timeouts: HeaderMap | None = None  # rule timeouts: "<seconds>" for the Lua balancer ("" = the defaults)

    @property
    def variable(self) -> str:
        return f"$gw_d_{self.id}"

    @property
    def redirects(self) -> bool:
        return self.locations is not None

    @property
    def value_maps(self) -> tuple[HeaderMap, ...]:
        """Every per-choice value map, for the template."""
        extra = tuple(m for m in (self.host, self.timeouts) if m is not None)
        return self.headers + self.response_headers + self.mirrors + extra

    @property
    def uri_maps(self) -> tuple[UriMap, ...]:
        return tuple(m for m in (self.locations, self.rewrites) if m is not None)

    @property
    def uri_key(self) -> str:
        return self.key + "|$uri"

    @property
    def key(self) -> str:
        """The string the final map looks at: every flag, in order ("" when there are none)."""
        return "".join(c.flag for c in self.conditions) or "x"
