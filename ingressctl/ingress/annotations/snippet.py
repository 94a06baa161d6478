"""`configuration-snippet` and `server-snippet`: raw nginx, parsed and re-emitted.

A snippet is tokenized the way nginx reads its configuration (words, quoted strings, `;`,
`{`, `}`, `#` comments, backslash escapes) into a tree of `Directive`s. The tree is checked
against a deny-list of directives that load code or read files (`load_module`, `include`,
`*_by_lua*`, `perl*`, `ssl_engine`, `alias`, `root`, ...), file arguments must be relative
paths inside the nginx prefix (the state dir), and only a few block directives may open a
brace. Templates print the re-serialized tree, never the user's text.

Design choice: the snippet is re-emitted from tokens, each argument quoted by us, so a
stray `}` or `;` inside the user's text can never close a block we opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import values as v
from . import Annotation, register

MAX_SNIPPET = 8192
MAX_DEPTH = 3

_DENIED_RE = re.compile(
    r"^(load_module|include|ssl_engine|alias|root|env|daemon|master_process|user|pid|"
    r"working_directory|lua_.*|.*_by_lua.*|perl.*|js_.*|njs_.*|ssl_preread.*|"
    r"(proxy|fastcgi|uwsgi|scgi)_store.*|ssl_password_file)$")
_DENIED_ARG_RE = re.compile(r"^(load_module|include|ssl_engine|alias|root|lua_.*|.*_by_lua.*|perl.*|js_.*)$")
_FILE_DIRECTIVES = frozenset({
    "access_log", "error_log", "auth_basic_user_file", "ssl_certificate", "ssl_certificate_key",
    "ssl_client_certificate", "ssl_trusted_certificate", "ssl_crl", "ssl_dhparam", "ssl_stapling_file",
    "ssl_session_ticket_key", "proxy_ssl_certificate", "proxy_ssl_certificate_key",
    "proxy_ssl_trusted_certificate", "proxy_ssl_crl", "grpc_ssl_certificate", "grpc_ssl_certificate_key",
    "grpc_ssl_trusted_certificate", "client_body_temp_path", "proxy_temp_path", "proxy_cache_path",
    "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "open_log_file_cache", "try_files",
    "geoip_country", "geoip_city", "geoip_org", "xslt_stylesheet",
})
_BLOCKS = {"location": frozenset({"if", "limit_except"}),
           "server": frozenset({"location", "if", "limit_except"})}
_BARE_RE = re.compile(r"^[A-Za-z0-9_./:$@=+,~%*^?!|()\[\]<>&-]+\Z")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
_EMIT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\r": "\\r", "\n": "\\n"}


@dataclass(frozen=True)
class Directive:
    """One parsed directive; `block` is None for `name args;`, a tuple for `name args { ... }`."""

    name: str
    args: tuple[str, ...]
    block: tuple[Directive, ...] | None = None

    def lines(self, indent: str = "") -> list[str]:
        head = " ".join([self.name, *(_emit(a) for a in self.args)])
        if self.block is None:
            return [f"{indent}{head};"]
        out = [f"{indent}{head} {{"]
        for d in self.block:
            out.extend(d.lines(indent + "    "))
        return out + [f"{indent}}}"]

    def render(self, indent: int) -> str:
        """The directive as nginx text, every line indented by `indent` spaces."""
        return "\n".join(self.lines(" " * indent))

    def __str__(self) -> str:
        return self.render(0)


def _emit(arg: str) -> str:
    if _BARE_RE.match(arg) and "${" not in arg:
        return arg
    return '"' + "".join(_EMIT_ESCAPES.get(c, c) for c in arg) + '"'


Token = tuple[str, bool]  # text, is_word (False for the punctuation ; { })


def tokenize(text: str) -> list[Token]:
    """nginx's lexer, reduced: words (quoted or bare) and the punctuation `;`, `{`, `}`."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in ";{}":
            tokens.append((c, False))
            i += 1
        elif c in "\"'":
            word, i = _quoted(text, i)
            tokens.append((word, True))
        else:
            word, i = _bare(text, i)
            tokens.append((word, True))
    return tokens


def _unescape(text: str, i: int) -> tuple[str, int]:
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt in _ESCAPES:
        return _ESCAPES[nxt], i + 2
    return "\\", i + 1


