"""Second line of defence: scan a rendered nginx.conf for directives no template can produce.

The validators in `ingress/values.py` and the `q` filter should already make injection
impossible. This scan assumes they failed. It tokenizes the configuration the way nginx
does (words, quotes, `;`, `{`, `}`, `#` comments, `${var}`), builds the directive tree, and
compares the configuration rendered *with* the candidate Ingress to the one rendered
*without* it. Every directive the candidate added must be one the templates can emit in
that context (the vocabulary is read from the template sources themselves), must not be a
dangerous directive (`load_module`, `ssl_engine`, `*_by_lua*`, `include`, `alias`, `root`,
...), and must not point at a sensitive file system path. A `*_by_lua_block` is read as
lua-nginx-module reads it (its body is Lua, skipped to the matching brace) and passes only
when its code has the shape of a template's own Lua block.

Design choice: the allowed vocabulary is derived from the template text (Jinja tags
stripped, expressions replaced by a placeholder word), never written by hand, so a template
change cannot silently widen or break the scan.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

FORBIDDEN_DIRECTIVES = frozenset({
    "load_module", "ssl_engine", "include", "alias", "root", "env", "user", "daemon",
    "master_process", "working_directory", "perl", "perl_modules", "perl_require", "perl_set",
    "js_import", "js_include", "js_content", "js_set", "access_by_lua", "client_body_temp_path",
    "ssl_password_file", "lua_package_path", "lua_package_cpath",
})
FORBIDDEN_PATH_PREFIXES = ("/etc", "/proc", "/sys", "/dev", "/var/run/secrets", "/run/secrets", "/root")
_URI_DIRECTIVES = frozenset({"location"})  # their arguments are request URIs, not files


class ConfigSyntaxError(ValueError):
    """The text is not something nginx could parse (unbalanced braces, open quote, ...)."""


@dataclass(frozen=True)
class Token:
    text: str  # without quotes
    line: int
    quoted: bool
    lua: bool = False  # the raw body of a *_by_lua_block


_LUA_LONG_BRACKET = re.compile(r"\[(=*)\[")


def _lua_block_end(text: str, i: int, line: int) -> int:
    """Index of the `}` closing a Lua block whose body starts at `i`."""
    depth, n = 1, len(text)
    while i < n:
        c = text[i]
        long = _LUA_LONG_BRACKET.match(text, i + 2 if text.startswith("--", i) else i)
        if long and (c == "[" or text.startswith("--", i)):
            close = text.find("]" + long.group(1) + "]", long.end())
            if close < 0:
                break
            i = close + len(long.group(1)) + 2
        elif text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != c:
                break
            i = j + 1
        else:
            depth += {"{": 1, "}": -1}.get(c, 0)
            if depth == 0:
                return i
            i += 1
    raise ConfigSyntaxError(f"line {line}: unterminated Lua block")


def tokenize(text: str) -> Iterator[Token]:
    """nginx's lexer in miniature: words, quoted strings and the three syntax characters.

    The body of a `*_by_lua_block { ... }` is Lua, not nginx syntax: like lua-nginx-module,
    the lexer skips to the matching brace (Lua strings and comments respected) and yields
    the body as one token with `lua=True`, between the `{` and the `}`.
    """
    i, n, line, first = 0, len(text), 1, ""
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "{" and first.endswith("_by_lua_block"):
            end = _lua_block_end(text, i + 1, line)
            yield Token(c, line, False)
            yield Token(text[i + 1:end], line, False, lua=True)
            line += text.count("\n", i, end)
            yield Token("}", line, False)
            i, first = end + 1, ""
        elif c in ";{}":
            yield Token(c, line, False)
            i, first = i + 1, ""
        elif c in "\"'":
            start_line, j, buf = line, i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ConfigSyntaxError(f"line {start_line}: unterminated quoted string")
            yield Token("".join(buf), start_line, True)
            i, first = j + 1, first or "\0"
        else:
            j, buf = i, []
            while j < n and text[j] not in " \t\r\n;{}\"'":
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                elif text[j] == "$" and j + 1 < n and text[j + 1] == "{":
                    end = text.find("}", j)
                    if end < 0:
                        raise ConfigSyntaxError(f"line {line}: unterminated ${{variable}}")
                    buf.append(text[j:end + 1])
                    j = end + 1
                    continue
                buf.append(text[j])
                j += 1
            word = "".join(buf)
            yield Token(word, line, False)
            i, first = j, first or word


@dataclass(frozen=True)
class Directive:
    context: tuple[str, ...]  # names of the enclosing blocks, outermost first
    name: str
    args: tuple[str, ...]
    line: int
    lua: str | None = None  # the body of a *_by_lua_block

    def __str__(self) -> str:
        where = " > ".join(self.context) or "main"
        body = " { <Lua> }" if self.lua is not None else ""
        return f"{self.name} {' '.join(self.args)}{body} (line {self.line}, in {where})".replace("  ", " ")


def directives(text: str) -> list[Directive]:
    """Every directive (block openers included) with its context; ConfigSyntaxError if malformed."""
    out: list[Directive] = []
    stack: list[str] = []
    words: list[Token] = []
    for tok in tokenize(text):
        if tok.lua:
            out[-1] = dataclasses.replace(out[-1], lua=tok.text)
            continue
        if tok.quoted or tok.text not in ";{}":
            words.append(tok)
            continue
        if tok.text == "}":
            if words:
                raise ConfigSyntaxError(f"line {tok.line}: '}}' after {words[0].text!r} without ';'")
            if not stack:
                raise ConfigSyntaxError(f"line {tok.line}: unexpected '}}'")
            stack.pop()
            continue
        if not words:
            raise ConfigSyntaxError(f"line {tok.line}: unexpected {tok.text!r}")
        out.append(Directive(tuple(stack), words[0].text, tuple(w.text for w in words[1:]), words[0].line))
        if tok.text == "{":
            stack.append(words[0].text)
        words = []
    if words or stack:
        raise ConfigSyntaxError("unexpected end of configuration (missing ';' or '}')")
    return out


# --- the vocabulary the templates can produce ------------------------------------------

_INCLUDE = re.compile(r"""\{%-?\s*include\s+["']([^"']+)["']\s*-?%\}""")
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_STATEMENT = re.compile(r"\{%.*?%\}", re.DOTALL)
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_STANDALONE = re.compile(r"^[ \t]*\{\{[^\n]*?\}\}[ \t]*$", re.MULTILINE)


def _expand(name: str, sources: Mapping[str, str], depth: int = 0) -> str:
    if depth > 8:
        raise ConfigSyntaxError(f"template include nesting too deep at {name}")
    text = _COMMENT.sub("", sources[name])
    return _INCLUDE.sub(lambda m: _expand(m.group(1), sources, depth + 1), text)


Vocabulary = frozenset[tuple[tuple[str, ...], str]]
SLOT = "X"  # what a template expression becomes in the vocabulary

_LUA_TOKENS = re.compile(r"""--\[(=*)\[.*?\]\1\]|--[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|\[(=*)\[.*?\]\2\]""",
                         re.DOTALL)


def lua_shape(body: str) -> str:
    """Lua code with comments dropped and every string literal (or template slot) made `X`."""
    code = _LUA_TOKENS.sub(lambda m: " " if m.group(0).startswith("--") else SLOT, body)
    return " ".join(code.split())


def _entry(d: Directive) -> str:
    """The vocabulary word of a directive: its name, or for a Lua block its name and code shape."""
    return d.name if d.lua is None else f"{d.name} {{ {lua_shape(d.lua)} }}"


def template_vocabulary(sources: Mapping[str, str], root: str = "nginx.conf.j2") -> Vocabulary:
    """(context, directive name) pairs the templates can emit, whatever the model holds.

    A `*_by_lua_block` enters as its name plus the shape of its code (`lua_shape`), so a
    rendered Lua block passes only if it is a template's block with other string values.
    """
    text = _STANDALONE.sub("", _expand(root, sources))  # whole-directive slots (snippets): no vocabulary
    text = _EXPRESSION.sub(SLOT, _STATEMENT.sub("", text))
    return frozenset((d.context, _entry(d)) for d in directives(text))


def _known(d: Directive, vocabulary: Vocabulary) -> bool:
    """In the vocabulary by name, or where a template writes a value as the name (geo, map entries)."""
    return (d.context, _entry(d)) in vocabulary or (d.lua is None and (d.context, SLOT) in vocabulary)


# --- the comparison ---------------------------------------------------------------------


def _key(d: Directive) -> tuple[tuple[str, ...], str, tuple[str, ...], str | None]:
    return (d.context, d.name, d.args, d.lua)


def _path_finding(d: Directive) -> str:
    if d.name in _URI_DIRECTIVES:
        return ""
    for arg in d.args:
        for word in re.split(r"[\s=,]", arg):
            if any(word == p or word.startswith(p + "/") for p in FORBIDDEN_PATH_PREFIXES):
                return f"directive {d} refers to the sensitive path {word!r}"
    return ""


def scan(before: str, after: str, vocabulary: Vocabulary | None,
         lua_vocabulary: Vocabulary | None = None) -> list[str]:
    """Findings about what `after` adds to `before`; an empty list means nothing suspicious.

    `vocabulary=None` skips the "only template directives" rule (snippet annotations enabled:
    the operator accepted user-written directives); the deny-list and path rules still apply,
    and a Lua block still passes only if it is a template's own (`lua_vocabulary`).
    """
    lua_known = vocabulary if vocabulary is not None else lua_vocabulary
    try:
        after_dirs = directives(after)
    except ConfigSyntaxError as e:
        return [f"rendered configuration does not parse: {e}"]
    try:
        seen = Counter(_key(d) for d in directives(before))
    except ConfigSyntaxError:
        seen = Counter()
    findings: list[str] = []
    for d in after_dirs:
        k = _key(d)
        if seen[k] > 0:
            seen[k] -= 1
            continue
        if d.lua is not None and lua_known is not None and (d.context, _entry(d)) in lua_known:
            continue  # a template's own Lua block (e.g. the balancer of a new upstream)
        if d.name in FORBIDDEN_DIRECTIVES or "_by_lua" in d.name or d.name.startswith("lua_"):
            findings.append(f"directive {d} is never allowed from an Ingress")
        elif vocabulary is not None and not _known(d, vocabulary):
            findings.append(f"directive {d} is not one the templates produce in that context")
        else:
            f = _path_finding(d)
            if f:
                findings.append(f)
    return findings
