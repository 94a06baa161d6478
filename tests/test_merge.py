"""nginx/merge.py: which server blocks share one, and that a shared block means the same."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.nginx.merge import block_spans, merge_servers
from ingressctl.nginx.process import Nginx
from ingressctl.store import Store

from .factory import endpoint_slice, ingress, ingress_class, path, service

CASES_DIR = Path(__file__).parent / "cases"


def block(host: str, upstream: str, extra: str = "", path: str = "/") -> str:
    return (f"    # {host}\n    server {{\n        server_name {host};\n        listen 80;\n{extra}"
            f"        location \"{path}\" {{\n            set $proxy_upstream_name \"{upstream}\";\n"
            f"            set $service_port \"80\";\n            proxy_pass http://ingressctl_balancer;\n"
            f"        }}\n    }}\n")


def hosts(n: int, **kw: str) -> str:
    return "".join(block(f"h{i}.test", f"up{i}", **kw) for i in range(n))


@pytest.mark.parametrize("text, shared", [
    pytest.param(hosts(3), 0, id="fewer-than-min-group-stay-apart"),
    pytest.param(hosts(4), 1, id="same-but-name-and-values"),
    pytest.param(hosts(4) + hosts(4, path="/api").replace("h", "g"), 2, id="another-path-another-block"),
    pytest.param(hosts(2) + hosts(2, path="/api").replace("h", "g"), 0, id="groups-counted-apart"),
    pytest.param(hosts(4, extra="        listen 443 default_server;\n"), 0, id="default-server"),
    pytest.param(hosts(4, extra="        add_header X $server_name;\n"), 0, id="uses-server-name"),
    pytest.param(hosts(4, extra="        ssl_certificate \"/c.pem\";\n"), 0, id="own-ssl-context"),
    pytest.param(hosts(4).replace("server_name h", "server_name ~^h"), 0, id="regex-name"),
    pytest.param(hosts(4, extra='        add_header X "@@NAME@@";\n'), 0, id="a-value-like-a-placeholder"),
    pytest.param(hosts(4).replace(".test;", ".test alias.test;"), 0, id="several-names"),
])
def test_which_blocks_share(text: str, shared: int) -> None:
    out = merge_servers("http {\n" + text + "}\n", min_group=4)
    assert out.count("hosts with the same block share it") == shared
    if not shared:
        assert out == "http {\n" + text + "}\n"


def test_server_name_outside_the_blocks_keeps_every_block_apart() -> None:
    text = "http {\n    log_format x '$server_name $status';\n" + hosts(5) + "}\n"
    assert merge_servers(text, min_group=4) == text


def test_a_shared_block_maps_each_host_to_its_own_values() -> None:
    out = merge_servers(hosts(5), min_group=4)
    names = re.findall(r"^ +server_name ([^;]+);", out, re.M)
    assert names == [" ".join(f"h{i}.test" for i in range(5))]
    entries = dict(re.findall(r'"(h\d\.test)" "(up\d)";', out))
    assert entries == {f"h{i}.test": f"up{i}" for i in range(5)}
    assert 'set $service_port "80";' in out, "a value all hosts share stays a literal"
    assert "set $ingressctl_host $host;" in out


def test_a_host_named_like_a_map_keyword_keeps_its_block() -> None:
    text = hosts(4) + block("default", "upd")
    out = merge_servers(text, min_group=4)
    assert "server_name default;" in out and '"default"' not in out


def _objects(n: int) -> list:
    objs = [ingress_class()]
    for i in range(n):
        objs += [service(f"s{i}"), endpoint_slice(f"s{i}", name=f"s{i}", addresses=[f"10.0.0.{i + 1}"]),
                 ingress(f"i{i}", [(f"h{i}.test", [path("/", svc=f"s{i}")])])]
    return objs


def test_a_rendered_configuration_with_shared_blocks_passes_nginx_t(tmp_path: Path) -> None:
    store = Store()
    store.replace(None, _objects(20))
    opts = ControllerOptions(state_dir=tmp_path, dynamic_endpoints=True)
    ctl = Controller(store, opts)
    rendered = ctl.render_snapshot(store.snapshot())
    assert rendered.text.count("hosts with the same block share it") == 1
    ctl.prepare_state(rendered)
    conf = opts.prefix / "t.conf"
    conf.write_text(rendered.text)
    nginx = Nginx(opts.prefix)
    nginx.prepare()
    r = subprocess.run([nginx.binary, "-t", "-q", "-p", str(opts.prefix), "-c", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_kept_server_blocks_render_what_a_fresh_renderer_renders() -> None:
    """The block cache (nginx/render.py BlockCache) never serves a block rendered from other
    inputs: after each change, a warm renderer and a fresh one give the same text."""
    import dataclasses

    from ingressctl.ingress.settings import Settings
    from ingressctl.nginx.render import RenderContext, Renderer

    from .factory import run_build
    ctx = RenderContext(prefix="/p", dynamic=True)
    warm = Renderer()
    base = _objects(20)
    steps = [
        base,
        base[:-1] + [ingress("i19", [("h19.test", [path("/x", svc="s19")])])],  # one path edit
        base + [ingress("canary", [("h3.test", [path("/", svc="s4")])], created="2026-01-02T00:00:00Z",
                        annotations={"nginx.ingress.kubernetes.io/canary": "true",
                                     "nginx.ingress.kubernetes.io/canary-weight": "10"})],
    ]
    # each step renders with the blocks the previous step kept (the canary makes s4 a variable's
    # upstream: h4's own Server is unchanged, but its block no longer uses the shared balancer)
    for objs in steps:
        model = run_build(*objs).model
        kept = dict(warm.server_blocks.blocks)
        assert warm.render(model, ctx) == Renderer().render(model, ctx)
        assert kept.keys() & warm.server_blocks.blocks.keys() or not kept, "blocks were reused"
    other_ctx = dataclasses.replace(ctx, http_port=81)
    other_settings = dataclasses.replace(model, settings=Settings(use_http2=False))
    for m, c in ((model, other_ctx), (other_settings, ctx), (model, ctx)):
        assert warm.render(m, c) == Renderer().render(m, c), "another context or settings: other blocks"


# what block_spans must find: each server block with its comment line, as this regex does
BLOCK = re.compile(r"^    # [^\n]*\n    server \{\n.*?^    \}\n", re.M | re.S)


def test_block_spans_are_what_the_regex_finds() -> None:
    texts = [(case / "expected.conf").read_text() for case in sorted(CASES_DIR.iterdir())
             if (case / "expected.conf").exists()]
    rnd = random.Random(18)
    pieces = ["    # h\n", "    server {\n", "        x;\n", "    }\n", "    # \n", "  # no\n", "\n", "    }}\n",
              "    server {}\n", "    #x\n", "    # a\n    server {\n        y;\n    }\n"]
    texts += ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 40))) for _ in range(3000)]
    for text in texts:
        assert block_spans(text) == [m.span() for m in BLOCK.finditer(text)], text