def _quoted(text: str, i: int) -> tuple[str, int]:
    quote, i, out = text[i], i + 1, []
    while i < len(text):
        c = text[i]
        if c == "\\":
            ch, i = _unescape(text, i)
            out.append(ch)
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise v.InvalidValue("unterminated quoted string")


def _bare(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if c == "\\":
            ch, i = _unescape(text, i)
            out.append(ch)
        elif c == "$" and text[i + 1:i + 2] == "{":
            end = text.find("}", i)
            if end < 0:
                raise v.InvalidValue("unterminated ${...} variable")
            out.append(text[i:end + 1])
            i = end + 1
        elif c.isspace() or c in ";{}\"'":
            break
        else:
            out.append(c)
            i += 1
    return "".join(out), i


def parse(text: str, context: str) -> tuple[Directive, ...]:
    """Parse and check a snippet for `context` ("location" or "server"); raises InvalidValue."""
    if len(text) > MAX_SNIPPET:
        raise v.InvalidValue(f"snippet is longer than {MAX_SNIPPET} characters")
    if "\x00" in text:
        raise v.InvalidValue("snippet contains a NUL byte")
    tokens = tokenize(text)
    directives, pos = _directives(tokens, 0, _BLOCKS[context], 0)
    if pos != len(tokens):
        raise v.InvalidValue("unbalanced '}' in snippet")
    return directives


def _directives(tokens: list[Token], pos: int, blocks: frozenset[str], depth: int) -> tuple[tuple[Directive, ...], int]:
    out: list[Directive] = []
    while pos < len(tokens) and tokens[pos] != ("}", False):
        name, is_word = tokens[pos]
        if not is_word:
            raise v.InvalidValue(f"unexpected {name!r} in snippet")
        args: list[str] = []
        pos += 1
        while pos < len(tokens) and tokens[pos][1]:
            args.append(tokens[pos][0])
            pos += 1
        if pos >= len(tokens):
            raise v.InvalidValue(f"directive {name!r} is not terminated by ';'")
        _check(name, args)
        if tokens[pos][0] == ";":
            out.append(Directive(name, tuple(args)))
            pos += 1
            continue
        if tokens[pos][0] != "{" or name not in blocks or depth >= MAX_DEPTH:
            raise v.InvalidValue(f"block directive {name!r} is not allowed here")
        inner, pos = _directives(tokens, pos + 1, blocks - {"location"} | {"if", "limit_except"}, depth + 1)
        if pos >= len(tokens):
            raise v.InvalidValue(f"block {name!r} is not closed")
        out.append(Directive(name, tuple(args), inner))
        pos += 1
    return tuple(out), pos


def _check(name: str, args: list[str]) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
        raise v.InvalidValue(f"{name!r} is not a directive name")
    if _DENIED_RE.match(name):
        raise v.InvalidValue(f"directive {name!r} is not allowed in snippets")
    for a in args:
        if any(ord(c) < 32 and c not in "\t\r\n" for c in a):
            raise v.InvalidValue(f"directive {name!r} has an argument with control characters")
        if _DENIED_ARG_RE.match(a):  # e.g. "x\nload_module ...": a forbidden name hiding as an argument
            raise v.InvalidValue(f"directive {name!r}: argument {a!r} names a directive that is not allowed")
    if name in _FILE_DIRECTIVES:
        for a in args:
            if a.startswith(("/", "~")) or ".." in a or "$" in a:
                raise v.InvalidValue(
                    f"directive {name!r}: file argument {a!r} must be a relative path inside the state dir")


def location_snippet(text: str) -> tuple[Directive, ...]:
    return parse(text, "location")


def server_snippet(text: str) -> tuple[Directive, ...]:
    return parse(text, "server")


ANNOTATIONS = (
    Annotation("configuration-snippet", "configuration_snippet", location_snippet, "nginx snippet", "",
               "nginx directives added to each location of this Ingress (only with "
               "allow-snippet-annotations; code-loading and file directives are refused).",
               risk="Critical", snippet=True),
    Annotation("auth-snippet", "auth_snippet", location_snippet, "nginx snippet", "",
               "nginx directives added to the internal auth-url location (only with allow-snippet-annotations; "
               "code-loading and file directives are refused).", risk="Critical", snippet=True),
    Annotation("server-snippet", "server_snippet", server_snippet, "nginx snippet", "",
               "nginx directives added to the server block of this Ingress's hosts (only with "
               "allow-snippet-annotations; code-loading and file directives are refused).",
               risk="Critical", snippet=True),
)
register(*ANNOTATIONS)
