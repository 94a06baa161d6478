"""The rendered-config scan: it must catch what the validators would have let through."""

from __future__ import annotations

import pytest

from ingressctl.admission.scan import (
    ConfigSyntaxError,
    directives,
    scan,
    template_vocabulary,
    tokenize,
)
from ingressctl.nginx.render import Renderer

BEFORE = """
worker_processes auto;
http {
    server {
        server_name a.example.com;
        location / {
            set $proxy_upstream_name "-";
            return 404;
        }
    }
}
"""


def with_location(body: str, path: str = '"/x"') -> str:
    """BEFORE plus one more location carrying `body` (what a candidate would add)."""
    return BEFORE.replace("    }\n}\n", f"        location {path} {{\n{body}\n        }}\n    }}\n}}\n")


VOCAB = template_vocabulary(Renderer().sources())


def test_vocabulary_comes_from_the_templates() -> None:
    assert (("http", "server", "location"), "proxy_pass") in VOCAB
    assert (("http", "upstream"), "server") in VOCAB
    assert ((), "load_module") in VOCAB  # operator-set modules, never from an Ingress
    assert not any(name in ("root", "alias", "include") for _, name in VOCAB)


def test_a_normal_location_passes() -> None:
    after = with_location('            set $proxy_upstream_name "u";\n            proxy_pass http://u;')
    assert scan(BEFORE, after, VOCAB) == []


@pytest.mark.parametrize("body,finding", [
    ("load_module /tmp/evil.so;", "never allowed"),
    ("ssl_engine /proc/self/fd/3;", "never allowed"),
    ("content_by_lua_block { ngx.say(1); }", "never allowed"),
    ("content_by_lua_block { os.execute('id') }", "never allowed"),  # Lua is read as nginx does
    ("access_by_lua_file /tmp/x.lua;", "never allowed"),
    ("include /etc/passwd;", "never allowed"),
    ("alias /var/run/secrets/kubernetes.io/serviceaccount/;", "never allowed"),
    ("root /;", "never allowed"),
    ("lua_package_path /tmp/?.lua;", "never allowed"),
    ("autoindex on;", "not one the templates produce"),
    ("sendfile_max_chunk 1m;", "not one the templates produce"),
    ("proxy_pass http://u; }\n server { listen 1; ", "not one the templates produce"),
    ("proxy_set_header X-Token /var/run/secrets/kubernetes.io/serviceaccount/token;", "sensitive path"),
    ("proxy_pass http://u/etc;", ""),  # a URL path is not a file: no finding
    ("return 200 /proc/self/environ;", "sensitive path"),
    ('proxy_pass "http://u; } location /y { root";', ""),  # one quoted word: harmless
    ('proxy_pass "http://u; root /etc";', "sensitive path"),  # still, no file paths in words
])
def test_added_directives_are_judged(body: str, finding: str) -> None:
    findings = scan(BEFORE, with_location(body), VOCAB)
    if finding:
        assert findings and finding in findings[0], findings
    else:
        assert findings == []


def test_location_uri_under_etc_is_not_a_file_path() -> None:
    assert scan(BEFORE, with_location("return 404;", path="/etc/"), VOCAB) == []


@pytest.mark.parametrize("after", [
    BEFORE + "}",
    BEFORE.replace("return 404;", "return 404"),
    BEFORE.replace('"-"', '"-'),
    BEFORE + "http {",
])
def test_configuration_that_does_not_parse_is_a_finding(after: str) -> None:
    assert "does not parse" in scan(BEFORE, after, VOCAB)[0]


def test_tokenizer_follows_nginx_rules() -> None:
    toks = [(t.text, t.quoted) for t in tokenize('a "b c" \'d;\' e\\;f ${g}h {x;} # comment ;\n')]
    assert toks == [("a", False), ("b c", True), ("d;", True), ("e;f", False), ("${g}h", False),
                    ("{", False), ("x", False), (";", False), ("}", False)]


def test_directives_carry_their_context() -> None:
    ds = directives(BEFORE)
    assert [(d.context, d.name) for d in ds][-2:] == [
        (("http", "server", "location"), "set"), (("http", "server", "location"), "return")]
    with pytest.raises(ConfigSyntaxError):
        directives("a { b; ")


def test_whole_directive_slots_add_no_vocabulary() -> None:
    sources = {"nginx.conf.j2": "http {\n    server {\n{% for d in snippets %}\n{{ d.render(8) }}\n{% endfor %}\n"
               "        listen {{ port }};\n    }\n}\n"}
    assert template_vocabulary(sources) == frozenset({((), "http"), (("http",), "server"),
                                                      (("http", "server"), "listen")})


def test_without_vocabulary_only_the_deny_list_applies() -> None:
    assert scan(BEFORE, with_location("autoindex on;"), None) == []
    assert "never allowed" in scan(BEFORE, with_location("root /srv;"), None)[0]


def test_lua_block_bodies_are_one_opaque_token() -> None:
    text = 'http { init_by_lua_block { local t = { "}", [[ } ]] } -- }\n f(t) } server_tokens off; }'
    ds = directives(text)
    assert [(d.context, d.name) for d in ds] == [((), "http"), (("http",), "init_by_lua_block"),
                                                 (("http",), "server_tokens")]
    assert ds[1].lua is not None and "f(t)" in ds[1].lua
    with pytest.raises(ConfigSyntaxError, match="unterminated Lua block"):
        directives('http { init_by_lua_block { f("}) } }')


LUA_VOCAB = template_vocabulary({"nginx.conf.j2": "http {\n    upstream {{ u.name }} {\n        server X;\n"
                                                  "        balancer_by_lua_block { require(\"b\").balance({{ u.name | q }}) }\n"
                                                  "    }\n}\n"})


@pytest.mark.parametrize(("body", "finding"), [
    ('require("b").balance("default-web-80")', ""),  # the template's block, another upstream name
    ('require("b").balance("x") os.execute("id")', "never allowed"),
    ('require("b").balance(x)', "never allowed"),
    ('ngx.say(io.open("/var/run/secrets/token"):read("*a"))', "never allowed"),
])
def test_lua_blocks_pass_only_in_the_templates_shape(body: str, finding: str) -> None:
    before = "http {\n}\n"
    after = f"http {{\n    upstream u1 {{\n        server 10.0.0.1:80;\n        balancer_by_lua_block {{ {body} }}\n    }}\n}}\n"
    findings = scan(before, after, LUA_VOCAB)
    if finding:
        assert len(findings) == 1 and finding in findings[0], findings
    else:
        assert findings == []


@pytest.mark.parametrize(("entry", "finding"), [
    ("10.0.0.0/8 1;", ""),  # the template writes `{{ cidr }} 1;`: any name is a value here
    ("include /etc/passwd;", "never allowed"),  # nginx reads include inside geo
    ("192.168.0.0/16 /proc/self/environ;", "sensitive path"),
])
def test_geo_entries_are_values_not_directives(entry: str, finding: str) -> None:
    before = "http {\n}\n"
    after = f"http {{\n    geo $w {{\n        default 0;\n        {entry}\n    }}\n}}\n"
    findings = scan(before, after, VOCAB)
    if finding:
        assert len(findings) == 1 and finding in findings[0], findings
    else:
        assert findings == []
