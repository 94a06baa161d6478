"""Snippets: tokenized like nginx, re-emitted by us, code-loading and file directives refused."""

from __future__ import annotations

import pytest

from ingressctl.ingress import values as v
from ingressctl.ingress.annotations.snippet import location_snippet, server_snippet, tokenize

ALLOWED = [
    # (snippet, re-emitted text)
    ('add_header X-A "b c";', 'add_header X-A "b c";'),
    ("add_header X-A b; # trailing comment", "add_header X-A b;"),
    ('more_set_headers "X-Served-By: me";', 'more_set_headers "X-Served-By: me";'),
    ("if ($http_x_debug = 1) { return 403; }", "if ($http_x_debug = 1) {\n    return 403;\n}"),
    ('add_header X "a;}{b";', 'add_header X "a;}{b";'),
    ("set $x ${host}abc;", 'set $x "${host}abc";'),
    ("rewrite ^/old/(.*)$ /new/$1 permanent;", "rewrite ^/old/(.*)$ /new/$1 permanent;"),
    ('add_header X "quote\\"inside";', 'add_header X "quote\\"inside";'),
    ("access_log logs/app.log;", "access_log logs/app.log;"),
]


@pytest.mark.parametrize(("text", "emitted"), ALLOWED)
def test_allowed_location_snippets_round_trip(text: str, emitted: str) -> None:
    directives = location_snippet(text)
    assert "\n".join(str(d) for d in directives) == emitted
    again = location_snippet("\n".join(str(d) for d in directives))
    assert again == directives


REFUSED = [
    ("load_module /tmp/evil.so;", "not allowed"),
    ("content_by_lua_block { ngx.say(1) }", "not allowed"),
    ("access_by_lua_file /tmp/x.lua;", "not allowed"),
    ("set_by_lua $x 'return 1';", "not allowed"),
    ("lua_need_request_body on;", "not allowed"),
    ("ssl_engine /proc/self/fd/9;", "not allowed"),
    ("include /etc/passwd;", "not allowed"),
    ("alias /var/run/secrets/;", "not allowed"),
    ("root /etc;", "not allowed"),
    ("perl_modules /tmp;", "not allowed"),
    ("js_import /tmp/x.js;", "not allowed"),
    ("access_log /var/log/x.log;", "relative path inside the state dir"),
    ("auth_basic_user_file ../../etc/shadow;", "relative path inside the state dir"),
    ("ssl_client_certificate $x;", "relative path inside the state dir"),
    ("client_body_temp_path /tmp/;", "relative path inside the state dir"),
    ("}", "unbalanced"),
    ("add_header X y; } location /leak { alias /;", "unbalanced"),
    ("location /x { return 200; }", "not allowed here"),
    ("server { listen 1; }", "not allowed here"),
    ("if ($x) { if ($y) { location /z { } } }", "not allowed here"),
    ("add_header X y", "not terminated"),
    ('add_header X "unterminated;', "unterminated"),
    ("if ($x) { return 403;", "not closed"),
    ("; add_header X y;", "unexpected"),
    ("Add_Header X y;", "not a directive name"),
    ("add_header X\x00 y;", "NUL"),
    ("add_header X " + "a" * 9000 + ";", "longer than"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_refused_location_snippets(text: str, reason: str) -> None:
    with pytest.raises(v.InvalidValue, match=None) as e:
        location_snippet(text)
    assert reason in str(e.value)


def test_server_snippet_allows_locations_but_not_code_inside() -> None:
    ds = server_snippet("location = /robots.txt { return 200 'no'; }")
    assert str(ds[0]) == 'location = /robots.txt {\n    return 200 no;\n}'
    with pytest.raises(v.InvalidValue, match="not allowed"):
        server_snippet("location /t { alias /var/run/secrets/; }")
    with pytest.raises(v.InvalidValue, match="not allowed here"):
        server_snippet("location /t { location /u { } }")


def test_tokenizer_keeps_quoted_punctuation_as_words() -> None:
    assert tokenize('a "b;c" {d}') == [("a", True), ("b;c", True), ("{", False), ("d", True), ("}", False)]


def test_rendering_is_indented_and_never_contains_user_braces_unquoted() -> None:
    (d,) = location_snippet('add_header X "}; root /etc; {";')
    assert d.render(4) == '    add_header X "}; root /etc; {";'
