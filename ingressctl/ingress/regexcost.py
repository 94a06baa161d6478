"""How much backtracking a path regex can cost: the ambiguous repeats it holds.

nginx matches every regex location on every request to its server, in a worker all tenants
share. A repeat is *ambiguous* when what may follow it can also be matched by the repeat
itself (`a*a*`, `.*/`): on a failing input PCRE then tries every split between the two, and k
ambiguous repeats in a row cost about n^(k+1) steps for an n-byte URI (`/a*a*a*a*a*a*a*a*[^a]`
spent PCRE's match limit, 15-40 ms per request). A repeat followed by something it cannot match
(`[0-9]+/`, a final `(.*)`) splits the input one way only.

Design choice: a conservative character-set analysis over Python's parse of the pattern
(the dialect is already restricted to what Python and PCRE read alike). Sets are exact over
Latin-1 and any code point above it is one more symbol, so "may overlap" is never missed;
groups, alternations and look-arounds are treated as matching anything of their members.
"""

from __future__ import annotations

from re import _constants as c  # type: ignore[attr-defined]
from re import _parser as p  # type: ignore[attr-defined]
from typing import Any

ABOVE = 256  # stands for every code point above Latin-1
ALL = frozenset(range(ABOVE + 1))
_DIGIT = frozenset(range(48, 58))
_SPACE = frozenset(b" \t\n\r\f\v")
_WORD = _DIGIT | frozenset(range(65, 91)) | frozenset(range(97, 123)) | {95} | {ABOVE}
_CATEGORIES = {
    c.CATEGORY_DIGIT: _DIGIT, c.CATEGORY_NOT_DIGIT: ALL - _DIGIT,
    c.CATEGORY_SPACE: _SPACE, c.CATEGORY_NOT_SPACE: ALL - _SPACE,
    c.CATEGORY_WORD: _WORD, c.CATEGORY_NOT_WORD: (ALL - _WORD) | {ABOVE},
}
_REPEATS = (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT)


def _char(code: int) -> frozenset[int]:
    if code >= ABOVE:
        return frozenset({ABOVE})
    ch = chr(code)
    return frozenset(ord(x) if ord(x) < ABOVE else ABOVE for x in {ch, ch.lower(), ch.upper()})  # ~* is caseless


def _in(items: list[tuple[Any, Any]]) -> frozenset[int]:
    out: set[int] = set()
    negate = False
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            out |= _char(av)
        elif op is c.RANGE:
            lo, hi = av
            for code in range(lo, min(hi, ABOVE - 1) + 1):
                out |= _char(code)
            if hi >= ABOVE:
                out.add(ABOVE)
        elif op is c.CATEGORY:
            out |= _CATEGORIES.get(av, ALL)
        else:
            out |= ALL
    return (ALL - out) | {ABOVE} if negate else frozenset(out)


def first(items: list[tuple[Any, Any]]) -> tuple[frozenset[int], bool]:
    """(the characters a match of `items` may start with, whether it may match empty)."""
    out: set[int] = set()
    for op, av in items:
        chars, empty = _first_one(op, av)
        out |= chars
        if not empty:
            return frozenset(out), False
    return frozenset(out), True


def _first_one(op: Any, av: Any) -> tuple[frozenset[int], bool]:
    if op is c.LITERAL:
        return _char(av), False
    if op is c.NOT_LITERAL:
        return ALL - _char(av) | {ABOVE}, False
    if op is c.ANY:
        return ALL - {10}, False
    if op is c.IN:
        return _in(list(av)), False
    if op in _REPEATS:
        chars, empty = first(list(av[2]))
        return chars, empty or av[0] == 0
    if op is c.SUBPATTERN:
        return first(list(av[3]))
    if op is c.ATOMIC_GROUP:
        return first(list(av))
    if op is c.BRANCH:
        alts = [first(list(alt)) for alt in av[1]]
        return frozenset().union(*(a for a, _ in alts)), any(e for _, e in alts)
    if op is c.GROUPREF:
        return ALL, True
    return frozenset(), True  # anchors, look-arounds: match no character


def _chars(items: list[tuple[Any, Any]]) -> frozenset[int]:
    """Every character a match of `items` may contain (conservatively)."""
    out: set[int] = set()
    for op, av in items:
        if op in (c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN):
            out |= _first_one(op, av)[0]
        elif op in _REPEATS:
            out |= _chars(list(av[2]))
        elif op is c.SUBPATTERN:
            out |= _chars(list(av[3]))
        elif op is c.ATOMIC_GROUP:
            out |= _chars(list(av))
        elif op is c.BRANCH:
            for alt in av[1]:
                out |= _chars(list(alt))
        elif op is c.GROUPREF:
            out |= ALL
    return frozenset(out)


def ambiguous_repeats(pattern: str) -> int:
    """How many repeats (more than once) in `pattern` overlap with what may follow them."""
    return _count(list(p.parse(pattern)), frozenset())


def _count(items: list[tuple[Any, Any]], after: frozenset[int]) -> int:
    """Ambiguous repeats in the sequence `items`, followed by something starting with `after`."""
    total = 0
    for i, (op, av) in enumerate(items):
        follow, empty = first(items[i + 1:])
        if empty:
            follow = follow | after
        if op in _REPEATS:
            if av[1] > 1 and op is not c.POSSESSIVE_REPEAT and _chars(list(av[2])) & follow:
                total += 1
            total += _count(list(av[2]), follow | first(list(av[2]))[0])
        elif op is c.SUBPATTERN:
            total += _count(list(av[3]), follow)
        elif op is c.ATOMIC_GROUP:
            total += _count(list(av), follow)
        elif op is c.BRANCH:
            total += max(_count(list(alt), follow) for alt in av[1])
    return total


__all__ = ["ambiguous_repeats"]
