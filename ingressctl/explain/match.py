"""nginx's selection rules over the model: which server block, which location.

Servers: an exact `server_name` (host or alias) first; then the wildcard hosts, which the
model renders as regexes matching exactly one extra label, in configuration order; else the
default server. Locations: an exact (`=`) match wins at once; otherwise the longest prefix
is remembered, the regexes are tried in configuration order and the first match wins; no
regex match leaves the longest prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..ingress.model import Location, Model, Server


@dataclass(frozen=True)
class Candidate:
    """One location of the server, as nginx considered it for this request."""

    match: str  # "= /foo", "/foo/", "~* ^/api"
    matched: bool
    chosen: bool
    why: str
    location: Location


def location_label(loc: Location) -> str:
    return f"{loc.modifier} {loc.regex_match}" if loc.is_regex else f"{loc.modifier} {loc.path}".strip()


def host_matches(pattern: str, host: str) -> bool:
    """Kubernetes host matching: exact, or `*.x` matching exactly one extra label."""
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return pattern == host


def select_server(model: Model, host: str, port: int = 0) -> tuple[Server, str]:
    """(server, why) for a Host, as nginx picks the server block. A `port` that a Gateway
    listener has (servers with `ports`) picks among that port's servers; any other port,
    or none, among the Ingress servers."""
    listener = bool(port) and any(port in s.ports for s in model.servers)
    servers = [s for s in model.servers if (port in s.ports if listener else not s.ports)]
    for s in servers:
        if s.host and not s.host.startswith("*.") and s.host == host:
            return s, f"exact server_name {host}"
        if host in s.aliases:
            return s, f"exact server_name {host} (server-alias of {s.host})"
    for s in servers:
        if s.host.startswith("*.") and s.any_depth_wildcard and host.endswith(s.host[1:]):
            return s, f"wildcard {s.host} (a Gateway wildcard: any number of labels before .{s.host[2:]})"
        if s.host.startswith("*.") and host_matches(s.host, host):
            return s, f"wildcard {s.host} (one label before .{s.host[2:]})"
    default = next(s for s in servers if s.is_default)
    return default, f"no server_name matches {host}: the default server"


def internal_paths(server: Server) -> set[str]:
    """Exact internal locations (auth_request, mirror): nginx answers 404 to clients."""
    return {p for loc in server.locations for p in (loc.auth_location, loc.mirror_location) if p}


def _regex_matches(loc: Location, uri: str) -> bool:
    flags = re.IGNORECASE if loc.modifier == "~*" else 0
    try:
        return re.match(loc.regex_match, uri, flags) is not None
    except re.error:
        return False


def select_location(server: Server, uri: str) -> tuple[Location | None, list[Candidate]]:
    """The location nginx uses for `uri` in `server` and every candidate with the reason."""
    locs = server.locations
    exact = next((loc for loc in locs if loc.modifier == "=" and loc.path == uri), None)
    prefixes = [loc for loc in locs if loc.modifier == "" and uri.startswith(loc.path)]
    longest = max(prefixes, key=lambda loc: len(loc.path), default=None)
    regex = None if exact else next((loc for loc in locs if loc.is_regex and _regex_matches(loc, uri)), None)
    chosen = exact or regex or longest
    out = []
    for loc in locs:
        if loc.modifier == "=":
            matched = loc.path == uri
            why = "exact match: wins at once" if matched else "exact: not equal"
        elif loc.is_regex:
            matched = _regex_matches(loc, uri)
            why = ("not tried: an exact location matched" if exact else
                   "first regex that matches, in configuration order: beats any prefix" if loc is regex else
                   "matches, but an earlier regex matched first" if matched else "regex does not match")
        else:
            matched = uri.startswith(loc.path)
            why = (("longest matching prefix, no regex matched" if loc is chosen else
                    "longest matching prefix, but an exact or regex location wins")
                   if loc is longest else "a longer prefix matches" if matched else "prefix does not match")
        out.append(Candidate(location_label(loc), matched, loc is chosen, why, loc))
    return chosen, out
