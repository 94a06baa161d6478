"""One server block for many hosts whose blocks differ only in their name and in values the
locations `set` (issue 18).

nginx's cost per server block dominates loading a large configuration: Debian's
lua-nginx-module (0.10.23) builds an OpenSSL context for every merged location
configuration, and every server has at least two (its own and `location /`). At 10,000
Ingresses that is 3.3 s of `nginx -t` and 550 MB; the same hosts in shared blocks load in
0.1 s and 22 MB (bench/nginx_load.py).

This is a pass over the rendered text, so it holds for override templates too: blocks are
compared with their server name and the values of a few `set` lines taken out; blocks that
are then equal share one block, which lists all their names and takes each such value from
a `map $host` (nginx picked the block by that very name, so the map gives exactly the value
the host's own block would have set). What a block can differ in and still be shared is
only those values: a different path, annotation, certificate line or snippet makes it a
different block. Blocks with a regex or wildcard name, several names, the default server,
`$server_name` (which would name the first host) or `ssl_certificate` (an SSL context of
their own) are left as they are, and nothing is shared when `$server_name` is used outside
the server blocks (a log format, an http snippet). Groups smaller than `min_group` stay apart, so a small
configuration reads as one block per host.

Request metrics label a request with its host: in a shared block `$ingressctl_host` holds
it (set from `$host`), since `$server_name` is the block's first name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIN_GROUP = 16  # hosts with the same block before they share one

_NAME = re.compile(r"^        server_name ([^\s;~\"'{}$\\]+);\n", re.M)
_ANY_NAME = re.compile(r"^\s+server_name\s", re.M)
# per-location values a shared block takes from maps: which backend, and its labels
_VALUES = ("proxy_upstream_name", "namespace", "ingress_name", "service_name", "service_port",
           "ingressctl_upstream", "ingressctl_metric_labels", "ingressctl_namespace", "ingressctl_ingress_name",
           "ingressctl_service_name", "ingressctl_service_port")
_SET = re.compile(r"^( +set \$(?:" + "|".join(_VALUES) + r") )(\"(?:[^\"\\\n]|\\.)*\")(;.*)$", re.M)
_KEEP_APART = ("default_server", "$server_name", "ssl_certificate", "@@SLOT", "@@NAME")  # placeholders: never from a value
_MAP_WORDS = frozenset({"default", "hostnames", "include", "volatile"})  # map keywords, even quoted
NAMES_PER_LINE = 32


@dataclass
class _Group:
    shape: str  # the block with its name line and each value replaced by a slot
    names: list[str] = field(default_factory=list)
    values: list[list[str]] = field(default_factory=list)  # per slot, per name (quoted literals)


def merge_servers(text: str, min_group: int = MIN_GROUP) -> str:
    """`text` with blocks that differ only in name and `set` values merged (see module doc)."""
    if min_group <= 0:
        return text
    blocks = block_spans(text)
    edges = [0, *(i for span in blocks for i in span), len(text)]
    if any("$server_name" in text[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)):
        return text  # used outside the server blocks (a log format, an http snippet): every host keeps its own
    if len(_shapes) > 2 * len(blocks) + 1000:  # mostly blocks gone meanwhile: start over
        _shapes.clear()
    groups: dict[str, _Group] = {}
    owner: list[_Group | None] = []
    for start, end in blocks:
        owner.append(_shape(text[start:end], groups))
    shared = {id(g) for g in groups.values() if len(g.names) >= min_group}
    out: list[str] = []
    pos = 0
    written: set[int] = set()
    number = 0
    for (start, end), g in zip(blocks, owner, strict=True):
        out.append(text[pos:start])
        pos = end
        if g is None or id(g) not in shared:
            out.append(text[start:end])
        elif id(g) not in written:
            written.add(id(g))
            out.append(_shared_block(g, number))
            number += 1
    out.append(text[pos:])
    return "".join(out)


_OPEN, _CLOSE = "\n    server {\n", "\n    }\n"


def block_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each server block with its comment line: what `_BLOCK.finditer` finds,
    found with str.find (a regex takes ~0.1 s over 10,000 blocks)."""
    out: list[tuple[int, int]] = []
    i = text.find(_OPEN)
    while i != -1:
        line = text.rfind("\n", 0, i) + 1  # the line before `server {`
        close = text.find(_CLOSE, i + len(_OPEN) - 1)
        if close == -1:
            break
        if text.startswith("    # ", line):
            out.append((line, close + len(_CLOSE)))
            i = text.find(_OPEN, close + len(_CLOSE) - 1)
        else:
            i = text.find(_OPEN, i + 1)
    return out


_Shape = tuple[str, str, tuple[str, ...]]  # name, shape, values
_APART: _Shape = ("", "", ())  # a block that is not shared
_shapes: dict[str, _Shape] = {}  # block text -> its shape (the same blocks come back every render)
_SHAPES_MAX = 200_000  # and at most twice the blocks of the last text (merge_servers)


def _shape(block: str, groups: dict[str, _Group]) -> _Group | None:
    found = _shapes.get(block)  # one lookup: the sync loop and the webhook render at once
    if found is None:
        if len(_shapes) >= _SHAPES_MAX:
            _shapes.clear()
        found = _shapes[block] = _shape_of(block)
    if found is _APART:
        return None
    name, shape, values = found
    g = groups.get(shape)
    if g is None:
        g = groups[shape] = _Group(shape, values=[[] for _ in values])
    g.names.append(name)
    for i, v in enumerate(values):
        g.values[i].append(v)
    return g


def _shape_of(block: str) -> _Shape:
    if any(word in block for word in _KEEP_APART):
        return _APART
    names = _NAME.findall(block)
    if len(names) != 1 or names[0] in _MAP_WORDS or len(_ANY_NAME.findall(block)) != 1:
        return _APART
    body = block.split("\n", 1)[1]  # without the "# host" comment
    body = _NAME.sub("@@NAME@@\n", body)
    values: list[str] = []

    def slot(m: re.Match[str]) -> str:
        values.append(m.group(2))
        return f"{m.group(1)}@@SLOT{len(values) - 1}@@{m.group(3)}"

    return names[0], _SET.sub(slot, body), tuple(values)


def _shared_block(g: _Group, number: int) -> str:
    maps: list[str] = []
    variables: dict[tuple[str, ...], str] = {}  # one map per distinct list of values
    body = g.shape
    for i, values in enumerate(g.values):
        if len(set(values)) == 1:  # the same for every host: stays a literal
            value = values[0]
        elif tuple(values) in variables:
            value = variables[tuple(values)]
        else:
            value = variables[tuple(values)] = f"$ingressctl_m{number}_{i}"
            entries = "".join(f'        "{n}" {v};\n' for n, v in zip(g.names, values, strict=True))
            maps.append(f'    map $host {value} {{\n        default "";\n{entries}    }}\n')
        body = body.replace(f"@@SLOT{i}@@", value, 1)
    names = "".join(f"        server_name {' '.join(g.names[k:k + NAMES_PER_LINE])};\n"
                    for k in range(0, len(g.names), NAMES_PER_LINE))
    names += "        set $ingressctl_host $host;  # request metrics: $server_name is the first name here\n"
    head = f"    # {len(g.names)} hosts with the same block share it (nginx/merge.py): {g.names[0]} ...\n"
    return "".join(maps) + head + body.replace("@@NAME@@\n", names, 1)
